"""A list of values bound as one parameter (server.readiness.sql.one_of / none_of), on
SQLite and PostgreSQL: the same rows as Python's own `in` for no, one and many values
(ids sharing a hostname, NULLs, values that match nothing), the same answer when one
statement is run again with other lists (the statement cache keys both), and on
PostgreSQL one statement text whatever the list's length (so psycopg can cache and
prepare it), where ``IN (…)`` made one per length."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event, select

from server import migrate
from server.db import devices, make_engine, units
from server.readiness.sql import none_of, one_of

NOW = dt.datetime(2030, 6, 15, 12, 0, tzinfo=dt.timezone.utc)
N = 120  # devices; hostnames shared three by three ("PC-000" is dev-000, dev-001, dev-002)


@pytest.fixture(scope="module")
def engine(collector_db_url):
    eng = make_engine(collector_db_url)
    migrate.upgrade(eng)
    with eng.begin() as conn:
        uids = [conn.execute(units.insert().values(name=f"U{i}", path=f"U{i}", depth=1, created_at=NOW)
                             .returning(units.c.id)).scalar_one() for i in range(4)]
        conn.execute(devices.insert(), [
            {"id": f"dev-{i:03}", "unit_id": uids[i % 4], "hostname": f"PC-{i // 3 * 3:03}",
             "serial": None if i % 5 == 0 else f"SN{i}", "current_keyid": f"k{i}", "public_key": b"\0" * 32,
             "enrolled_at": NOW} for i in range(N)])
    yield eng
    eng.dispose()


def _all(conn):
    return conn.execute(select(devices.c.id, devices.c.unit_id, devices.c.hostname, devices.c.serial)).all()


LISTS = [[], ["dev-007"], ["nope"], [f"dev-{i:03}" for i in range(0, N, 2)] + ["nope", "dev-001"],
         [f"dev-{i:03}" for i in range(N)]]


@pytest.mark.parametrize("values", LISTS, ids=["none", "one", "unknown", "many", "all"])
def test_ids_one_of_and_none_of_as_python_in(engine, values):
    with engine.connect() as conn:
        rows = _all(conn)
        got = conn.execute(select(devices.c.id).where(one_of(devices.c.id, values))).scalars().all()
        assert sorted(got) == sorted(r.id for r in rows if r.id in values)
        got = conn.execute(select(devices.c.id).where(none_of(devices.c.id, values))).scalars().all()
        assert sorted(got) == sorted(r.id for r in rows if r.id not in values)
        # Negated with NOT, as callers do (~): the complement as well.
        got = conn.execute(select(devices.c.id).where(~one_of(devices.c.id, values))).scalars().all()
        assert sorted(got) == sorted(r.id for r in rows if r.id not in values)


def test_shared_hostnames_integers_and_nulls(engine):
    with engine.connect() as conn:
        rows = _all(conn)
        for hosts in ([], ["PC-003"], ["PC-003", "PC-099", "PC-117", "none"]):
            got = conn.execute(select(devices.c.id).where(one_of(devices.c.hostname, hosts))
                               .order_by(devices.c.hostname, devices.c.id)).scalars().all()
            assert got == sorted(r.id for r in rows if r.hostname in hosts)
            assert len(got) == 3 * len([h for h in hosts if h != "none"])
        uids = sorted({r.unit_id for r in rows})
        for ids in ([], uids[:1], uids[1:], uids + [10**6]):
            got = conn.execute(select(devices.c.id).where(one_of(devices.c.unit_id, ids))).scalars().all()
            assert sorted(got) == sorted(r.id for r in rows if r.unit_id in ids)
        # A NULL is in no list and, as with NOT IN, not in the complement of a non-empty one.
        serials = ["SN1", "SN2"]
        got = conn.execute(select(devices.c.id).where(none_of(devices.c.serial, serials))).scalars().all()
        assert sorted(got) == sorted(r.id for r in rows if r.serial is not None and r.serial not in serials)


def test_one_statement_run_again_with_other_lists(engine):
    """The statement cache keys the compiled form: each run must bind its own list."""
    def q(values):
        return select(devices.c.id).where(one_of(devices.c.id, values), none_of(devices.c.hostname, ["PC-000"]))

    with engine.connect() as conn:
        rows = _all(conn)
        for values in LISTS * 2:
            got = conn.execute(q(values)).scalars().all()
            assert sorted(got) == sorted(r.id for r in rows if r.id in values and r.hostname != "PC-000")


def test_postgresql_one_text_whatever_the_length(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite keeps IN (…): its statements are not prepared by psycopg")
    sent: list[tuple[str, int]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, len(parameters or ())))

    event.listen(engine, "before_cursor_execute", record)
    try:
        with engine.connect() as conn:
            for values in ([], ["dev-001"], [f"dev-{i:03}" for i in range(N)]):
                conn.execute(select(devices.c.id).where(one_of(devices.c.id, values)))
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len({s for s, _n in sent}) == 1, sent
    assert {n for _s, n in sent} == {1}
    assert "= ANY" in sent[0][0]


def test_pages_are_planned_for_their_values(fleet):
    """A page read many times (its statements prepared by psycopg) is planned for the
    values of each run, never with a generic plan blind to them: the engine's connections
    plan custom plans only, set once when each is opened (no statement per page). The
    pages' answers stay those of the first run."""
    from readiness_fleet import EB, NOW
    from sqlalchemy import text

    from server import readiness as rd

    scope = rd.Scope()
    # A connection of its own: none of ingest's prepared statements on it.
    own = make_engine(fleet.store.engine.url.render_as_string(hide_password=False), pool_size=1, max_overflow=0)
    with own.connect() as conn:
        pg = conn.dialect.name == "postgresql"
        first = None
        for _ in range(12):  # beyond psycopg's 5 runs before preparing and PostgreSQL's 5 custom plans
            got = (rd.unit_detail(conn, scope, fleet.units[EB], NOW, state="not_ready"),
                   rd.device_detail(conn, scope, fleet.devices["eb3"].id, NOW), rd.overview(conn, scope, NOW))
            first = first or got
            assert got == first
            if pg:
                # (A statement without parameters has only one plan, which PostgreSQL counts as generic.)
                prepared = conn.execute(text("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
                                             " WHERE cardinality(parameter_types) > 0")).all()
            conn.commit()  # not a rollback: psycopg forgets what it prepared at each rollback
        assert [d.hostname for d in first[0].devices.items] == ["eb2-laptop", "eb3-laptop"]
        assert first[0].summary.path == EB and sum(u.total for u in first[2].units if u.depth == 1) == 14
        if pg:
            assert any(n >= 5 for _s, _g, n in prepared), prepared  # the page's statements were prepared …
            assert [s for s, g, _n in prepared if g] == []  # … and none ever planned generically
            conn.rollback()
            assert conn.execute(text("SHOW plan_cache_mode")).scalar_one() == "force_custom_plan"  # the connection's
    own.dispose()

