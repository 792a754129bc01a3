"""Migration 0005 on a database that has data (SQLite and PostgreSQL): device_state gets
its unit and failing required checks from the rows that were there, a device without a
device_state row gets one, and the states come out as they did before."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import text

from server import migrate
from server import readiness as rd
from server.db import make_engine

NOW = dt.datetime(2030, 6, 15, 12, 0, tzinfo=dt.timezone.utc)


def test_upgrade_backfills_device_state(collector_db_url):
    engine = make_engine(collector_db_url, pool_size=1, max_overflow=0)
    try:
        migrate.upgrade(engine, "0004")
        t = NOW - dt.timedelta(hours=2)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO units (id, parent_id, name, path, depth, created_at) "
                              "VALUES (1, NULL, 'A', 'A', 1, :t), (2, 1, 'B', 'A/B', 2, :t)"), {"t": t})
            for dev, unit in (("d-fail", 2), ("d-pass", 2), ("d-none", 1)):
                conn.execute(text("INSERT INTO devices (id, unit_id, hostname, agent_version, current_keyid, "
                                  "public_key, enrolled_at) VALUES (:d, :u, :d, '0.0.9', 'k', :pk, :t)"),
                             {"d": dev, "u": unit, "pk": b"\0" * 32, "t": t})
            for dev in ("d-fail", "d-pass"):  # d-none has no device_state row at all
                conn.execute(text("INSERT INTO device_state (device_id, last_sequence, last_report_id, "
                                  "agent_version, generated_at, received_at) VALUES (:d, 1, :r, :v, :t, :t)"),
                             {"d": dev, "r": dev + "-r1", "v": "0.1.0" if dev == "d-pass" else None, "t": t})
            conn.execute(text("INSERT INTO device_checks (device_id, check_id, severity, status) VALUES "
                              "('d-fail', 'os-patched', 'required', 'unknown'), "
                              "('d-fail', 'disk', 'required', 'fail'), "
                              "('d-fail', 'screen-lock', 'recommended', 'fail'), "
                              "('d-pass', 'disk', 'required', 'pass')"))
        migrate.upgrade(engine)
        with engine.connect() as conn:
            rows = {r.device_id: (r.unit_id, r.failing_required, r.agent_version) for r in conn.execute(
                text("SELECT device_id, unit_id, failing_required, agent_version FROM device_state"))}
            assert rows == {"d-fail": (2, "disk,os-patched", "0.0.9"),  # sorted; recommended left out
                            "d-pass": (2, "", "0.1.0"),  # a reported version stays
                            "d-none": (1, "", "0.0.9")}
            states = {r.id: r.state for r in conn.execute(rd.device_states(conn, NOW))}
            assert states == {"d-fail": "not_ready", "d-pass": "ready", "d-none": "never_reported"}
            tree = {u.path: (u.counts.ready, u.counts.not_ready, u.counts.never_reported)
                    for u in rd.unit_tree(conn, rd.Scope(), NOW)}
            assert tree == {"A": (1, 1, 1), "A/B": (1, 1, 0)}
    finally:
        engine.dispose()
