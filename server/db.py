"""Storage: SQLAlchemy Core tables, engines for SQLite (embedded default) and
PostgreSQL (production, several collectors on one database).

The schema itself is created by the Alembic migrations in ``server/migrations``;
these Table objects mirror them for queries (``tests/test_collector_store.py``
checks that the two agree).

All timestamps are UTC (``DateTime(timezone=True)``; SQLite hands them back naive,
:func:`utc` makes them aware again).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import uuid
from typing import Any, Iterator

from sqlalchemy import (JSON, BigInteger, Boolean, CheckConstraint, Column, Date, DateTime, ForeignKey, Index, Integer,
                        SmallInteger,
                        LargeBinary, MetaData, String, Table, Text, UniqueConstraint, create_engine, event, select, text,
                        update)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

DEFAULT_DB_URL = "sqlite:///./auditagent-collector.db"
DB_ENV = "AUDITAGENT_COLLECTOR_DB"

metadata = MetaData()

units = Table(
    "units", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("parent_id", Integer, ForeignKey("units.id"), nullable=True),
    Column("name", String(200), nullable=False),
    Column("path", String(2000), nullable=False, unique=True),  # materialised: "A/B/C"
    Column("depth", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Hours after which a device's last report is stale; NULL inherits from the nearest
    # ancestor that has one, else the collector default (24). `policy set` fills it from
    # the signed policy's settings.max_report_age_hours.
    Column("max_report_age_hours", Integer, nullable=True),
    # Bumped by what can change a closed day of the unit's trend (a report arriving after
    # its day ended, a device revoked): cached days counted under an older one are redone.
    Column("history_version", Integer, nullable=False, default=0, server_default="0"),
)

enrolment_tokens = Table(
    "enrolment_tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("unit_id", Integer, ForeignKey("units.id"), nullable=False),
    Column("token_sha256", String(64), nullable=False, unique=True),  # never the token itself
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("max_uses", Integer, nullable=False),
    Column("uses", Integer, nullable=False, default=0),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("note", String(500), nullable=True),
    # Set: an administrator's re-enrol token for this one device (migration 0007).
    Column("device_id", String(64), ForeignKey("devices.id"), nullable=True),
)

devices = Table(
    "devices", metadata,
    Column("id", String(64), primary_key=True),
    Column("unit_id", Integer, ForeignKey("units.id"), nullable=False),
    Column("hostname", String(255), nullable=False),
    Column("serial", String(255), nullable=True),
    Column("os", String(500), nullable=True),
    Column("platform", String(32), nullable=True),
    Column("agent_version", String(64), nullable=True),
    Column("current_keyid", String(64), nullable=False),
    Column("public_key", LargeBinary, nullable=False),  # raw 32-byte Ed25519 key (current)
    Column("enrolled_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("revoked_reason", String(500), nullable=True),
)

device_keys = Table(
    "device_keys", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(64), ForeignKey("devices.id"), nullable=False),
    Column("keyid", String(64), nullable=False),
    Column("public_key_pem", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("device_id", "keyid", name="uq_device_keys_device_keyid"),
)

reports = Table(
    "reports", metadata,
    # Fixed-width columns first, then the variable ones (no alignment padding between them,
    # migration 0018). The keyid is not kept: it is the payload's subject digest
    # (report_pack.keyid_of, checked at ingest); the policy's sha256 is in the payload too.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("sequence", BigInteger, nullable=False),
    Column("generated_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("report_id", String(36), nullable=False),
    Column("device_id", String(64), ForeignKey("devices.id"), nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("policy_id", String(200), nullable=False),
    Column("policy_version", String(64), nullable=False),
    # The signed bytes, compactly (server/report_pack.py): the raw Ed25519 signature, and
    # the payload's body without its facts and results (those are in report_blobs, once
    # each per month); the envelope is rebuilt from them for download.
    Column("signature", LargeBinary, nullable=False),
    Column("body", LargeBinary, nullable=False),
    # SQLite: report_id and (device_id, sequence) are UNIQUE. PostgreSQL partitions the table
    # by month of received_at (migration 0013), where a UNIQUE index would have to include
    # it: there the advisory locks and NOT EXISTS checks of report_write.py decide, with plain
    # indexes (report_id's a hash index: equality is all it is asked, in a quarter of the space).
)

# Every stored report's id, with its month of receipt (0023): "is this id stored?" is one
# primary-key lookup here instead of one per monthly partition of ``reports``. Written in
# the transaction that stores the report, deleted by retention with its month's reports.
report_ids = Table(
    "report_ids", metadata,
    Column("report_id", String(36), primary_key=True),
    Column("month", Date, nullable=False),
)

# How far retention has removed reports: the database refuses UPDATE of a report, and
# DELETE of one received at or after ``reports_before`` (one row, id 1; server/retention.py).
retention_state = Table(
    "retention_state", metadata,
    Column("id", Integer, primary_key=True),
    Column("reports_before", DateTime(timezone=True), nullable=False),
)

# The facts and results a report's body refers to, by sha256, stored once per month of
# receipt (so retention drops a month of them together with that month's reports;
# partitioned like reports on PostgreSQL). ``data`` is zlib-compressed.
report_blobs = Table(
    "report_blobs", metadata,
    Column("month", Date, primary_key=True),
    Column("sha256", LargeBinary, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

device_state = Table(
    "device_state", metadata,
    Column("device_id", String(64), ForeignKey("devices.id"), primary_key=True),
    Column("last_sequence", BigInteger, nullable=False),
    # The highest sequence of any report stored for the device, latest or history (0023):
    # a report above it cannot be stored already, so ingest skips the (device, sequence)
    # lookup in ``reports``, which probes every monthly partition on PostgreSQL. Retention
    # never lowers it (a bound, not a count: at or below it the lookup decides).
    Column("stored_sequence_max", BigInteger, nullable=False, default=0, server_default="0"),
    Column("last_report_id", String(36), nullable=True),
    Column("verdict", String(16), nullable=True),
    Column("policy_id", String(200), nullable=True),
    Column("policy_version", String(64), nullable=True),
    Column("policy_sha256", String(64), nullable=True),
    Column("agent_version", String(64), nullable=True),
    Column("generated_at", DateTime(timezone=True), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=True),
    # The latest facts and results are read from the latest report (last_report_id), not
    # copied here. Copies that let the state of every device be computed from this table alone: the
    # device's unit (it never changes) and the latest report's required checks not met
    # (sorted ids, comma-joined; '' when none).
    Column("unit_id", Integer, nullable=True),
    Column("failing_required", Text, nullable=False, default="", server_default=""),
    # Kept at ingest from the previous state (0012): the earliest failing_since of the
    # failing required checks, the earliest grace deadline among them, and those of them
    # without grace (comma-joined, sorted; '' when none).
    Column("failing_since", DateTime(timezone=True), nullable=True),
    Column("due_until", DateTime(timezone=True), nullable=True),
    Column("failing_hard", Text, nullable=False, default="", server_default=""),
    # The time-dependent inputs of the state as counted in unit_state_deltas (0022,
    # server/readiness/judged.py): stale and within-grace flags, true for every moment in
    # [judged_from, judge_again_at) (NULL: unbounded); a page judges a device by its own
    # row only outside that span.
    Column("counted_stale", SmallInteger, nullable=False, default=0, server_default="0"),
    Column("counted_due", SmallInteger, nullable=False, default=0, server_default="0"),
    Column("judged_from", DateTime(timezone=True), nullable=True),
    Column("judge_again_at", DateTime(timezone=True), nullable=True),
)

unit_policies = Table(
    "unit_policies", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("unit_id", Integer, ForeignKey("units.id"), nullable=False),
    Column("policy_id", String(200), nullable=True),
    Column("policy_version", String(64), nullable=True),
    Column("payload_sha256", String(64), nullable=False),
    Column("envelope", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# ------------------------------------------------------------------ readiness (0002)

ROLES = ("admin", "security_officer", "unit_manager")

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("password_hash", String(300), nullable=False),
    Column("role", String(32), nullable=False),
    Column("scope_unit_id", Integer, ForeignKey("units.id"), nullable=True),  # NULL = all units
    Column("lang", String(8), nullable=False, default="sv"),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("disabled_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("role IN ('admin', 'security_officer', 'unit_manager')", name="ck_users_role"),
    CheckConstraint("role <> 'unit_manager' OR scope_unit_id IS NOT NULL", name="ck_users_manager_scope"),
    CheckConstraint("role <> 'admin' OR scope_unit_id IS NULL", name="ck_users_admin_scope"),
)

sessions = Table(
    "sessions", metadata,
    Column("token_sha256", String(64), primary_key=True),  # never the token itself
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),  # absolute limit
    Column("last_seen_at", DateTime(timezone=True), nullable=False),  # idle limit counts from here
)

exceptions = Table(
    "exceptions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("check_id", String(200), nullable=False),
    Column("device_id", String(64), ForeignKey("devices.id"), nullable=True),
    Column("unit_id", Integer, ForeignKey("units.id"), nullable=True),  # covers the unit's whole subtree
    Column("justification", Text, nullable=False),
    Column("granted_by", Integer, ForeignKey("users.id"), nullable=False),
    Column("granted_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    # The date the officer picked (valid through it, in the organisation's time zone), when
    # granted by date; expires_at is then the end of that day there.
    Column("expires_on", Date, nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("revoked_by", Integer, ForeignKey("users.id"), nullable=True),
    Column("revoke_reason", Text, nullable=True),
    CheckConstraint("(device_id IS NULL) <> (unit_id IS NULL)", name="ck_exceptions_target"),
)

# Failure counters and blocks for log-in and enrolment (server.throttle), one row per key.
throttle = Table(
    "throttle", metadata,
    Column("key", String(400), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("blocked_until", DateTime(timezone=True), nullable=True),
    Column("blocks", Integer, nullable=False, default=0, server_default="0"),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=True),
    Column("action", String(64), nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("object_id", String(64), nullable=True),
    Column("detail", Text, nullable=True),  # JSON text
)

# The latest results per device, replaced with device_state in the same transaction.
device_checks = Table(
    "device_checks", metadata,
    Column("device_id", String(64), ForeignKey("devices.id"), primary_key=True),
    Column("check_id", String(200), primary_key=True),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    # When the check started failing in its current unbroken run (NULL while met), and
    # the run's grace deadline (NULL: none), both carried over from the previous report (0012).
    Column("failing_since", DateTime(timezone=True), nullable=True),
    Column("due_until", DateTime(timezone=True), nullable=True),
)

# One row per device and local day (the organisation's zone) it reported (the day's last report wins): the trend.
device_days = Table(
    "device_days", metadata,
    Column("device_id", String(64), ForeignKey("devices.id"), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("ready_strict", Boolean, nullable=False),
    Column("failing_required", Text, nullable=False, default=""),  # "check-a,check-b"
    Column("unit_id", Integer, nullable=True),  # the device's unit (it never changes), for the trend
    # The device's grace as the day's last report left it (0016), copied from device_state:
    # the earliest deadline of its failing required checks (NULL: none) and those of them
    # without grace. A report stored as history keeps none (its failing checks count as hard).
    Column("due_until", DateTime(timezone=True), nullable=True),
    Column("failing_hard", Text, nullable=False, default="", server_default=""),
)
Index("ix_device_days_unit_day", device_days.c.unit_id, device_days.c.day)

# Devices by state at the end of each closed local day, per unit (its own devices) and zone: the trend's cache.
unit_day_ready = Table(
    "unit_day_ready", metadata,
    Column("unit_id", Integer, ForeignKey("units.id"), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("ready", Integer, nullable=False),
    Column("not_ready", Integer, nullable=True),  # NULL: counted before 0008, count again
    Column("stale", Integer, nullable=True),
    Column("due", Integer, nullable=True),  # NULL: counted before 0016 (no due band), count again
    Column("history_version", Integer, nullable=False),  # units.history_version when counted
    Column("zone", String(64), nullable=True),  # the time zone of the day (0015); NULL: a UTC day, count again
)

# Counts of alike devices per unit (0016): +1/-1 rows written by triggers on device_state
# when a device's group (unit, agent version, failing required checks, those without
# grace) or its never-reported flag changes; summed by the dashboard
# (server/readiness/groups.py). Insert-only, so concurrent reports share no counter row.
unit_state_deltas = Table(
    "unit_state_deltas", metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("unit_id", Integer, nullable=False),
    Column("agent_version", String(64), nullable=True),
    Column("failing_required", Text, nullable=False),
    Column("failing_hard", Text, nullable=False),
    Column("n", Integer, nullable=False),
    Column("never", Integer, nullable=False),
    Column("stale", SmallInteger, nullable=False, default=0, server_default="0"),  # 0022: counted_stale
    Column("due", SmallInteger, nullable=False, default=0, server_default="0"),  # 0022: counted_due
)
Index("ix_unit_state_deltas_unit", unit_state_deltas.c.unit_id)

# The max report age (hours) each unit's devices are judged with (0022): ingest reads it
# to set judge_again_at; a unit whose hours in force differ (or that has no row) has its
# devices judged one by one by the pages until the sweep settles it.
unit_judged_ages = Table(
    "unit_judged_ages", metadata,
    Column("unit_id", Integer, primary_key=True),
    Column("hours", Integer, nullable=False),
)

# Each change of a unit's max report age (0013): a past day of the trend judges freshness
# by the max age in force at that day's end, not by today's.
unit_max_age_history = Table(
    "unit_max_age_history", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("unit_id", Integer, ForeignKey("units.id"), nullable=False),
    Column("max_report_age_hours", Integer, nullable=True),  # NULL: the unit stopped setting its own
    Column("from_at", DateTime(timezone=True), nullable=False),
)
Index("ix_unit_max_age_history_unit", unit_max_age_history.c.unit_id, unit_max_age_history.c.from_at)

# The TLS key a device registered for its readiness certificates (0006; server/access.py).
device_tls_keys = Table(
    "device_tls_keys", metadata,
    Column("device_id", String(64), ForeignKey("devices.id"), primary_key=True),
    Column("public_key", LargeBinary, nullable=False),  # DER SubjectPublicKeyInfo
    Column("key_sha256", String(64), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),  # signed by the device
    Column("registered_at", DateTime(timezone=True), nullable=False),
)

# A unit's devices in (unit, id) order with what a device list shows of them (0021: the
# join of device_state_rows reads them off the index); serves unit_id alone too.
Index("ix_devices_unit_cover", devices.c.unit_id, devices.c.id,
      postgresql_include=["hostname", "platform", "os", "revoked_at"])
# A unit page's devices in hostname order, walked a batch at a time (0020; the unit id
# rides along so the walk needs no heap row to tell the subtree's devices apart).
Index("ix_devices_hostname", devices.c.hostname, devices.c.id, devices.c.unit_id)
_REVOKED = text("revoked_at IS NOT NULL")
Index("ix_devices_revoked", devices.c.id, postgresql_where=_REVOKED, sqlite_where=_REVOKED)
# (unit_id, device_id): a unit's devices in the order exports stream them (0019); serves unit_id alone too.
Index("ix_device_state_unit_device", device_state.c.unit_id, device_state.c.device_id)
Index("ix_device_state_agent_version", device_state.c.agent_version)
Index("ix_unit_policies_unit", unit_policies.c.unit_id, unit_policies.c.id)
Index("ix_enrolment_tokens_unit", enrolment_tokens.c.unit_id)
Index("ix_device_checks_check_status", device_checks.c.check_id, device_checks.c.status)
_FAILING = text("status IN ('fail', 'unknown')")
Index("ix_device_checks_failing", device_checks.c.device_id, device_checks.c.check_id, device_checks.c.severity,
      postgresql_where=_FAILING, sqlite_where=_FAILING)
Index("ix_device_checks_failing_since", device_checks.c.failing_since, postgresql_where=_FAILING,
      sqlite_where=_FAILING)
Index("ix_device_state_generated", device_state.c.generated_at)
_IN_GRACE = text("due_until IS NOT NULL")
Index("ix_device_state_due", device_state.c.due_until, postgresql_where=_IN_GRACE, sqlite_where=_IN_GRACE)  # 0016
_AGAIN = text("judge_again_at IS NOT NULL")
Index("ix_device_state_judge_again", device_state.c.judge_again_at, postgresql_where=_AGAIN, sqlite_where=_AGAIN)
_FROM = text("judged_from IS NOT NULL")
Index("ix_device_state_judged_from", device_state.c.judged_from, postgresql_where=_FROM, sqlite_where=_FROM)
Index("ix_device_days_day", device_days.c.day)
# Retention deletes a month of ids (0023). BRIN on PostgreSQL: ids are inserted in order of
# receipt, so block ranges summarise months in a few pages rather than a B-tree of every row.
Index("ix_report_ids_month", report_ids.c.month, postgresql_using="brin")
Index("ix_exceptions_check", exceptions.c.check_id, exceptions.c.expires_at)
Index("ix_exceptions_device", exceptions.c.device_id)
Index("ix_exceptions_unit", exceptions.c.unit_id)
Index("ix_sessions_user", sessions.c.user_id)
Index("ix_audit_log_at", audit_log.c.at)
Index("ix_audit_log_object", audit_log.c.object_type, audit_log.c.object_id)

# ------------------------------------------------------------------ API tokens (0006)

# A token acts as its own user row (username "token:NAME", a password no log-in can
# match): role and unit scope live in one place, and what it does (exception grants,
# audit entries) names it. This table holds only the secret's hash and its lifetime.
api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, unique=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("token_sha256", String(64), nullable=False, unique=True),  # never the token itself
    Column("prefix", String(16), nullable=False),  # "aat_" + 8 characters: tells tokens apart in lists
    Column("created_by", Integer, ForeignKey("users.id"), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("note", String(500), nullable=True),
)

# ------------------------------------------------------------------ single sign-on (0009)

# A log-in on its way through the OpenID provider: one use, ten minutes (server/oidc.py).
oidc_pending = Table(
    "oidc_pending", metadata,
    Column("state_sha256", String(64), primary_key=True),
    Column("binding_sha256", String(64), nullable=False),  # the browser's aa_oidc cookie
    Column("nonce", String(64), nullable=False),
    Column("code_verifier", String(128), nullable=False),
    Column("next_path", String(2000), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Which local user an identity at a provider is: (issuer, subject), never a name.
oidc_identities = Table(
    "oidc_identities", metadata,
    Column("issuer", String(500), primary_key=True),
    Column("subject", String(255), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# ------------------------------------------------------------------ notifications (0010)

# What an officer wants to hear about one unit's subtree, and where (server/notify/).
notify_subscriptions = Table(
    "notify_subscriptions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("unit_id", Integer, ForeignKey("units.id"), nullable=False),
    Column("channel", String(16), nullable=False),  # email | webhook
    Column("target", String(500), nullable=False),  # an e-mail address or an https URL
    Column("secret", String(100), nullable=True),  # webhook HMAC key
    Column("events", String(200), nullable=False),  # comma-joined event names
    Column("exception_days", Integer, nullable=False),
    Column("target_pct", Integer, nullable=True),
    Column("lang", String(8), nullable=False),
    Column("snapshot", JSON, nullable=True),  # device id → state at the last digest
    Column("last_digest_day", Date, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# The durable outbox: one digest per subscription and day, retried with backoff until
# delivered or given up; a restart loses nothing.
notify_outbox = Table(
    "notify_outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscription_id", Integer, ForeignKey("notify_subscriptions.id", ondelete="CASCADE"), nullable=False),
    Column("day", Date, nullable=False),
    Column("payload", Text, nullable=False),  # JSON: the digest, rendered per channel on delivery
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("failed_at", DateTime(timezone=True), nullable=True),
    Column("last_error", String(500), nullable=True),
    UniqueConstraint("subscription_id", "day", name="uq_notify_outbox_subscription_day"),
)
Index("ix_notify_outbox_due", notify_outbox.c.next_attempt_at)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def as_date(value: Any) -> dt.date:
    """A DATE column's value as a date (SQLite hands back text, a datetime may come too)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def resolve_db_url(url: str | None) -> str:
    return url or os.environ.get(DB_ENV) or DEFAULT_DB_URL


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 20) -> Engine:
    """An engine with the settings the collector relies on: SQLite in WAL mode with a
    busy timeout (several writers wait instead of failing), PostgreSQL via psycopg 3
    with a connection pool."""
    if is_sqlite(url):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=False)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy's BEGIN drive transactions (pysqlite's own is off).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # IMMEDIATE: take the write lock up front, so busy_timeout applies instead of
            # a deadlock-style SQLITE_BUSY when a read transaction tries to upgrade.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    # No pre-ping: it costs a round trip per request; recycle instead, and a broken
    # connection fails one request (the agent retries) and is discarded by the pool.
    # Set once per connection, when it is opened (no round trip per request):
    # JIT off: the dashboard's aggregates are estimated as costly (correlated checks per
    # device) and JIT compilation then took ~1 s per query, far more than the query itself.
    # Custom plans only: psycopg prepares a statement run five times on one connection
    # without a rollback between (one_of keeps a page's text the same whatever its lists),
    # and after five more runs PostgreSQL may keep one generic plan for all values, blind
    # to how few devices a unit list or a grace deadline selects: it read a 25k-device
    # unit's due devices 4x slower (35 -> 125 ms). A served request ends in a rollback, which
    # empties psycopg's prepared statements, so this guards pages read many times in one
    # transaction (scripts, benchmarks). The group-commit batch sets it back to auto for
    # its own transactions (server/report_write.py: its generic plan is the cheaper one).
    return create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_recycle=1800,
                         connect_args={"options": "-c jit=off -c plan_cache_mode=force_custom_plan"})


@contextlib.contextmanager
def scratch_database(base_url: str, prefix: str = "aa_scratch") -> Iterator[str]:
    """A new, uniquely named PostgreSQL database for tests and benchmarks: CREATE it,
    yield its URL, DROP it (WITH FORCE) afterwards."""
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=0)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            try:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except DBAPIError:
                # FORCE must signal every other session itself, and a role without
                # pg_signal_backend may not signal an autovacuum worker that has just
                # started on the database; a plain DROP stops autovacuum on its own.
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def set_max_report_age(conn: Any, unit_id: int, hours: int | None, at: dt.datetime) -> None:
    """Set a unit's max report age (None: inherit) from ``at`` on, keeping the change in
    its history when it is one."""
    before = conn.execute(select(units.c.max_report_age_hours).where(units.c.id == unit_id)).scalar_one()
    conn.execute(update(units).where(units.c.id == unit_id).values(max_report_age_hours=hours))
    conn.info.pop("own_max_ages", None)  # the dashboard's per-transaction read of them (readiness/state.py)
    if before != hours:
        conn.execute(unit_max_age_history.insert().values(unit_id=unit_id, max_report_age_hours=hours, from_at=at))
        # Days already counted by the trend stay right unless ``at`` is in the past: redo
        # the subtree's (a rare event; see server.readiness.trend).
        path = conn.execute(select(units.c.path).where(units.c.id == unit_id)).scalar_one()
        conn.execute(update(units).where((units.c.path == path) | units.c.path.startswith(path + "/", autoescape=True))
                     .values(history_version=units.c.history_version + 1))


def write_audit(conn: Any, actor_id: int | None, action: str, object_type: str, object_id: Any,
                detail: dict[str, Any], now: dt.datetime) -> None:
    """One audit-log entry, in the caller's transaction (``actor_id`` None: the system or the CLI).

    Every writer of the audit log calls this (users, tokens, devices, policies, exceptions,
    subscriptions), so an entry has one shape: ``at`` in UTC, ``object_id`` as text, ``detail``
    as JSON."""
    import json

    conn.execute(audit_log.insert().values(at=utc(now), user_id=actor_id, action=action, object_type=object_type,
                                           object_id=None if object_id is None else str(object_id),
                                           detail=json.dumps(detail, ensure_ascii=False, default=str)))
