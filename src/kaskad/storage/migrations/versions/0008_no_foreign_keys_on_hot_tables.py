"""no foreign keys on the tables every message writes

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 19:30:00

On PostgreSQL a foreign key is a trigger per inserted row (a lookup plus a KEY SHARE lock on the
referenced row); measured on the group-commit writer, it was two thirds of the server's time
for an insert of 64 verifications. What they guarded cannot happen: accounts and verifications
are never deleted, and the writer reads the account (or the verification) it writes for in the
same transaction. The foreign keys of the rarely written tables stay.
"""
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# (table, column, referenced table, referenced column)
DROPPED = (
    ('verifications', 'account_id', 'accounts', 'id'),
    ('attempts', 'request_id', 'verifications', 'request_id'),
    ('ledger', 'account_id', 'accounts', 'id'),
    ('outbox', 'account_id', 'accounts', 'id'),
)


def upgrade() -> None:
    for table, column, target, _ in DROPPED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f'fk_{table}_{column}_{target}', type_='foreignkey')


def downgrade() -> None:
    for table, column, target, target_column in DROPPED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(f'fk_{table}_{column}_{target}', target, [column],
                                        [target_column])
