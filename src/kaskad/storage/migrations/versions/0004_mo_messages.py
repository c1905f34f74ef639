"""mobile-originated messages

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 14:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'mo_messages',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('connector', sa.String(length=40), nullable=False),
        sa.Column('source', sa.String(length=21), nullable=False),
        sa.Column('destination', sa.String(length=21), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('data_coding', sa.Integer(), nullable=False),
        sa.Column('received_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_mo_messages')),
    )
    with op.batch_alter_table('mo_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mo_messages_received_at'), ['received_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('mo_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mo_messages_received_at'))
    op.drop_table('mo_messages')
