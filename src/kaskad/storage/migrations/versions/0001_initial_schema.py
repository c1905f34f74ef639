"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 11:26:01.912092
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('disabled', sa.Boolean(), server_default=sa.text('(false)'), nullable=False),
    sa.Column('balance', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('held', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('allowed_directions', sa.Text(), server_default='', nullable=False),
    sa.Column('tariff_plan', sa.String(length=50), server_default='default', nullable=False),
    sa.Column('callback_secret', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('email', name=op.f('uq_accounts_email')),
    sa.UniqueConstraint('name', name=op.f('uq_accounts_name'))
    )
    op.create_table('reports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('provider_ref', sa.String(length=100), nullable=False),
    sa.Column('outcome', sa.String(length=24), nullable=False),
    sa.Column('detail', sa.Text(), server_default='', nullable=False),
    sa.Column('request_id', sa.String(length=32), nullable=True),
    sa.Column('disposition', sa.String(length=16), nullable=False),
    sa.Column('received_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reports'))
    )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.create_index('ix_reports_ref', ['provider_ref'], unique=False)
        batch_op.create_index('ix_reports_unmatched', ['provider_ref'], unique=False, sqlite_where=sa.text("disposition = 'unmatched'"), postgresql_where=sa.text("disposition = 'unmatched'"))

    op.create_table('tariffs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('plan', sa.String(length=50), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('direction', sa.String(length=40), nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tariffs')),
    sa.UniqueConstraint('plan', 'channel', 'direction', name=op.f('uq_tariffs_plan_channel_direction'))
    )
    op.create_table('api_keys',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=12), nullable=False),
    sa.Column('name', sa.String(length=100), server_default='', nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('revoked_at', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_api_keys_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_keys_account_id'), ['account_id'], unique=False)

    op.create_table('ledger',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('request_id', sa.String(length=32), nullable=True),
    sa.Column('note', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_ledger_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger'))
    )
    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_account_id'), ['account_id'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('request_id', sa.String(length=32), nullable=True),
    sa.Column('method', sa.String(length=6), server_default='POST', nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('next_attempt_at', sa.BigInteger(), nullable=True),
    sa.Column('lease_until', sa.BigInteger(), nullable=True),
    sa.Column('delivered_at', sa.BigInteger(), nullable=True),
    sa.Column('last_error', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_outbox_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('event_id', name=op.f('uq_outbox_event_id'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_due', ['next_attempt_at'], unique=False, sqlite_where=sa.text('next_attempt_at IS NOT NULL'), postgresql_where=sa.text('next_attempt_at IS NOT NULL'))

    op.create_table('spam_list',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('number', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_spam_list_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_spam_list')),
    sa.UniqueConstraint('account_id', 'number', name=op.f('uq_spam_list_account_id_number'))
    )
    with op.batch_alter_table('spam_list', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_spam_list_number'), ['number'], unique=False)

    op.create_table('verifications',
    sa.Column('request_id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('number', sa.String(length=16), nullable=False),
    sa.Column('direction', sa.String(length=40), nullable=False),
    sa.Column('code', sa.String(length=8), nullable=False),
    sa.Column('resending', sa.String(length=10), nullable=False),
    sa.Column('callback_url', sa.Text(), nullable=True),
    sa.Column('policy', sa.Text(), nullable=False),
    sa.Column('prices', sa.Text(), nullable=False),
    sa.Column('step_index', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('retries', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('state_reason', sa.String(length=64), server_default='', nullable=False),
    sa.Column('resend', sa.String(length=20), server_default='', nullable=False),
    sa.Column('hold', sa.BigInteger(), nullable=False),
    sa.Column('charged', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('delivered_by', sa.String(length=20), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.Column('finished_at', sa.BigInteger(), nullable=True),
    sa.Column('next_run_at', sa.BigInteger(), nullable=True),
    sa.Column('run_step', sa.Boolean(), server_default=sa.text('(true)'), nullable=False),
    sa.Column('lease_owner', sa.String(length=100), nullable=True),
    sa.Column('lease_until', sa.BigInteger(), nullable=True),
    sa.Column('lease_token', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_verifications_account_id_accounts')),
    sa.PrimaryKeyConstraint('request_id', name=op.f('pk_verifications'))
    )
    with op.batch_alter_table('verifications', schema=None) as batch_op:
        batch_op.create_index('ix_verifications_account_created', ['account_id', 'created_at'], unique=False)
        batch_op.create_index('ix_verifications_due', ['next_run_at'], unique=False, sqlite_where=sa.text('next_run_at IS NOT NULL'), postgresql_where=sa.text('next_run_at IS NOT NULL'))

    op.create_table('attempts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.String(length=32), nullable=False),
    sa.Column('step_index', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('outcome', sa.String(length=24), nullable=False),
    sa.Column('detail', sa.Text(), server_default='', nullable=False),
    sa.Column('provider_ref', sa.String(length=100), nullable=True),
    sa.Column('started_at', sa.BigInteger(), nullable=False),
    sa.Column('finished_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['verifications.request_id'], name=op.f('fk_attempts_request_id_verifications')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attempts'))
    )
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.create_index('ix_attempts_provider_ref', ['provider_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_attempts_request_id'), ['request_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attempts_request_id'))
        batch_op.drop_index('ix_attempts_provider_ref')

    op.drop_table('attempts')
    with op.batch_alter_table('verifications', schema=None) as batch_op:
        batch_op.drop_index('ix_verifications_due', sqlite_where=sa.text('next_run_at IS NOT NULL'), postgresql_where=sa.text('next_run_at IS NOT NULL'))
        batch_op.drop_index('ix_verifications_account_created')

    op.drop_table('verifications')
    with op.batch_alter_table('spam_list', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_spam_list_number'))

    op.drop_table('spam_list')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_due', sqlite_where=sa.text('next_attempt_at IS NOT NULL'), postgresql_where=sa.text('next_attempt_at IS NOT NULL'))

    op.drop_table('outbox')
    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_account_id'))

    op.drop_table('ledger')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_keys_account_id'))

    op.drop_table('api_keys')
    op.drop_table('tariffs')
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_index('ix_reports_unmatched', sqlite_where=sa.text("disposition = 'unmatched'"), postgresql_where=sa.text("disposition = 'unmatched'"))
        batch_op.drop_index('ix_reports_ref')

    op.drop_table('reports')
    op.drop_table('accounts')
