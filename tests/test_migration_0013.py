"""Migration 0013 on a database that has reports (SQLite and PostgreSQL): every stored
envelope is converted to the compact form (body + raw signature, facts and results once
in report_blobs), the envelope rebuilt from it is the very text stored before and still
verifies; reports stay append-only; on PostgreSQL the table is partitioned by month.
And back down to 0012: the envelopes are the same text again."""
from __future__ import annotations

import datetime as dt
import uuid

from alembic import command
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import inspect, select, text

from auditagent import report as wire
from migration_rows import insert_unit_and_device
from server import migrate
from server.db import make_engine, report_blobs, reports
from server.report_read import SIGNED_COLUMNS, envelope_of

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
MONTHS_AGO = NOW - dt.timedelta(days=70)


def _envelopes(device_id: str, key) -> list[tuple[int, dt.datetime, str]]:
    out = []
    for seq, received in ((1, MONTHS_AGO), (2, MONTHS_AGO + dt.timedelta(hours=1)), (3, NOW)):
        pred = wire.build_predicate(
            device={"id": device_id, "hostname": "laptop-1", "serial": "SN", "os": "Windows 11", "platform": "windows"},
            agent_version="0.1.0", policy={"id": "baseline", "version": "1", "sha256": "ab" * 32},
            facts={"disk": {"status": "ok", "volumes": [{"mount": "C:", "encrypted": True}]}, "text": "Välkommen"},
            results=[{"check_id": "disk-encrypted", "status": "pass", "severity": "required"}],
            verdict="ready", sequence=seq, generated_at=received.isoformat().replace("+00:00", "Z"))
        st = wire.build_statement(device_id=device_id, public_key=key.public_key(), predicate=pred)
        out.append((seq, received, wire.envelope_bytes(wire.sign_envelope(st, key)).decode()))
    return out


def test_upgrade_converts_reports_and_downgrade_restores_them(collector_db_url):
    engine = make_engine(collector_db_url, pool_size=1, max_overflow=0)
    key = Ed25519PrivateKey.generate()
    kid = wire.keyid(key.public_key())
    device_id = str(uuid.uuid4())
    envs = _envelopes(device_id, key)
    try:
        migrate.upgrade(engine, "0012")
        with engine.begin() as conn:
            insert_unit_and_device(conn, device_id, key, created=NOW, enrolled=MONTHS_AGO)
            for seq, received, env in envs:
                conn.execute(text(
                    "INSERT INTO reports (report_id, device_id, sequence, keyid, generated_at, received_at, verdict, "
                    "policy_id, policy_version, policy_sha256, payload_sha256, envelope) VALUES (:r, :d, :s, :k, "
                    ":t, :t, 'ready', 'baseline', '1', :p, :ps, :e)"),
                    {"r": wire.report_id_of(wire.decode_envelope(wire.parse_envelope(env)).statement), "d": device_id,
                     "s": seq, "k": kid, "t": received, "p": "ab" * 32, "ps": "00" * 32, "e": env})
            conn.execute(text("INSERT INTO device_state (device_id, last_sequence, facts, results, unit_id) "
                              "VALUES (:d, 3, '{}', '[]', 1)"), {"d": device_id})
        migrate.upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(select(reports.c.sequence, *SIGNED_COLUMNS).where(reports.c.device_id == device_id)
                                .order_by(reports.c.sequence)).all()
            assert [r.sequence for r in rows] == [1, 2, 3]
            for row, (_, _, env) in zip(rows, envs):
                rebuilt = envelope_of(conn, row)
                assert rebuilt == env
                wire.verify_envelope(wire.parse_envelope(rebuilt), key.public_key())
            # The facts and the results: once per month of receipt, not once per report.
            assert len(conn.execute(select(report_blobs.c.month)).all()) == 4
            cols = {c["name"] for c in inspect(conn).get_columns("device_state")}
            assert "facts" not in cols and "results" not in cols
            if conn.dialect.name == "postgresql":
                assert conn.execute(text("SELECT count(*) FROM pg_partitioned_table "
                                         "WHERE partrelid IN ('reports'::regclass, 'report_blobs'::regclass)")
                                    ).scalar() == 2
                where = {r.tableoid for r in conn.execute(text("SELECT tableoid::regclass::text AS tableoid "
                                                               "FROM reports"))}
                assert len(where) == 2 and not any(w.endswith("_default") for w in where), where
        for sql in ("UPDATE reports SET verdict = 'not_ready'", "DELETE FROM reports"):
            try:
                with engine.begin() as conn:
                    conn.execute(text(sql))
            except Exception as exc:  # noqa: BLE001
                assert "append-only" in str(exc)
            else:
                raise AssertionError(f"{sql}: reports are no longer append-only")
        with engine.connect() as conn:
            cfg = migrate.alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0012")
            conn.commit()
        with engine.connect() as conn:
            back = conn.execute(text("SELECT envelope FROM reports ORDER BY sequence")).scalars().all()
        assert back == [env for _, _, env in envs]
    finally:
        engine.dispose()
