"""the database itself refuses an account whose available money would go below zero

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 20:00:00

storage.balances applies each batch's holds, captures and releases only where they keep
"balance - held >= 0"; this CHECK makes that hold whatever writes the row (an operator's
SQL, a future bug), so no path can leave an account overdrawn.
"""
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_check_constraint('ck_accounts_available_not_negative',
                                         'held >= 0 AND balance >= held')


def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_constraint('ck_accounts_available_not_negative', type_='check')
