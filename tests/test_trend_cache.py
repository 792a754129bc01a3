"""The trend's per-unit cache of closed days (unit_day_ready), on SQLite and PostgreSQL:
closed days are counted once and read back; whatever can change a closed day — a report
that arrives after its day ended, a revoked device, an exception dated in the past —
makes its unit's days be counted again. The fleet is tests/readiness_fleet.py's."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from readiness_fleet import EB, NOW, trend_points
from server import readiness as rd
from server.db import unit_day_ready
from server.local_time import DEFAULT_ZONE, local_midnight_after

H = dt.timedelta(hours=1)
D = NOW.date()


def trend(fleet, unit=EB, days=3, now=NOW):
    """(ready, devices) per day."""
    return [(p.ready, p.devices) for p in trend_points(fleet, unit, days, now)]


def cached(fleet, unit=EB):
    with fleet.store.engine.connect() as conn:
        return dict(conn.execute(select(unit_day_ready.c.day, unit_day_ready.c.ready)
                                 .where(unit_day_ready.c.unit_id == fleet.units[unit])).all())


def test_closed_days_are_counted_once_then_read_back(fleet):
    # By hand: two days ago eb1 was ready, yesterday eb4; today eb1, eb6, eb7 (7 devices).
    assert trend(fleet) == [(1, 7), (1, 7), (3, 7)]
    rows = cached(fleet)
    # The closed days are cached (today is not: it is still going on).
    assert {dt.date.fromisoformat(str(d)[:10]) for d in rows} == {D - 2 * dt.timedelta(days=1), D - dt.timedelta(days=1)}
    # Proof that the cache is what answers: a doctored row shows up as is.
    with fleet.store.engine.begin() as conn:
        conn.execute(update(unit_day_ready).where(unit_day_ready.c.unit_id == fleet.units[EB],
                                                  unit_day_ready.c.day == D - dt.timedelta(days=1)).values(ready=5))
    assert trend(fleet) == [(1, 7), (5, 7), (3, 7)]
    with fleet.store.engine.begin() as conn:
        conn.execute(update(unit_day_ready).where(unit_day_ready.c.unit_id == fleet.units[EB],
                                                  unit_day_ready.c.day == D - dt.timedelta(days=1)).values(ready=1))
    # A day closes an hour after (local) midnight: at 00:30 yesterday is still counted live, not cached.
    just_after = local_midnight_after(D, DEFAULT_ZONE) + dt.timedelta(minutes=30)
    with fleet.store.engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(unit_day_ready)
                         .where(unit_day_ready.c.unit_id == fleet.units[EB], unit_day_ready.c.day == D)).scalar_one()
    assert n == 0
    trend(fleet, now=just_after)
    assert D not in {dt.date.fromisoformat(str(d)[:10]) for d in cached(fleet)}


def test_a_report_arriving_after_its_day_redoes_the_units_days(fleet):
    assert trend(fleet)[1] == (1, 7)
    # eb5 had never reported. A report generated yesterday 06:00, delivered today 07:00
    # (a laptop that was offline): yesterday gains a ready device.
    fleet.report("eb5", 30, delay=25 * H)
    assert trend(fleet) == [(1, 7), (2, 7), (3, 7)]


def test_a_revoked_device_leaves_the_closed_days(fleet):
    assert trend(fleet)[1] == (2, 7)
    fleet.store.revoke_device(fleet.devices["eb4"].id, "lost")  # eb4 was ready yesterday
    assert trend(fleet) == [(1, 6), (1, 6), (3, 6)]


def test_an_exception_dated_in_the_past_redoes_the_days_it_reaches(fleet):
    # eb1 failed disk-encrypted in yesterday's last report. An exception granted (as of)
    # two days ago covers it at yesterday's end.
    assert trend(fleet)[1] == (1, 6)
    with fleet.store.engine.begin() as conn:
        rd.grant_exception(conn, fleet.users["so_all"], check_id="disk-encrypted", device_id=fleet.devices["eb1"].id,
                           expires_at=NOW + 24 * H, justification="backdated for the test", now=NOW - 48 * H)
    assert trend(fleet) == [(1, 6), (2, 6), (3, 6)]
