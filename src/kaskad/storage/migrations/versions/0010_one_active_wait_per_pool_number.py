"""a subscriber waits at most once at a time at one pool number

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 20:20:00

A call names its wait by (pool number, caller); two active waits of one subscriber at one
pool number would make a call ambiguous. wait_call picks a free number, and this unique index
makes two concurrent picks (two requests, two nodes) unable to both take it.
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

ACTIVE = "kind = 'call' AND next_run_at IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table('verifications', schema=None) as batch_op:
        batch_op.create_index('ux_verifications_active_waits', ['call_to', 'number'],
                              unique=True, sqlite_where=sa.text(ACTIVE),
                              postgresql_where=sa.text(ACTIVE))


def downgrade() -> None:
    with op.batch_alter_table('verifications', schema=None) as batch_op:
        batch_op.drop_index('ux_verifications_active_waits')
