"""Migration 0022 (the stored judgement, server/readiness/judged.py) on a database that
already holds devices, on SQLite and PostgreSQL: down to 0021 and up again, the counts kept
per group equal a recount of the judged flags and every view agrees with each device judged
alone at moments across the fleet's deadlines, before any sweep; the units on their own max
age are settled with it (Äldreomsorg's 72 h), so nothing waits for the sweep."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import inspect, select, text

from server import migrate
from server import readiness as rd
from server.db import device_state, unit_judged_ages
from tests.readiness_fleet import AO, NOW, fleet_on
from tests.test_judged_state import assert_views_agree, kept_equals_recount
from tests.test_migration_0018 import _downgrade

H = dt.timedelta(hours=1)


def test_upgrade_judges_the_stored_devices_and_downgrade_restores_the_counts(collector_db_url):
    with fleet_on(collector_db_url) as fleet:
        fleet.report("eb6", 0.5, {"firewall": "fail"}, grace={"firewall": 6})  # a new run, inside its grace
        engine = fleet.store.engine
        _downgrade(engine, "0021")
        with engine.connect() as conn:  # 0021's groups, without the flags: the counts as before
            key = "unit_id, agent_version, failing_required, failing_hard"
            kept = {tuple(r[:4]): (r[4], r[5]) for r in conn.execute(text(
                f"SELECT {key}, sum(n), sum(never) FROM unit_state_deltas GROUP BY {key}")) if r[4] or r[5]}
            recount = {tuple(r[:4]): (r[4], r[5]) for r in conn.execute(text(
                f"SELECT {key}, count(*), sum(CASE WHEN last_report_id IS NULL THEN 1 ELSE 0 END) "
                f"FROM device_state WHERE unit_id IS NOT NULL GROUP BY {key}"))}
            assert kept == recount
            assert "counted_stale" not in {c["name"] for c in inspect(conn).get_columns("device_state")}
            conn.rollback()
        assert migrate.upgrade(engine) == migrate.head_revision()
        with engine.connect() as conn:
            ages = dict(conn.execute(select(unit_judged_ages.c.unit_id, unit_judged_ages.c.hours)).all())
            assert ages[fleet.units[AO]] == 72 and rd.state.unsettled_units(conn, 24) == ()
            assert conn.execute(select(device_state.c.device_id).where(device_state.c.counted_due == 1)).all()
            kept_equals_recount(conn)
            for h in (0, 1, 23, 25, 49, 73, 80, 24 * 30):
                assert_views_agree(conn, NOW + h * H)
            conn.rollback()
