"""Storage: SQLAlchemy Core tables, engines for SQLite (embedded default) and
PostgreSQL (production, several collectors on one database).

The schema itself is created by the Alembic migrations in ``server/migrations``;
these Table objects mirror them for queries (``tests/test_collector_store.py``
checks that the two agree).

All timestamps are UTC (``DateTime(timezone=True)``; SQLite hands them back naive,
:func:`utc` makes them aware again).
"""
from __future__ import annotations

import datetime as dt
import os
from typing import Any

from sqlalchemy import (JSON, BigInteger, Column, DateTime, ForeignKey, Index, Integer, LargeBinary, MetaData, String,
                        Table, Text, UniqueConstraint, create_engine, event)
from sqlalchemy.engine import Engine

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
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("report_id", String(36), nullable=False),
    Column("device_id", String(64), ForeignKey("devices.id"), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("keyid", String(64), nullable=False),
    Column("generated_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("policy_id", String(200), nullable=False),
    Column("policy_version", String(64), nullable=False),
    Column("policy_sha256", String(64), nullable=False),
    Column("payload_sha256", String(64), nullable=False),
    Column("envelope", Text, nullable=False),  # verbatim, as received
    UniqueConstraint("report_id", name="uq_reports_report_id"),
    UniqueConstraint("device_id", "sequence", name="uq_reports_device_sequence"),
)

device_state = Table(
    "device_state", metadata,
    Column("device_id", String(64), ForeignKey("devices.id"), primary_key=True),
    Column("last_sequence", BigInteger, nullable=False),
    Column("last_report_id", String(36), nullable=True),
    Column("verdict", String(16), nullable=True),
    Column("policy_id", String(200), nullable=True),
    Column("policy_version", String(64), nullable=True),
    Column("policy_sha256", String(64), nullable=True),
    Column("agent_version", String(64), nullable=True),
    Column("facts", JSON, nullable=True),
    Column("results", JSON, nullable=True),
    Column("generated_at", DateTime(timezone=True), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=True),
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

Index("ix_devices_unit", devices.c.unit_id)
Index("ix_reports_device_received", reports.c.device_id, reports.c.received_at)
Index("ix_unit_policies_unit", unit_policies.c.unit_id, unit_policies.c.id)
Index("ix_enrolment_tokens_unit", enrolment_tokens.c.unit_id)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


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
    return create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_recycle=1800)
