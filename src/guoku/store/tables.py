"""The node database schema. Alembic migrations in ``migrations/`` create exactly these tables.

One database per voucher-library node. ``direction`` tells a node's own vouchers (``out``) from
those it received (``in``); the idempotency key of a voucher version is
(admdiv, year, type, voucher no, version, direction).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TS = String(32)
"""Timestamps are ISO-8601 UTC strings with microseconds: sortable and engine-neutral."""

admdivs = Table(
    "admdivs",
    metadata,
    Column("code", String(6), primary_key=True),
    Column("name", String(60), nullable=False),
    Column("level", String(12), nullable=False),
    Column("parent_code", String(6), nullable=True),
)

parties = Table(
    "parties",
    metadata,
    Column("code", String(42), primary_key=True),
    Column("kind", String(12), nullable=False),
    Column("name", String(60), nullable=False),
    Column("admdiv", String(6), ForeignKey("admdivs.code"), nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("name", String(60), nullable=False),
    Column("party_code", String(42), ForeignKey("parties.code"), nullable=False),
    Column("admdiv", String(6), ForeignKey("admdivs.code"), nullable=False),
    Column("password_hash", String(200), nullable=True),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", TS, nullable=False),
)

user_posts = Table(
    "user_posts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("post", String(16), nullable=False),
    Column("vt_code", String(4), nullable=False),
    UniqueConstraint("user_id", "post", "vt_code", name="uq_user_posts_grant"),
)

vouchers = Table(
    "vouchers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("admdiv", String(6), nullable=False),
    Column("st_year", Integer, nullable=False),
    Column("vt_code", String(4), nullable=False),
    Column("voucher_no", String(42), nullable=False),
    Column("version", Integer, nullable=False),
    Column("direction", String(3), nullable=False),
    Column("state", String(16), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("vou_date", String(8), nullable=False),
    Column("sender_party", String(42), nullable=False),
    Column("receiver_party", String(42), nullable=False),
    Column("xml", LargeBinary, nullable=False),
    Column("entered_by", String(64), nullable=True),
    Column("checked_by", String(64), nullable=True),
    Column("sealed_by", String(64), nullable=True),
    Column("return_reason", String(200), nullable=True),
    Column("print_count", Integer, nullable=False, default=0),
    Column("is_current", Boolean, nullable=False, default=True),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    UniqueConstraint(
        "admdiv", "st_year", "vt_code", "voucher_no", "version", "direction",
        name="uq_vouchers_key",
    ),
    Index("ix_vouchers_query", "admdiv", "vt_code", "state", "vou_date"),
)

voucher_events = Table(
    "voucher_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("voucher_id", Integer, ForeignKey("vouchers.id"), nullable=False, index=True),
    Column("admdiv", String(6), nullable=False),
    Column("event", String(16), nullable=False),
    Column("from_state", String(16), nullable=True),
    Column("to_state", String(16), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("post", String(16), nullable=True),
    Column("reason", String(200), nullable=True),
    Column("at", TS, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False, unique=True),
    Column("admdiv", String(6), nullable=False),
    Column("sender_party", String(42), nullable=False),
    Column("receiver_party", String(42), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("vt_code", String(4), nullable=False),
    Column("voucher_id", Integer, ForeignKey("vouchers.id"), nullable=True),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("published_at", TS, nullable=True),
    Column("envelope_id", String(64), nullable=True, index=True),
    Index("ix_outbox_pending", "published_at", "id"),
)

inbox = Table(
    "inbox",
    metadata,
    Column("message_id", String(64), primary_key=True),
    Column("sender_party", String(42), nullable=False),
    Column("admdiv", String(6), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("received_at", TS, nullable=False),
    Column("outcome", String(16), nullable=False, server_default="stored"),
    Column("detail", Text, nullable=True),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("envelope_id", String(64), nullable=True),
    Column("queue", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("reason", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("dead_at", TS, nullable=False),
    Column("replayed_at", TS, nullable=True),
)
"""Messages the node gave up on after retries: kept, listed and replayed by an operator."""

rejected_envelopes = Table(
    "rejected_envelopes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("envelope_id", String(64), nullable=True),
    Column("claimed_sender", String(42), nullable=True),
    Column("code", String(40), nullable=False),
    Column("reason", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha", String(64), nullable=False),
    Column("rejected_at", TS, nullable=False),
)
"""Envelopes refused before any item was read (bad signature, unknown sender, replay ...)."""

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("admdiv", String(6), nullable=False),
    Column("at", TS, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("post", String(16), nullable=True),
    Column("action", String(32), nullable=False),
    Column("voucher_ref", String(80), nullable=True),
    Column("state_before", String(16), nullable=True),
    Column("state_after", String(16), nullable=True),
    Column("outcome", String(8), nullable=False),
    Column("detail", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)
"""One row (id=1): the chain's last seq and hash. Appenders lock it, so the chain stays a line
under concurrent writers on PostgreSQL, and a deleted tail is detected."""

# --- quota ledger (额度台账): see guoku.domain.quota and docs/decisions/0012 -----------------


QUOTA_KEY = ("admdiv", "st_year", "agency_code", "fund_type", "exp_func", "month")
"""Columns of a quota key (guoku.domain.quota.QuotaKey), in both quota tables."""


def _quota_key_columns() -> list[Column[object]]:
    return [
        Column("admdiv", String(6), nullable=False),
        Column("st_year", Integer, nullable=False),
        Column("agency_code", String(42), nullable=False),
        Column("fund_type", String(42), nullable=False),
        Column("exp_func", String(42), nullable=False),
        Column("month", Integer, nullable=False),
    ]


quota_balances = Table(
    "quota_balances",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    *_quota_key_columns(),
    Column("issued_fen", BigInteger, nullable=False),
    Column("held_fen", BigInteger, nullable=False),
    Column("spent_fen", BigInteger, nullable=False),
    Column("updated_at", TS, nullable=False),
    UniqueConstraint(*QUOTA_KEY, name="uq_quota_balances_key"),
    CheckConstraint(
        "held_fen >= 0 AND spent_fen >= 0 AND held_fen + spent_fen <= issued_fen",
        name="ck_quota_balances_never_overdrawn",
    ),
)
"""One row per quota key. Writers lock the row (SELECT ... FOR UPDATE) before they change it; the
check constraint is the last line of defence: the database itself refuses an overdrawn quota."""

quota_entries = Table(
    "quota_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    *_quota_key_columns(),
    Column("op", String(8), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("voucher_ref", String(80), nullable=False),
    Column("payment_ref", String(80), nullable=True, index=True),
    Column("at", TS, nullable=False),
    Column("issued_after", BigInteger, nullable=False),
    Column("held_after", BigInteger, nullable=False),
    Column("spent_after", BigInteger, nullable=False),
    UniqueConstraint("voucher_ref", "op", name="uq_quota_entries_voucher_op"),
    CheckConstraint("amount_fen > 0", name="ck_quota_entries_amount_positive"),
    Index("ix_quota_entries_key", *QUOTA_KEY, "id"),
)
"""Append-only: one entry per operation, naming its voucher; (voucher_ref, op) is unique, so a
redelivered operation is found and never applied twice. Balance = sum of the entries."""

# --- account directory (账户信息维护) and payee checks: see guoku.store.accounts, decision 0013 --

ACCOUNT_STATUSES = ("pending", "active", "rejected", "closed", "superseded")

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("admdiv", String(6), nullable=False),
    Column("account_no", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("change", String(8), nullable=False),
    Column("name", String(60), nullable=False),
    Column("bank_name", String(60), nullable=False),
    Column("bank_no", String(12), nullable=True),
    Column("status", String(10), nullable=False),
    Column("entered_by", String(64), nullable=False),
    Column("entered_at", TS, nullable=False),
    Column("reviewed_by", String(64), nullable=True),
    Column("reviewed_at", TS, nullable=True),
    Column("review_note", String(200), nullable=True),
    Column("updated_at", TS, nullable=False),
    UniqueConstraint("admdiv", "account_no", "version", name="uq_accounts_version"),
    CheckConstraint(
        "status IN ('pending', 'active', 'rejected', 'closed', 'superseded')",
        name="ck_accounts_status",
    ),
    CheckConstraint("kind IN ('payee', 'unit')", name="ck_accounts_kind"),
    CheckConstraint("reviewed_by IS NULL OR reviewed_by <> entered_by",
                    name="ck_accounts_four_eyes"),
)
"""Payee and unit accounts, one row per version of one account (admdiv, account_no). A change is
entered as a ``pending`` row and becomes ``active`` only when another user with the review post
approves it; the previous active row becomes ``superseded``. Lookups see ``active`` rows only."""

Index(
    "uq_accounts_live",
    accounts.c.admdiv,
    accounts.c.account_no,
    accounts.c.status,
    unique=True,
    sqlite_where=accounts.c.status.in_(["pending", "active"]),
    postgresql_where=accounts.c.status.in_(["pending", "active"]),
)
"""At most one active and at most one pending version per account, enforced by the database."""

account_checks = Table(
    "account_checks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("voucher_id", Integer, ForeignKey("vouchers.id"), nullable=False, index=True),
    Column("admdiv", String(6), nullable=False),
    Column("account_no", String(42), nullable=False),
    Column("account_found", Boolean, nullable=False),
    Column("name_match", String(8), nullable=False),
    Column("bank_match", String(8), nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("problems", Text, nullable=False),
    Column("checked_at", TS, nullable=False),
)
"""The automatic payee-account check of a voucher (guoku.domain.accounts.AccountCheck), kept with
the voucher and shown to the reviewer before sealing; ``problems`` is JSON. Newest row wins."""

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("admdiv", String(6), nullable=False),
    Column("party", String(42), nullable=False),
    Column("account", String(32), nullable=False),
    Column("agency_code", String(42), nullable=False),
    Column("fund_type", String(42), nullable=False),
    Column("exp_func", String(42), nullable=False),
    Column("day", String(8), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("voucher_ref", String(80), nullable=False),
    Column("at", TS, nullable=False),
    UniqueConstraint("voucher_ref", "account", name="uq_ledger_entries_posting"),
    Index("ix_ledger_entries_day", "admdiv", "day", "account"),
)
"""Each party's business ledger (业务账): one posting per (voucher, account), what
reconciliation compares with the vouchers and with the other parties' ledgers."""

reconciliation_runs = Table(
    "reconciliation_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("mode", String(10), nullable=False),
    Column("layers", String(8), nullable=False),
    Column("scope", String(8), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS, nullable=True),
    Column("breaks", Integer, nullable=False, default=0),
    Column("started_by", String(64), nullable=False),
)
"""One reconciliation: mode (monthly, daily, realtime, on_demand), layers (e.g. "123"), the
scope (a day yyyymmdd or a month yyyymm), and how many breaks it found."""

discrepancies = Table(
    "discrepancies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("reconciliation_runs.id"), nullable=True, index=True),
    Column("layer", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("admdiv", String(6), nullable=False),
    Column("counterparty", String(42), nullable=True),
    Column("vt_code", String(4), nullable=True),
    Column("voucher_no", String(42), nullable=True),
    Column("version", Integer, nullable=True),
    Column("left_amount_fen", BigInteger, nullable=True),
    Column("right_amount_fen", BigInteger, nullable=True),
    Column("left_state", String(32), nullable=True),
    Column("right_state", String(32), nullable=True),
    Column("detail", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("note", Text, nullable=True),
    Column("found_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("updated_by", String(64), nullable=False),
    Index("ix_discrepancies_status", "status", "layer"),
)
"""A break found by reconciliation, and its handling: open -> investigating -> annotated ->
resolved, every step audited."""

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("username", String(64), nullable=False),
    Column("party", String(42), nullable=False),
    Column("admdiv", String(6), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("key_verified", Boolean, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("last_seen_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("ended_at", TS, nullable=True),
)
"""A signed-in user of the web apps. The browser holds only a random token; its SM3 hash is
stored, so a copy of the database cannot be replayed as a cookie. ``key_verified`` records that
the user's USB key signed the login challenge."""

login_attempts = Table(
    "login_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False),
    Column("client", String(64), nullable=False),
    Column("at", TS, nullable=False),
    Column("ok", Boolean, nullable=False),
    Index("ix_login_attempts_user", "username", "at"),
    Index("ix_login_attempts_client", "client", "at"),
)
"""Every sign-in attempt, kept for rate limiting (failures per user and per client in a
window) and for the monitor."""

login_challenges = Table(
    "login_challenges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("nonce", String(32), nullable=False, unique=True),
    Column("username", String(64), nullable=False),
    Column("origin", String(256), nullable=False),
    Column("issued_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("used_at", TS, nullable=True),
    Index("ix_login_challenges_expires", "expires_at"),
)
"""Every sign-in challenge issued (``guoku.web.keylogin``), in the node database that holds the
user, so that any web process accepts it once: it is consumed by a conditional UPDATE (``WHERE
used_at IS NULL``) that only one request can win. Rows are deleted once long expired."""

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("system", String(64), nullable=False),
    Column("username", String(64), nullable=False),
    Column("party", String(42), nullable=False),
    Column("admdiv", String(6), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("revoked_at", TS, nullable=True),
)
"""A business system's bearer token for the HTTP service API (SM3 hash stored), scoped to one
party and admdiv; the system acts as ``username``, a service user whose posts an administrator
granted, so the library's post and separation-of-duties checks apply to it unchanged."""

# --- operations: the paper fallback and archives (guoku.ops, decisions 0021 and 0022) ---------

paper_vouchers = Table(
    "paper_vouchers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("admdiv", String(6), nullable=False),
    Column("st_year", Integer, nullable=False),
    Column("vt_code", String(4), nullable=False),
    Column("voucher_no", String(42), nullable=False),
    Column("version", Integer, nullable=False),
    Column("sender_party", String(42), nullable=False),
    Column("receiver_party", String(42), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("vou_date", String(8), nullable=False),
    Column("registered_by", String(64), nullable=False),
    Column("registered_at", TS, nullable=False),
    Column("status", String(10), nullable=False),
    Column("voucher_id", Integer, ForeignKey("vouchers.id"), nullable=True),
    Column("matched_at", TS, nullable=True),
    Column("detail", Text, nullable=True),
    UniqueConstraint("admdiv", "st_year", "vt_code", "voucher_no", "version", "sender_party",
                     name="uq_paper_vouchers_key"),
    CheckConstraint("status IN ('registered', 'matched', 'mismatch')",
                    name="ck_paper_vouchers_status"),
)
"""应急纸质凭证登记: a paper voucher the receiver processed while the link was down, by its
number, amount and date. When the electronic copy arrives it is the same voucher: matched
(and accepted once, for the registrar) or, when the paper says otherwise, a mismatch."""

archives = Table(
    "archives",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("archive_id", String(64), nullable=False, unique=True),
    Column("cutoff", String(8), nullable=False),
    Column("manifest_sm3", String(64), nullable=False),
    Column("vouchers", Integer, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("made_at", TS, nullable=False),
    Column("made_by", String(64), nullable=False),
    Column("purged_at", TS, nullable=True),
)
"""Every signed archive the node wrote (``guoku archive``), and when its rows left the live
database (``--purge``)."""
