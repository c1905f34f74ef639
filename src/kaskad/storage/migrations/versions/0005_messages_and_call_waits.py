"""messages (push_msg), incoming-call waits, passwords, counters, incoming calls

A message or an incoming-call wait is a verification of another kind: it runs on the same
durable cascade, holds and captures money the same way, and reports through the same outbox.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 16:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('verifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=8), nullable=False,
                                      server_default='code'))
        batch_op.add_column(sa.Column('text', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('sender', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('parts', sa.Integer(), nullable=False,
                                      server_default=sa.text('1')))
        batch_op.add_column(sa.Column('msg_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('external_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('call_to', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('wait_s', sa.Integer(), nullable=True))
        batch_op.create_index('ix_verifications_msg_id', ['msg_id'], unique=True)
        batch_op.create_index('ix_verifications_waits', ['call_to', 'number'], unique=False,
                              sqlite_where=sa.text("kind = 'call'"),
                              postgresql_where=sa.text("kind = 'call'"))
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('password_hash', sa.Text(), nullable=True))
    op.create_table(
        'counters',
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('value', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_counters')),
    )
    op.create_table(
        'incoming_calls',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('caller', sa.String(length=32), nullable=False),
        sa.Column('callee', sa.String(length=32), nullable=False),
        sa.Column('request_id', sa.String(length=32), nullable=True),
        sa.Column('disposition', sa.String(length=16), nullable=False),
        sa.Column('received_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_incoming_calls')),
    )
    with op.batch_alter_table('incoming_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incoming_calls_received_at'), ['received_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('incoming_calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incoming_calls_received_at'))
    op.drop_table('incoming_calls')
    op.drop_table('counters')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('password_hash')
    with op.batch_alter_table('verifications', schema=None) as batch_op:
        batch_op.drop_index('ix_verifications_waits')
        batch_op.drop_index('ix_verifications_msg_id')
        for name in ('wait_s', 'call_to', 'external_id', 'msg_id', 'parts', 'sender', 'text',
                     'kind'):
            batch_op.drop_column(name)
