"""The one schema, for SQLite and PostgreSQL alike. Times are integer milliseconds since the epoch;
money is integer kopecks."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# A BIGINT that is SQLite's INTEGER PRIMARY KEY (rowid) there, BIGSERIAL-like on PostgreSQL.
Id = BigInteger().with_variant(Integer(), "sqlite")

accounts = Table(
    "accounts", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("email", String(254), nullable=True, unique=True),
    Column("disabled", Boolean, nullable=False, server_default=text("false")),
    Column("balance", BigInteger, nullable=False, server_default=text("0")),
    Column("held", BigInteger, nullable=False, server_default=text("0")),
    Column("allowed_directions", Text, nullable=False, server_default=""),
    Column("tariff_plan", String(50), nullable=False, server_default="default"),
    Column("callback_secret", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # Per-account settings as JSON (kaskad.domain.account_settings): the cabinet's forms and
    # `kaskad accounts set` write it; channels read what concerns them.
    Column("settings", Text, nullable=False, server_default="{}"),
    Column("password_hash", Text, nullable=True),  # argon2; for ssms email+password and the cabinet
    Column("is_admin", Boolean, nullable=False, server_default=text("false")),  # the /admin pages
    # Available money never below zero, whatever writes the row (storage.balances relies on it).
    CheckConstraint("held >= 0 AND balance >= held", name="ck_accounts_available_not_negative"),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(12), nullable=False),
    Column("name", String(100), nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
)

spam_list = Table(
    "spam_list", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=True),  # NULL: global
    Column("number", String(16), nullable=False, index=True),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("account_id", "number"),
)

tariffs = Table(
    "tariffs", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("plan", String(50), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("direction", String(40), nullable=False),  # "RU", later "RU:operator"; "*" = any
    Column("price", BigInteger, nullable=False),
    UniqueConstraint("plan", "channel", "direction"),
)

verifications = Table(
    "verifications", metadata,
    Column("request_id", String(32), primary_key=True),
    # No foreign keys on the tables every message writes (migration 0008 says why).
    Column("account_id", Id, nullable=False),
    Column("number", String(16), nullable=False),
    Column("direction", String(40), nullable=False),
    Column("code", String(8), nullable=False),
    Column("resending", String(10), nullable=False),
    Column("callback_url", Text, nullable=True),
    Column("policy", Text, nullable=False),  # "telegram,sms"
    Column("prices", Text, nullable=False),  # "telegram:150,sms:350" quoted at creation
    Column("step_index", Integer, nullable=False, server_default=text("0")),
    Column("retries", Integer, nullable=False, server_default=text("0")),
    Column("state", String(20), nullable=False),
    Column("state_reason", String(64), nullable=False, server_default=""),
    Column("resend", String(20), nullable=False, server_default=""),
    Column("hold", BigInteger, nullable=False),
    Column("charged", BigInteger, nullable=False, server_default=text("0")),
    Column("delivered_by", String(20), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True),
    Column("next_run_at", BigInteger, nullable=True),  # NULL once final
    Column("run_step", Boolean, nullable=False, server_default=text("true")),
    Column("lease_owner", String(100), nullable=True),
    Column("lease_until", BigInteger, nullable=True),
    Column("lease_token", Integer, nullable=False, server_default=text("0")),
    # What kind of work this is: "code" (seed API), "sms" (push_msg: `text` from `sender` in
    # `parts` parts, `msg_id` its ssms id), "call" (wait_call: the subscriber calls `call_to`
    # within `wait_s` seconds).
    Column("kind", String(8), nullable=False, server_default="code"),
    Column("text", Text, nullable=True),
    Column("sender", String(16), nullable=True),
    Column("parts", Integer, nullable=False, server_default=text("1")),
    Column("msg_id", BigInteger, nullable=True),
    Column("external_id", String(64), nullable=True),
    Column("call_to", String(16), nullable=True),
    Column("wait_s", Integer, nullable=True),
    Index("ix_verifications_due", "next_run_at",
          sqlite_where=text("next_run_at IS NOT NULL"),
          postgresql_where=text("next_run_at IS NOT NULL")),
    Index("ix_verifications_account_created", "account_id", "created_at"),
    Index("ix_verifications_msg_id", "msg_id", unique=True),
    Index("ix_verifications_waits", "call_to", "number",
          sqlite_where=text("kind = 'call'"),
          postgresql_where=text("kind = 'call'")),
    # A call names its wait by (pool number, caller): one active wait per pair (0010).
    Index("ux_verifications_active_waits", "call_to", "number", unique=True,
          sqlite_where=text("kind = 'call' AND next_run_at IS NOT NULL"),
          postgresql_where=text("kind = 'call' AND next_run_at IS NOT NULL")),
)

attempts = Table(
    "attempts", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("request_id", String(32), nullable=False, index=True),
    Column("step_index", Integer, nullable=False),
    Column("channel", String(20), nullable=False),
    Column("outcome", String(24), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Column("provider_ref", String(100), nullable=True),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=False),
    Index("ix_attempts_provider_ref", "provider_ref"),
)

# The parts of a long SMS (concatenated by UDH), each with its own SMSC message id and its own
# receipt. The attempt's provider_ref is its first part's; the message's outcome is decided
# from all parts' receipts (domain.dlr.message_outcome). Short messages have no rows here.
sms_parts = Table(
    "sms_parts", metadata,
    Column("provider_ref", String(100), primary_key=True),  # this part's "<connector>:<id>"
    Column("first_ref", String(100), nullable=False),  # the attempt's provider_ref
    Column("request_id", String(32), nullable=False),
    Column("part_index", Integer, nullable=False),  # 1-based
    Column("parts", Integer, nullable=False),
    Column("outcome", String(24), nullable=True),  # the part's final receipt; None: none yet
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_sms_parts_first_ref", "first_ref"),
)

reports = Table(
    "reports", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel", String(20), nullable=False),
    Column("provider_ref", String(100), nullable=False),
    Column("outcome", String(24), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Column("request_id", String(32), nullable=True),
    Column("disposition", String(16), nullable=False),  # applied|late|info|unmatched|part
    Column("received_at", BigInteger, nullable=False),
    Index("ix_reports_ref", "provider_ref"),
    # Reports that came before their attempt was stored: looked up on every accepted attempt.
    Index("ix_reports_unmatched", "provider_ref",
          sqlite_where=text("disposition = 'unmatched'"),
          postgresql_where=text("disposition = 'unmatched'")),
)

ledger = Table(
    "ledger", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, nullable=False, index=True),
    Column("kind", String(10), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("request_id", String(32), nullable=True),
    Column("note", Text, nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
)

outbox = Table(
    "outbox", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("account_id", Id, nullable=False),
    Column("request_id", String(32), nullable=True),
    Column("method", String(6), nullable=False, server_default="POST"),
    Column("url", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", BigInteger, nullable=True),  # NULL: delivered or given up
    Column("lease_until", BigInteger, nullable=True),
    Column("delivered_at", BigInteger, nullable=True),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_outbox_due", "next_attempt_at",
          sqlite_where=text("next_attempt_at IS NOT NULL"),
          postgresql_where=text("next_attempt_at IS NOT NULL")),
)

# What providers charged *us* per attempt (micro-units of their currency), apart from what we
# charge customers, so margins can be reported. Append-only; one row per (attempt, kind).
provider_costs = Table(
    "provider_costs", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel", String(20), nullable=False),
    Column("provider_ref", String(100), nullable=False),
    Column("request_id", String(32), nullable=True, index=True),
    Column("kind", String(10), nullable=False),  # charge | refund
    Column("amount_micros", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("channel", "provider_ref", "kind"),
)

# A channel's shared condition, seen by every node: paused (a provider's flood wait) until a
# time, or unhealthy (bad credentials) with the provider's words.
channel_health = Table(
    "channel_health", metadata,
    Column("channel", String(20), primary_key=True),
    Column("paused_until", BigInteger, nullable=False, server_default=text("0")),
    Column("healthy", Boolean, nullable=False, server_default=text("true")),
    Column("detail", Text, nullable=False, server_default=""),
    Column("updated_at", BigInteger, nullable=False),
)

# Russia's numbering plan (kaskad.domain.numbering), replaced as a whole by each import.
numbering_ranges = Table(
    "numbering_ranges", metadata,
    Column("start", BigInteger, primary_key=True, autoincrement=False),
    Column("end", BigInteger, nullable=False),
    Column("operator", String(40), nullable=False),
    Column("operator_name", Text, nullable=False),
    Column("region", Text, nullable=False),
    Column("inn", String(12), nullable=False),
    Column("imported_at", BigInteger, nullable=False),  # one stamp per import: running
    # gateways reload the plan when it changes
)

# Mobile-originated messages that SMSCs delivered to us (replies, STOP words).
mo_messages = Table(
    "mo_messages", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("connector", String(40), nullable=False),
    Column("source", String(21), nullable=False),
    Column("destination", String(21), nullable=False),
    Column("text", Text, nullable=False),
    Column("data_coding", Integer, nullable=False),
    Column("received_at", BigInteger, nullable=False, index=True),
)

# Named counters (e.g. "messages": the ssms API's integer message ids on SQLite; PostgreSQL takes
# them from the sequence message_ids, migration 0012), advanced a batch at a
# time with one UPDATE ... RETURNING.
counters = Table(
    "counters", metadata,
    Column("name", String(40), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# Every call that reached one of our pool numbers, matched to a wait or not (and why not).
incoming_calls = Table(
    "incoming_calls", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("caller", String(32), nullable=False),
    Column("callee", String(32), nullable=False),
    Column("request_id", String(32), nullable=True),
    Column("disposition", String(16), nullable=False),  # matched | unknown | late | no_wait
    Column("received_at", BigInteger, nullable=False, index=True),
)

# Logged-in browser sessions of the cabinet and admin pages (kaskad.web.sessions). Server-side,
# so logout and a password change end them at once; the cookie holds a random token whose
# SHA-256 is the key here (a stolen database does not yield live cookies).
web_sessions = Table(
    "web_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),  # the token every form of this session carries
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

# One-time tokens of forms that must act once however often they are sent (the admin top-up):
# issued with the page, used up in the same transaction as the change they guard. Keyed by the
# token's SHA-256 and bound to the session and the form's purpose.
web_form_tokens = Table(
    "web_form_tokens", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("session_hash", String(64), nullable=False),
    Column("purpose", String(64), nullable=False),  # e.g. "topup:42"
    Column("used_at", BigInteger, nullable=True),
    Column("expires_at", BigInteger, nullable=False, index=True),
)
