"""A past day of the trend judges each device fresh or stale by the max report age in
force at that day's end (the unit's history of settings), not by today's — on SQLite and
PostgreSQL. The fleet is tests/readiness_fleet.py's: in Äldreomsorg (72 h today) ao2
reported 80 h before NOW (day D-3), ao1 50 h before (day D-2), both ready; ao3 1 h before
(day D), not ready."""
from __future__ import annotations

import datetime as dt

import pytest

from readiness_fleet import AO, NOW, SOC, trend_points
from server import readiness as rd

H = dt.timedelta(hours=1)
D = NOW.date()


def states(fleet, unit=AO):
    """(day, ready, stale, never_reported) of the last four days."""
    return [(p.day, p.ready, p.stale, p.never_reported) for p in trend_points(fleet, unit, 4)]


def test_past_days_keep_the_max_age_that_was_in_force(fleet):
    d = [D - dt.timedelta(days=i) for i in (3, 2, 1, 0)]
    # 72 h all along: a report stays fresh three days, its own included.
    assert states(fleet) == [(d[0], 1, 0, 2), (d[1], 2, 0, 1), (d[2], 2, 0, 1), (d[3], 1, 1, 0)]
    # The history says otherwise: 24 h from ten days ago until 6 h ago, 72 h since. The
    # closed days already counted are counted again, each by the age in force at its end.
    fleet.store.set_unit_max_age(AO, 24, at=NOW - 240 * H)
    fleet.store.set_unit_max_age(AO, 72, at=NOW - 6 * H)
    assert states(fleet) == [(d[0], 1, 0, 2), (d[1], 1, 1, 1), (d[2], 0, 2, 1), (d[3], 1, 1, 0)]
    # Today's point is now, by today's setting: exactly the tiles.
    with fleet.store.engine.connect() as conn:
        tile = next(u for u in rd.unit_tree(conn, rd.Scope(), NOW) if u.path == AO)
    assert (tile.counts.ready, tile.counts.stale, tile.counts.never_reported) == (1, 1, 0)


def test_an_ancestors_setting_in_force_then_is_inherited(fleet):
    # Socialförvaltningen has set 24 h since 40 days ago; Äldreomsorg stops setting its own
    # 3 h before NOW: from then on the parent's 24 h is in force there, today's point too.
    fleet.store.set_unit_max_age(SOC, 24, at=NOW - 960 * H)
    fleet.store.set_unit_max_age(AO, None, at=NOW - 3 * H)
    d = [D - dt.timedelta(days=i) for i in (3, 2, 1, 0)]
    assert states(fleet) == [(d[0], 1, 0, 2), (d[1], 1, 1, 1), (d[2], 0, 2, 1), (d[3], 0, 2, 0)]
    with fleet.store.engine.connect() as conn:
        hours = rd.max_age_in_force(conn, {fleet.units[AO]: AO, fleet.units[SOC]: SOC},
                                    [NOW - 1000 * H, NOW - 100 * H, NOW - 4 * H, NOW])
    assert hours == {fleet.units[AO]: [72, 24, 72, 24], fleet.units[SOC]: [24, 24, 24, 24]}
