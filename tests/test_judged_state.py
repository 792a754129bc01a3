"""The stored judgement of each device's time-dependent inputs (server/readiness/judged.py):
on SQLite and PostgreSQL, as time passes stale and grace deadlines and an exception's end,
every view's counts (the counting pass, the tree, the overview and its blocking checks)
equal each device judged alone (``device_states``): without any sweep, after a sweep at
several moments (also asked about moments before the sweep's), after a unit's max report
age changes (before and after the sweep settles it), and the counts kept per group equal a
recount of the stored flags after reports and sweeps ran at once.
"""
from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from server import readiness as rd
from server.db import device_state, unit_state_deltas
from server.readiness import judged
from tests.readiness_fleet import AO, EB, NOW
from tests.test_page_statements import assert_tree_agrees
from tests.test_readiness_agreement import _per_device_rollup

H = dt.timedelta(hours=1)
# Moments across the fleet's deadlines: 24 h and 72 h staleness, 10 h exception end,
# 6 h and 72 h grace ends, and long after.
MOMENTS = [0, 1, 5.5, 6, 6.5, 10, 11, 23, 24, 25, 47, 49, 71, 73, 80, 24 * 30]


@pytest.fixture(scope="module")
def judged_fleet(fleet):
    """The readiness fleet with devices inside a grace period (eb6 6 h, eb5 72 h; ao3 fails
    on, its run started without grace) and a unit-wide exception on Barn och unga's
    firewall check ending 10 h after NOW."""
    from tests.readiness_fleet import BU

    fleet.report("ao3", 0.5, {"os-patched": "fail"}, grace={"os-patched": 72})
    fleet.report("eb6", 0.5, {"firewall": "fail"}, grace={"firewall": 6})
    fleet.report("eb5", 0.5, {"os-patched": "fail", "firewall": "fail"}, grace={"os-patched": 72})
    with fleet.store.engine.begin() as conn:
        rd.grant_exception(conn, fleet.users["so_all"], check_id="firewall", unit_id=fleet.units[BU],
                           expires_at=NOW + 10 * H, justification="test: judged state", now=NOW - H)
    return fleet


def assert_views_agree(conn, at: dt.datetime) -> None:
    """Every count the pages show at ``at`` equals each device judged alone."""
    st = rd.device_states(conn, at).subquery("st")
    want = {(int(r.unit_id), r.state, r.agent_version): int(r.n) for r in conn.execute(
        select(st.c.unit_id, st.c.state, st.c.agent_version, func.count().label("n"))
        .group_by(st.c.unit_id, st.c.state, st.c.agent_version))}
    assert {(u, s, v): n for u, s, v, n in rd.state_counts(conn, at)} == want, at
    assert_tree_agrees(conn, at)
    ov = rd.overview(conn, rd.Scope(), at)
    tree = rd.unit_tree(conn, rd.Scope(), at)
    counts, blocking = _per_device_rollup(conn, at, tree)
    for u in ov.units:
        assert {s: getattr(u.counts, s) for s in rd.STATES} == counts[u.path], (at, u.path)
    assert {next(u.path for u in tree if u.id == uid): b for uid, b in ov.blocking.items()} == blocking, at


def own_judgements(conn, at: dt.datetime) -> int:
    """Devices a page at ``at`` judges by their own row because their stored span ended
    before it (one ending exactly at ``at`` is judged by its row too, and is right kept)."""
    s = device_state
    return int(conn.execute(select(func.count()).where(s.c.judge_again_at < at)).scalar_one())


def kept_equals_recount(conn) -> None:
    s, d = device_state, unit_state_deltas
    keys = (s.c.unit_id, s.c.agent_version, s.c.failing_required, s.c.failing_hard, s.c.counted_stale, s.c.counted_due)
    recount = {tuple(r[:6]): (int(r[6]), int(r[7])) for r in conn.execute(
        select(*keys, func.count(), func.sum(case_never())).where(s.c.unit_id.is_not(None)).group_by(*keys))}
    dkeys = (d.c.unit_id, d.c.agent_version, d.c.failing_required, d.c.failing_hard, d.c.stale, d.c.due)
    kept = {tuple(r[:6]): (int(r[6]), int(r[7])) for r in conn.execute(
        select(*dkeys, func.sum(d.c.n), func.sum(d.c.never)).group_by(*dkeys)) if r[6] or r[7]}
    assert kept == recount


def case_never():
    from sqlalchemy import case

    return case((device_state.c.last_report_id.is_(None), 1), else_=0)


def test_views_agree_at_every_moment_without_a_sweep(judged_fleet):
    with judged_fleet.store.engine.connect() as conn:
        for h in MOMENTS:
            assert_views_agree(conn, NOW + h * H)
        assert own_judgements(conn, NOW + 30 * H) > 0  # the kept counts were corrected, not right by luck
        conn.rollback()


def test_views_agree_after_sweeps_at_several_moments(judged_fleet):
    engine = judged_fleet.store.engine
    for i, h in enumerate(MOMENTS):
        at = NOW + h * H
        judged.sweep(engine, at, default_max_age_hours=rd.DEFAULT_MAX_REPORT_AGE_HOURS)
        with engine.connect() as conn:
            assert own_judgements(conn, at) == 0  # the sweep judged every device whose span had ended
            kept_equals_recount(conn)
            for later in MOMENTS[max(0, i - 2):i + 3]:  # before the sweep's moment too, and after it
                assert_views_agree(conn, NOW + later * H)
            conn.rollback()


def test_a_changed_max_age_is_right_before_and_after_the_sweep_settles_it(judged_fleet):
    store, engine = judged_fleet.store, judged_fleet.store.engine
    judged.sweep(engine, NOW, default_max_age_hours=rd.DEFAULT_MAX_REPORT_AGE_HOURS)
    try:
        for hours, unit in ((6, EB), (100, AO)):
            store.set_unit_max_age(unit, hours)
            with engine.connect() as conn:
                assert judged_fleet.units[unit] in rd.state.unsettled_units(conn, rd.DEFAULT_MAX_REPORT_AGE_HOURS)
                for h in (0, 7, 30, 80):
                    assert_views_agree(conn, NOW + h * H)
                conn.rollback()
            judged.sweep(engine, NOW + 7 * H, default_max_age_hours=rd.DEFAULT_MAX_REPORT_AGE_HOURS)
            with engine.connect() as conn:
                assert rd.state.unsettled_units(conn, rd.DEFAULT_MAX_REPORT_AGE_HOURS) == ()
                kept_equals_recount(conn)
                for h in (0, 7, 30, 80, 120):
                    assert_views_agree(conn, NOW + h * H)
                conn.rollback()
    finally:
        store.set_unit_max_age(EB, None)
        store.set_unit_max_age(AO, 72)
        judged.sweep(engine, NOW, default_max_age_hours=rd.DEFAULT_MAX_REPORT_AGE_HOURS)


def test_another_default_max_age_is_judged_by_the_pages_until_swept(judged_fleet):
    engine = judged_fleet.store.engine
    try:
        with engine.connect() as conn:
            assert rd.state.unsettled_units(conn, 12)  # every unit on the default
            for h in (0, 13, 30):
                at = NOW + h * H
                st = rd.device_states(conn, at, default_max_age_hours=12).subquery()
                want = Counter(r.state for r in conn.execute(select(st.c.state)))
                got = Counter()
                for _u, s, _v, n in rd.state_counts(conn, at, default_max_age_hours=12):
                    got[s] += n
                assert got == want
            conn.rollback()
    finally:
        judged.sweep(engine, NOW, default_max_age_hours=rd.DEFAULT_MAX_REPORT_AGE_HOURS)


def test_reports_and_sweeps_at_once_keep_the_counts_equal_to_a_recount(judged_fleet):
    """One thread stores reports (each device's state moving between groups and spans),
    another sweeps at later and later moments, meanwhile: afterwards the kept counts per
    group equal a recount of every device's stored flags, and every view agrees."""
    fleet, engine = judged_fleet, judged_fleet.store.engine
    names = ["eb1", "eb2", "eb4", "eb6", "bu1", "bu3", "ao1", "ao3", "k1"]
    fails = [None, {"os-patched": "fail"}, {"firewall": "fail"}]
    stop = threading.Event()
    errors: list[BaseException] = []

    def sweeper() -> None:
        i = 0
        try:
            while not stop.is_set():
                judged.sweep(engine, NOW + (i % 60) * H, default_max_age_hours=rd.DEFAULT_MAX_REPORT_AGE_HOURS,
                             limit=3)
                i += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=sweeper)
    t.start()
    try:
        for round_ in range(4):
            for j, name in enumerate(names):
                fleet.report(name, -round_ - 0.01 * j, fails[(round_ + j) % 3], grace={"os-patched": 12})
    finally:
        stop.set()
        t.join()
    assert not errors
    with engine.connect() as conn:
        kept_equals_recount(conn)
        for h in (0, 5, 13, 30):
            assert_views_agree(conn, NOW + h * H)
        conn.rollback()


def test_a_unit_with_its_own_max_age_gets_its_own_span(judged_fleet):
    """judge_devices: a fresh report's span ends its unit's own max age after it
    (Äldreomsorg 72 h), another unit's the default's (24 h); the hours are bound values."""
    from sqlalchemy import true

    devs = judged_fleet.devices
    with judged_fleet.store.engine.connect() as conn:
        n = judged.judge_devices(conn, NOW, true(), default_max_age_hours=rd.DEFAULT_MAX_REPORT_AGE_HOURS)
        assert n > 0
        rows = {r.device_id: r for r in conn.execute(
            select(device_state.c.device_id, device_state.c.generated_at, device_state.c.judge_again_at,
                   device_state.c.counted_stale)
            .where(device_state.c.device_id.in_([devs["ao1"].id, devs["eb7"].id, devs["k1"].id])))}
        for name, hours in (("ao1", 72), ("eb7", rd.DEFAULT_MAX_REPORT_AGE_HOURS), ("k1", rd.DEFAULT_MAX_REPORT_AGE_HOURS)):
            r = rows[devs[name].id]
            assert r.counted_stale == 0, name
            assert r.judge_again_at - r.generated_at == hours * H, name
        conn.rollback()
