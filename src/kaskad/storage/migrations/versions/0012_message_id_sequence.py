"""PostgreSQL: message ids from a sequence instead of a counter row

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 09:15:00

Every batch that created messages updated the one `counters` row and held its lock until
COMMIT, so two writers (two processes, two nodes) creating messages ran one after the other.
A sequence hands out ids without a row lock (a rolled-back batch leaves a gap: ids stay unique
and increasing). SQLite keeps the counter row: its single writer serialises anyway.
"""
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE SEQUENCE message_ids AS bigint")
    op.execute(
        "SELECT setval('message_ids', GREATEST("
        "(SELECT COALESCE(MAX(value), 0) FROM counters WHERE name = 'messages'), "
        "(SELECT COALESCE(MAX(msg_id), 0) FROM verifications)) + 1, false)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("INSERT INTO counters (name, value) VALUES ('messages', 0) "
               "ON CONFLICT (name) DO NOTHING")
    op.execute("UPDATE counters SET value = GREATEST(value, "
               "(SELECT COALESCE(MAX(msg_id), 0) FROM verifications)) WHERE name = 'messages'")
    op.execute("DROP SEQUENCE message_ids")
