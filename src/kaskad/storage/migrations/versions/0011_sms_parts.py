"""the parts of long SMS, so a message's outcome follows all of its parts' receipts

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 08:00:00

A long SMS goes as several submit_sm, each with its own SMSC message id and receipt. Until now
the attempt knew only its first part's id, so the message's state followed the first part's
receipt and the others were stored as unmatched.
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sms_parts',
        sa.Column('provider_ref', sa.String(length=100), nullable=False),
        sa.Column('first_ref', sa.String(length=100), nullable=False),
        sa.Column('request_id', sa.String(length=32), nullable=False),
        sa.Column('part_index', sa.Integer(), nullable=False),
        sa.Column('parts', sa.Integer(), nullable=False),
        sa.Column('outcome', sa.String(length=24), nullable=True),
        sa.Column('updated_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('provider_ref', name=op.f('pk_sms_parts')),
    )
    op.create_index('ix_sms_parts_first_ref', 'sms_parts', ['first_ref'])


def downgrade() -> None:
    op.drop_index('ix_sms_parts_first_ref', table_name='sms_parts')
    op.drop_table('sms_parts')
