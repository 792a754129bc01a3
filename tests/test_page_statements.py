"""The counting statement of the overview, the tree and the unit page is built once for
the same fleet values (units, exceptions, revoked devices) and run at each moment with
the moment as a parameter (server/readiness/state.py, ``_state_rows_statement``): on
SQLite and PostgreSQL, at moments where devices turn stale and exceptions start and end,
every unit's counts are those of its devices judged one by one (``device_states``), the
statement is found again while the values are the same, and a new one is built when an
exception changes what covers a device.
"""
from __future__ import annotations

import datetime as dt
from collections import Counter

from sqlalchemy import select

from server import readiness as rd
from server.readiness import state as state_module
from tests.readiness_fleet import EB, NOW

H = dt.timedelta(hours=1)


def judged_one_by_one(conn, at: dt.datetime) -> dict[str, Counter]:
    """Per unit path: its subtree's devices by state, each judged by its own row."""
    ds = rd.device_states(conn, at).subquery()
    rows = conn.execute(select(ds.c.unit_path, ds.c.state)).all()
    out: dict[str, Counter] = {}
    for path, st in rows:
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            out.setdefault("/".join(parts[:i]), Counter())[st] += 1
    return out


def assert_tree_agrees(conn, at: dt.datetime) -> None:
    expected = judged_one_by_one(conn, at)
    for u in rd.unit_tree(conn, rd.Scope(), at):
        got = {s: getattr(u.counts, s) for s in rd.STATES if getattr(u.counts, s)}
        assert got == dict(expected.get(u.path, {})), (at, u.path)


def test_built_once_and_judged_at_each_moment(fleet):
    cache = state_module._state_rows_statement
    cache.cache_clear()
    moments = [NOW, NOW + 20 * H, NOW + 30 * H, NOW + 100 * H]  # devices turn stale as time goes on
    with fleet.store.engine.connect() as conn:
        states_seen = set()
        for at in moments:
            assert_tree_agrees(conn, at)
            states_seen.add(tuple(sorted(Counter(r.state for r in conn.execute(
                select(rd.device_states(conn, at).subquery())).all()).items())))
            conn.rollback()
    assert len(states_seen) > 1  # the moments do judge the fleet differently
    info = cache.cache_info()
    assert (info.misses, info.hits) == (1, len(moments) - 1)


def test_an_exception_gives_a_new_statement_and_its_end_the_old_one(fleet):
    cache = state_module._state_rows_statement
    with fleet.store.engine.begin() as conn:  # eb2 fails disk-encrypted: excepted unit-wide for 10 hours
        rd.grant_exception(conn, fleet.users["so_all"], check_id="disk-encrypted", unit_id=fleet.units[EB],
                           expires_at=NOW + 10 * H, justification="test: statement per cover", now=NOW - H)
    cache.cache_clear()
    with fleet.store.engine.connect() as conn:
        before = {u.path: u.counts for u in rd.unit_tree(conn, rd.Scope(), NOW - 2 * H)}  # not yet granted
        assert_tree_agrees(conn, NOW - 2 * H)
        during = {u.path: u.counts for u in rd.unit_tree(conn, rd.Scope(), NOW)}
        assert_tree_agrees(conn, NOW)
        assert during[EB].ready > before[EB].ready  # the exception counts
        assert cache.cache_info().misses == 2
        assert_tree_agrees(conn, NOW + 11 * H)  # expired: the values before the grant again
        info = cache.cache_info()
        assert info.misses == 2 and info.hits >= 2
        conn.rollback()
