"""numbering plan ranges

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 14:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'numbering_ranges',
        sa.Column('start', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('end', sa.BigInteger(), nullable=False),
        sa.Column('operator', sa.String(length=40), nullable=False),
        sa.Column('operator_name', sa.Text(), nullable=False),
        sa.Column('region', sa.Text(), nullable=False),
        sa.Column('inn', sa.String(length=12), nullable=False),
        sa.Column('imported_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('start', name=op.f('pk_numbering_ranges')),
    )


def downgrade() -> None:
    op.drop_table('numbering_ranges')
