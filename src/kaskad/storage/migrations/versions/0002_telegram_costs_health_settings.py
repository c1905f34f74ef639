"""provider costs, shared channel health, account settings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 13:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('settings', sa.Text(), server_default='{}',
                                      nullable=False))
    op.create_table(
        'provider_costs',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('channel', sa.String(length=20), nullable=False),
        sa.Column('provider_ref', sa.String(length=100), nullable=False),
        sa.Column('request_id', sa.String(length=32), nullable=True),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('amount_micros', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_costs')),
        sa.UniqueConstraint('channel', 'provider_ref', 'kind',
                            name=op.f('uq_provider_costs_channel_provider_ref_kind')),
    )
    with op.batch_alter_table('provider_costs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provider_costs_request_id'), ['request_id'],
                              unique=False)
    op.create_table(
        'channel_health',
        sa.Column('channel', sa.String(length=20), nullable=False),
        sa.Column('paused_until', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
        sa.Column('healthy', sa.Boolean(), server_default=sa.text('true'), nullable=False),
        sa.Column('detail', sa.Text(), server_default='', nullable=False),
        sa.Column('updated_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('channel', name=op.f('pk_channel_health')),
    )


def downgrade() -> None:
    op.drop_table('channel_health')
    with op.batch_alter_table('provider_costs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_provider_costs_request_id'))
    op.drop_table('provider_costs')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('settings')
