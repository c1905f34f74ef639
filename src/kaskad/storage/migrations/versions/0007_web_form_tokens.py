"""one-time form tokens (the admin top-up acts once per form)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 12:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'web_form_tokens',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('session_hash', sa.String(length=64), nullable=False),
        sa.Column('purpose', sa.String(length=64), nullable=False),
        sa.Column('used_at', sa.BigInteger(), nullable=True),
        sa.Column('expires_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_web_form_tokens')),
    )
    with op.batch_alter_table('web_form_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_form_tokens_expires_at'), ['expires_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('web_form_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_form_tokens_expires_at'))
    op.drop_table('web_form_tokens')
