"""Compact report storage: each report's signed bytes kept once, as the payload's body
(facts and results cut out into ``report_blobs``, once each per month) and the raw
signature, instead of the base64 envelope text (server/report_pack.py); ``device_state``
loses its copies of the latest facts and results (read from the latest report). On
PostgreSQL ``reports`` and ``report_blobs`` become partitioned by month (server/partitions.py),
so retention (server/retention.py) drops whole months. Every stored report is converted;
the envelope rebuilt from the new form verifies with the same signature.

Revision ID: 0013
Revises: 0012
"""
from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_BATCH = 500
_COLUMNS = ("id", "report_id", "device_id", "sequence", "keyid", "generated_at", "received_at", "verdict",
            "policy_id", "policy_version", "policy_sha256")


def _signed_bytes(envelope_text: str, keyid: str) -> tuple[bytes, bytes]:
    """(payload, the signature by ``keyid``) of a stored envelope (verified at ingest)."""
    from auditagent.report import b64decode

    env = json.loads(envelope_text)
    sig = next((s["sig"] for s in env["signatures"] if s.get("keyid") == keyid), env["signatures"][0]["sig"])
    return b64decode(env["payload"], "payload"), b64decode(sig, "sig")


def _packed(row: sa.Row) -> tuple[dict, dict[bytes, bytes]]:
    from server import report_pack
    from server.partitions import month_of

    payload, signature = _signed_bytes(row.envelope, row.keyid)
    packed = report_pack.pack(payload)
    values = {c: getattr(row, c) for c in _COLUMNS}
    values.update(body=packed.body, signature=signature)
    return values, {(month_of(row.received_at), sha): seg for sha, seg in packed.segments.items()}


def _blob_rows(blobs: dict) -> list[dict]:
    from server.report_pack import compress_segment

    return [{"month": m, "sha256": sha, "data": compress_segment(seg)} for (m, sha), seg in blobs.items()]


def _typed(table: str, *extra: str) -> sa.TableClause:
    """The report columns (times typed, so SQLite's text comes back as datetimes)."""
    times = ("generated_at", "received_at")
    return sa.table(table, *(sa.column(c, sa.DateTime(timezone=True)) if c in times else sa.column(c)
                             for c in _COLUMNS), *(sa.column(e) for e in extra))


def _reports_old(table: str) -> sa.TableClause:
    return _typed(table, "envelope", "payload_sha256")


def _blobs_table() -> sa.TableClause:
    return sa.table("report_blobs", sa.column("month", sa.Date), sa.column("sha256"), sa.column("data"))


def _create_blobs(pg: bool) -> None:
    op.create_table(
        "report_blobs",
        sa.Column("month", sa.Date, primary_key=True),
        sa.Column("sha256", sa.LargeBinary, primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
        **({"postgresql_partition_by": "RANGE (month)"} if pg else {}),
    )


# Append-only, except for what retention removes: a row received before the limit that
# ``retention_state`` records (server/retention.py moves it forward, then deletes).
_PG_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION auditagent_reports_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND OLD.received_at < (SELECT reports_before FROM retention_state WHERE id = 1) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'reports are append-only';
END $$"""
_PG_TRIGGER = ("CREATE TRIGGER reports_append_only BEFORE UPDATE OR DELETE ON reports "
               "FOR EACH ROW EXECUTE FUNCTION auditagent_reports_append_only()")
_SQLITE_NO_UPDATE = ("CREATE TRIGGER reports_no_update BEFORE UPDATE ON reports "
                     "BEGIN SELECT RAISE(ABORT, 'reports are append-only'); END")
_SQLITE_NO_DELETE = ("CREATE TRIGGER reports_no_delete BEFORE DELETE ON reports WHEN OLD.received_at >= "
                     "COALESCE((SELECT reports_before FROM retention_state WHERE id = 1), '') "
                     "BEGIN SELECT RAISE(ABORT, 'reports are append-only'); END")
_SQLITE_NO_DELETE_0001 = ("CREATE TRIGGER reports_no_delete BEFORE DELETE ON reports "
                          "BEGIN SELECT RAISE(ABORT, 'reports are append-only'); END")


def _drop_sqlite_triggers() -> None:
    op.execute("DROP TRIGGER IF EXISTS reports_no_update")
    op.execute("DROP TRIGGER IF EXISTS reports_no_delete")


def upgrade() -> None:
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    op.create_table(
        "retention_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("reports_before", sa.DateTime(timezone=True), nullable=False),
    )
    _create_blobs(pg)
    blobs_t = _blobs_table()
    if pg:
        _upgrade_pg(bind, blobs_t)
        op.execute(_PG_APPEND_ONLY)
        op.execute(_PG_TRIGGER)
    else:
        _drop_sqlite_triggers()
        _upgrade_sqlite(bind, blobs_t)
        op.execute(_SQLITE_NO_UPDATE)
        op.execute(_SQLITE_NO_DELETE)
    with op.batch_alter_table("device_state") as batch:
        batch.drop_column("facts")
        batch.drop_column("results")


def _upgrade_sqlite(bind, blobs_t) -> None:
    op.drop_index("ix_reports_device_received", table_name="reports")  # no query reads by it
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("body", sa.LargeBinary, nullable=True))
        batch.add_column(sa.Column("signature", sa.LargeBinary, nullable=True))
    old = _reports_old("reports")
    upd = sa.table("reports", sa.column("id"), sa.column("body"), sa.column("signature"))
    last = 0
    while True:
        rows = bind.execute(sa.select(old).where(old.c.id > last).order_by(old.c.id).limit(_BATCH)).all()
        if not rows:
            break
        blobs: dict = {}
        for row in rows:
            values, segs = _packed(row)
            blobs.update(segs)
            bind.execute(upd.update().where(upd.c.id == row.id).values(body=values["body"],
                                                                        signature=values["signature"]))
        bind.execute(sa.insert(blobs_t).prefix_with("OR IGNORE"), _blob_rows(blobs))
        last = rows[-1].id
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("envelope")
        batch.drop_column("payload_sha256")  # a resend is recognised by its signed bytes
        batch.alter_column("body", nullable=False)
        batch.alter_column("signature", nullable=False)


def _upgrade_pg(bind, blobs_t) -> None:
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    from server import partitions

    seq = bind.exec_driver_sql("SELECT pg_get_serial_sequence('reports', 'id')").scalar()
    op.execute(f"ALTER SEQUENCE {seq} OWNED BY NONE")
    op.execute("ALTER TABLE reports RENAME TO reports_unpartitioned")
    for name in ("uq_reports_report_id", "uq_reports_device_sequence"):
        op.execute(f"ALTER TABLE reports_unpartitioned DROP CONSTRAINT {name}")
    op.execute("ALTER INDEX ix_reports_device_received RENAME TO ix_reports_unpartitioned_device_received")
    op.execute("ALTER TABLE reports_unpartitioned RENAME CONSTRAINT reports_pkey TO reports_unpartitioned_pkey")
    op.execute(
        "CREATE TABLE reports ("
        f"id BIGINT NOT NULL DEFAULT nextval('{seq}'), report_id VARCHAR(36) NOT NULL, "
        "device_id VARCHAR(64) NOT NULL REFERENCES devices (id), sequence BIGINT NOT NULL, "
        "keyid VARCHAR(64) NOT NULL, generated_at TIMESTAMPTZ NOT NULL, received_at TIMESTAMPTZ NOT NULL, "
        "verdict VARCHAR(16) NOT NULL, policy_id VARCHAR(200) NOT NULL, policy_version VARCHAR(64) NOT NULL, "
        "policy_sha256 VARCHAR(64) NOT NULL, body BYTEA NOT NULL, "
        "signature BYTEA NOT NULL, CONSTRAINT reports_pkey PRIMARY KEY (id, received_at), "
        "CONSTRAINT ck_reports_sequence CHECK (sequence >= 1)) PARTITION BY RANGE (received_at)")
    op.execute(f"ALTER SEQUENCE {seq} OWNED BY reports.id")
    op.create_index("ix_reports_report_id", "reports", ["report_id"])
    op.create_index("ix_reports_device_sequence", "reports", ["device_id", "sequence"])
    today = dt.datetime.now(dt.timezone.utc).date()
    oldest = bind.exec_driver_sql("SELECT min(received_at) FROM reports_unpartitioned").scalar()
    month = partitions.month_of(oldest) if oldest is not None else partitions.month_of(today)
    # Every month that holds reports (up to 10 years back; older ones go to the default).
    month = max(month, partitions.add_months(partitions.month_of(today), -120))
    last = partitions.add_months(partitions.month_of(today), partitions.AHEAD)
    while month <= last:
        for table in partitions.TABLES:
            partitions.create_month(bind, table, month)
        month = partitions.add_months(month, 1)
    for table in partitions.TABLES:
        partitions.create_default(bind, table)
    old = _reports_old("reports_unpartitioned")
    new = _typed("reports", "body", "signature")
    last_id = 0
    while True:
        rows = bind.execute(sa.select(old).where(old.c.id > last_id).order_by(old.c.id).limit(_BATCH)).all()
        if not rows:
            break
        converted, blobs = [], {}
        for row in rows:
            values, segs = _packed(row)
            converted.append(values)
            blobs.update(segs)
        bind.execute(sa.insert(new), converted)
        bind.execute(pg_insert(blobs_t).on_conflict_do_nothing(), _blob_rows(blobs))
        last_id = rows[-1].id
    op.execute("DROP TABLE reports_unpartitioned")


def _envelope_columns(envelope_text: str) -> dict[str, str]:
    import hashlib

    from auditagent.report import b64decode

    payload = b64decode(json.loads(envelope_text)["payload"], "payload")
    return {"envelope": envelope_text, "payload_sha256": hashlib.sha256(payload).hexdigest()}


def downgrade() -> None:
    from server import report_pack

    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    if not pg:
        _drop_sqlite_triggers()
    with op.batch_alter_table("device_state") as batch:
        batch.add_column(sa.Column("facts", sa.JSON, nullable=True))
        batch.add_column(sa.Column("results", sa.JSON, nullable=True))
    packed_t = _typed("reports", "body", "signature")
    blobs_t = _blobs_table()
    segments = {(r.month, bytes(r.sha256)): report_pack.decompress_segment(r.data)
                for r in bind.execute(sa.select(blobs_t))}

    def envelope(row) -> str:
        from server.partitions import month_of

        month = month_of(row.received_at)
        payload = report_pack.unpack(bytes(row.body), {sha: seg for (m, sha), seg in segments.items() if m == month})
        return report_pack.envelope_text(payload, row.keyid, bytes(row.signature))

    rows = bind.execute(sa.select(packed_t).order_by(packed_t.c.id)).all()
    if pg:
        seq = bind.exec_driver_sql("SELECT pg_get_serial_sequence('reports', 'id')").scalar()
        op.execute(f"ALTER SEQUENCE {seq} OWNED BY NONE")
        op.execute("DROP TABLE reports")
        op.create_table(
            "reports",
            sa.Column("id", sa.BigInteger, primary_key=True, server_default=sa.text(f"nextval('{seq}')")),
            sa.Column("report_id", sa.String(36), nullable=False),
            sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), nullable=False),
            sa.Column("sequence", sa.BigInteger, nullable=False),
            sa.Column("keyid", sa.String(64), nullable=False),
            sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("verdict", sa.String(16), nullable=False),
            sa.Column("policy_id", sa.String(200), nullable=False),
            sa.Column("policy_version", sa.String(64), nullable=False),
            sa.Column("policy_sha256", sa.String(64), nullable=False),
            sa.Column("payload_sha256", sa.String(64), nullable=False),
            sa.Column("envelope", sa.Text, nullable=False),
            sa.UniqueConstraint("report_id", name="uq_reports_report_id"),
            sa.UniqueConstraint("device_id", "sequence", name="uq_reports_device_sequence"),
            sa.CheckConstraint("sequence >= 1", name="ck_reports_sequence"),
        )
        op.execute(f"ALTER SEQUENCE {seq} OWNED BY reports.id")
        op.create_index("ix_reports_device_received", "reports", ["device_id", "received_at"])
        op.execute(_PG_TRIGGER)
        full = _typed("reports", "envelope", "payload_sha256")
        for i in range(0, len(rows), _BATCH):
            bind.execute(sa.insert(full), [{**{c: getattr(r, c) for c in _COLUMNS}, **_envelope_columns(envelope(r))}
                                           for r in rows[i:i + _BATCH]])
    else:
        with op.batch_alter_table("reports") as batch:
            batch.add_column(sa.Column("envelope", sa.Text, nullable=True))
            batch.add_column(sa.Column("payload_sha256", sa.String(64), nullable=True))
        upd = sa.table("reports", sa.column("id"), sa.column("envelope"), sa.column("payload_sha256"))
        for r in rows:
            bind.execute(upd.update().where(upd.c.id == r.id).values(**_envelope_columns(envelope(r))))
        with op.batch_alter_table("reports") as batch:
            batch.drop_column("body")
            batch.drop_column("signature")
            batch.alter_column("envelope", nullable=False)
            batch.alter_column("payload_sha256", nullable=False)
        op.create_index("ix_reports_device_received", "reports", ["device_id", "received_at"])
        op.execute(_SQLITE_NO_UPDATE)
        op.execute(_SQLITE_NO_DELETE_0001)
    op.drop_table("report_blobs")
    if pg:  # the function as 0001 made it
        op.execute("CREATE OR REPLACE FUNCTION auditagent_reports_append_only() RETURNS trigger LANGUAGE plpgsql "
                   "AS $$ BEGIN RAISE EXCEPTION 'reports are append-only'; END $$")
    op.drop_table("retention_state")
