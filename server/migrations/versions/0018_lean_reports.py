"""Leaner ``reports`` rows (issue 13 item 3): the keyid and the policy's sha256, 64 hex
characters each, are no longer kept beside the signed payload that holds them (the
keyid is the payload's subject digest, which ingest has always required to be the
signing key's keyid; the envelope is rebuilt with it, server/report_pack.keyid_of); the
fixed-width columns come first, so no row pads between them; on PostgreSQL the index
on report_id is a hash index (only ever asked for equality; half a b-tree's size on
random UUIDs). New reports are kept in body layout 2 (server/report_pack.py: one entry
per segment, the report and device ids left to the row's columns); bodies stored before
stay in layout 1, which is read as before.

Every stored report is checked first: the upgrade refuses (changing nothing) if any
report's keyid or policy sha256 is not the one in its payload. On PostgreSQL the
partitioned table is rebuilt month by month, the rows copied in the database; on SQLite
the table is recreated without the two columns. The downgrade restores both columns
from the payloads and turns bodies of layout 2 back into layout 1 (its segments stored).

Revision ID: 0018
Revises: 0017
"""
from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_BATCH = 1000
# (name, PostgreSQL type): the layout after this migration, fixed-width columns first.
_LEAN = (("id", "BIGINT NOT NULL DEFAULT nextval('{seq}')"), ("sequence", "BIGINT NOT NULL"),
         ("generated_at", "TIMESTAMPTZ NOT NULL"), ("received_at", "TIMESTAMPTZ NOT NULL"),
         ("report_id", "VARCHAR(36) NOT NULL"), ("device_id", "VARCHAR(64) NOT NULL REFERENCES devices (id)"),
         ("verdict", "VARCHAR(16) NOT NULL"), ("policy_id", "VARCHAR(200) NOT NULL"),
         ("policy_version", "VARCHAR(64) NOT NULL"), ("signature", "BYTEA NOT NULL"), ("body", "BYTEA NOT NULL"))
# The layout before (0013's), for the downgrade.
_WIDE = (("id", "BIGINT NOT NULL DEFAULT nextval('{seq}')"), ("report_id", "VARCHAR(36) NOT NULL"),
         ("device_id", "VARCHAR(64) NOT NULL REFERENCES devices (id)"), ("sequence", "BIGINT NOT NULL"),
         ("keyid", "VARCHAR(64) NOT NULL"), ("generated_at", "TIMESTAMPTZ NOT NULL"),
         ("received_at", "TIMESTAMPTZ NOT NULL"), ("verdict", "VARCHAR(16) NOT NULL"),
         ("policy_id", "VARCHAR(200) NOT NULL"), ("policy_version", "VARCHAR(64) NOT NULL"),
         ("policy_sha256", "VARCHAR(64) NOT NULL"), ("body", "BYTEA NOT NULL"), ("signature", "BYTEA NOT NULL"))
_KEPT = tuple(name for name, _ in _LEAN)

_PG_TRIGGER = ("CREATE TRIGGER reports_append_only BEFORE UPDATE OR DELETE ON reports "
               "FOR EACH ROW EXECUTE FUNCTION auditagent_reports_append_only()")  # the function is 0013's
_SQLITE_TRIGGERS = (  # as 0013 made them
    "CREATE TRIGGER reports_no_update BEFORE UPDATE ON reports "
    "BEGIN SELECT RAISE(ABORT, 'reports are append-only'); END",
    "CREATE TRIGGER reports_no_delete BEFORE DELETE ON reports WHEN OLD.received_at >= "
    "COALESCE((SELECT reports_before FROM retention_state WHERE id = 1), '') "
    "BEGIN SELECT RAISE(ABORT, 'reports are append-only'); END")


def _signed_fields(bind, table: str, after_id: int) -> list[tuple[int, str, str, sa.Row, bytes]]:
    """The next batch of ``table``'s reports after ``after_id``: (id, keyid, policy sha256
    as the payload holds them, the row, the payload)."""
    from server.report_read import payloads_of

    t = sa.table(table, *(sa.column(c) for c in _KEPT))
    t.c.received_at.type = sa.DateTime(timezone=True)
    rows = bind.execute(sa.select(t).where(t.c.id > after_id).order_by(t.c.id).limit(_BATCH)).all()
    out = []
    for row, payload in zip(rows, payloads_of(bind, rows)):
        st = json.loads(payload)
        out.append((row.id, st["subject"][0]["digest"]["sha256"], st["predicate"]["policy"]["sha256"], row, payload))
    return out


def _each_batch(bind, table: str):
    last = 0
    while batch := _signed_fields(bind, table, last):
        yield batch
        last = batch[-1][0]


def _check_derivable(bind) -> None:
    """Refuse (before anything changes) if a stored keyid or policy sha256 is not its payload's."""
    stored = sa.table("reports", sa.column("id"), sa.column("keyid"), sa.column("policy_sha256"))
    for batch in _each_batch(bind, "reports"):
        ids = [b[0] for b in batch]
        kept = {r.id: (r.keyid, r.policy_sha256) for r in bind.execute(
            sa.select(stored).where(stored.c.id.in_(ids)))}
        for rid, kid, policy_sha, _, _ in batch:
            if kept[rid] != (kid, policy_sha):
                raise RuntimeError(f"reports.id {rid}: its keyid/policy_sha256 differ from its signed payload's; "
                                   "not converted (nothing changed)")


def _as_layout_1(bind, batch) -> dict[int, bytes]:
    """Each report's body in layout 1 (what 0017 reads), its segments stored for its month."""
    from server import report_pack
    from server.partitions import month_of

    bodies, blobs = {}, {}
    for rid, _, _, row, payload in batch:
        packed = report_pack.pack(payload)
        bodies[rid] = packed.body
        blobs.update({(month_of(row.received_at), sha): seg for sha, seg in packed.segments.items()})
    if blobs:
        bind.execute(sa.text("INSERT INTO report_blobs (month, sha256, data) VALUES (:m, :s, :d) "
                             "ON CONFLICT DO NOTHING"),
                     [{"m": m, "s": sha, "d": report_pack.compress_segment(seg)} for (m, sha), seg in blobs.items()])
    return bodies


def _pg_rebuild(bind, layout, copy) -> None:
    """Rebuild the partitioned ``reports`` with ``layout``, the same months; ``copy(old)``
    fills it from the old table ``old``; then its keys, indexes and trigger."""
    from server import partitions

    seq = bind.exec_driver_sql("SELECT pg_get_serial_sequence('reports', 'id')").scalar()
    months = partitions.months(bind, "reports")
    op.execute(f"ALTER SEQUENCE {seq} OWNED BY NONE")
    op.execute("ALTER TABLE reports RENAME TO reports_old")
    for month in months:
        name = partitions.partition_name("reports", month)
        op.execute(f"ALTER TABLE IF EXISTS {name} RENAME TO {name}_old")
    op.execute("ALTER TABLE IF EXISTS reports_default RENAME TO reports_default_old")
    columns = ", ".join(f"{name} {sql.format(seq=seq)}" for name, sql in layout)
    op.execute(f"CREATE TABLE reports ({columns}, CONSTRAINT ck_reports_sequence CHECK (sequence >= 1)) "
               "PARTITION BY RANGE (received_at)")
    for month in months:
        partitions.create_month(bind, "reports", month)
    partitions.create_default(bind, "reports")
    copy("reports_old")
    op.execute("DROP TABLE reports_old")
    op.execute(f"ALTER SEQUENCE {seq} OWNED BY reports.id")
    op.execute("ALTER TABLE reports ADD CONSTRAINT reports_pkey PRIMARY KEY (id, received_at)")
    op.execute("CREATE INDEX ix_reports_device_sequence ON reports (device_id, sequence)")
    op.execute(_PG_TRIGGER)


def upgrade() -> None:
    bind = op.get_bind()
    _check_derivable(bind)
    if bind.dialect.name == "postgresql":
        cols = ", ".join(_KEPT)
        _pg_rebuild(bind, _LEAN, lambda old: op.execute(f"INSERT INTO reports ({cols}) SELECT {cols} FROM {old}"))
        op.execute("CREATE INDEX ix_reports_report_id ON reports USING hash (report_id)")
        return
    for trigger in ("reports_no_update", "reports_no_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    with op.batch_alter_table("reports", recreate="always") as batch:
        batch.drop_column("keyid")
        batch.drop_column("policy_sha256")
    for sql in _SQLITE_TRIGGERS:
        op.execute(sql)


def downgrade() -> None:
    bind = op.get_bind()
    full = ("keyid", "policy_sha256")
    if bind.dialect.name == "postgresql":
        def copy(old: str) -> None:
            new = sa.table("reports", *(sa.column(c) for c in _KEPT + full))
            for batch in _each_batch(bind, old):
                bodies = _as_layout_1(bind, batch)
                bind.execute(sa.insert(new), [{**{c: getattr(row, c) for c in _KEPT}, "keyid": kid,
                                               "policy_sha256": policy_sha, "body": bodies[rid]}
                                              for rid, kid, policy_sha, row, _ in batch])

        _pg_rebuild(bind, _WIDE, copy)
        op.execute("CREATE INDEX ix_reports_report_id ON reports (report_id)")
        return
    for trigger in ("reports_no_update", "reports_no_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("keyid", sa.String(64), nullable=True))
        batch.add_column(sa.Column("policy_sha256", sa.String(64), nullable=True))
    upd = sa.table("reports", sa.column("id"), sa.column("body"), *(sa.column(c) for c in full))
    for batch in _each_batch(bind, "reports"):
        bodies = _as_layout_1(bind, batch)
        for rid, kid, policy_sha, _, _ in batch:
            bind.execute(upd.update().where(upd.c.id == rid).values(keyid=kid, policy_sha256=policy_sha,
                                                                    body=bodies[rid]))
    with op.batch_alter_table("reports") as batch:
        batch.alter_column("keyid", nullable=False)
        batch.alter_column("policy_sha256", nullable=False)
    for sql in _SQLITE_TRIGGERS:
        op.execute(sql)
