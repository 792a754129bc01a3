"""Group commit (server/group_commit.py) on SQLite and PostgreSQL, in-process: reports of
concurrent requests share one transaction and each request learns its own outcome; a
conflict inside a batch refuses only its own report; nothing is answered before the
commit. The writer is held up by a real lock taken in another transaction, so the
reports queue up behind it deterministically."""
from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from server.key_cache import LRUCache
from store_device import StoreDevice, unit_store


@pytest.fixture(scope="module")
def store(collector_db_url):
    with unit_store(collector_db_url, "GC/Unit", max_overflow=20) as s:
        yield s


class Device(StoreDevice):
    def __init__(self, store, name):
        super().__init__(store, "GC/Unit", name, cache_key=True)


def outcome(store, body):
    from server.store import ApiError

    try:
        return store.ingest(body)[0]
    except ApiError as exc:
        return exc.code


def held_writer(store, blocker_id):
    """A transaction holding the write lock the writer needs for ``blocker_id``'s report."""
    conn = store.engine.connect()
    tx = conn.begin()
    if store.engine.dialect.name == "postgresql":
        conn.execute(text("SELECT 1 FROM device_state WHERE device_id = :d FOR UPDATE"), {"d": blocker_id})
    else:  # BEGIN IMMEDIATE (server.db) already holds SQLite's one write lock
        conn.execute(text("SELECT 1"))
    return conn, tx


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def queue_behind_lock(store, blocker, bodies):
    """Send the blocker's report (its batch waits on the lock), then ``bodies`` (they
    queue up), release the lock; returns [blocker outcome, *outcomes]."""
    conn, tx = held_writer(store, blocker.id)
    started = store._writer.transactions_started
    with ThreadPoolExecutor(len(bodies) + 1) as pool:
        first = pool.submit(outcome, store, blocker.report(1))
        wait_for(lambda: store._writer.transactions_started > started)  # the writer waits on the lock
        rest = [pool.submit(outcome, store, b) for b in bodies]
        wait_for(lambda: store._writer.waiting == len(bodies))
        assert not first.done() and not any(f.done() for f in rest), "answered before its commit"
        tx.rollback()
        conn.close()
        return [first.result(timeout=60), *[f.result(timeout=60) for f in rest]]


def test_reports_queued_during_a_commit_share_the_next_transaction(store):
    blocker = Device(store, "blocker")
    devices = [Device(store, f"lap-{i}") for i in range(6)]
    before_tx, before_reports = store._writer.transactions, store._writer.reports
    results = queue_behind_lock(store, blocker, [d.report(1) for d in devices])
    assert results == [201] * 7
    # The six queued reports went in one transaction (after the blocker's own).
    assert store._writer.reports - before_reports == 7
    assert store._writer.transactions - before_tx == 2
    with store.engine.connect() as c:
        for d in [blocker, *devices]:
            assert c.execute(text("SELECT last_sequence FROM device_state WHERE device_id = :d"),
                             {"d": d.id}).scalar() == 1
            assert c.execute(text("SELECT count(*) FROM reports WHERE device_id = :d"), {"d": d.id}).scalar() == 1


def test_a_conflict_in_a_batch_refuses_only_its_own_report(store):
    blocker = Device(store, "blocker2")
    a, b, c, d = (Device(store, f"dev-{i}") for i in range(4))
    assert outcome(store, a.report(1)) == 201
    shared_id = str(uuid.uuid4())  # new in this module's store each time the test runs
    results = queue_behind_lock(store, blocker, [
        a.report(1),                       # a replayed sequence (new content): refused
        b.report(1, report_id=shared_id),  # two devices claim one report id in the same batch:
        c.report(1, report_id=shared_id),  #   the batch fails on UNIQUE and each is redone alone
        d.report(1),                       # unrelated: stored
    ])
    assert results[0] == 201 and results[1] == "replayed_sequence" and results[4] == 201
    assert sorted(map(str, results[2:4])) == ["201", "report_id_conflict"]
    with store.engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM reports WHERE report_id = :r"), {"r": shared_id}).scalar()
        seqs = dict(conn.execute(text("SELECT device_id, last_sequence FROM device_state WHERE device_id IN "
                                      "(:a, :b, :c, :d)"), {"a": a.id, "b": b.id, "c": c.id, "d": d.id}).all())
    assert n == 1
    assert seqs[a.id] == 1 and seqs[d.id] == 1 and sorted([seqs[b.id], seqs[c.id]]) == [0, 1]


def test_one_device_never_twice_in_one_batch(store):
    """Two reports of one device queued together: each still meets the sequence rule."""
    blocker = Device(store, "blocker3")
    dev = Device(store, "twice")
    results = queue_behind_lock(store, blocker, [dev.report(1), dev.report(2), dev.report(2)])
    assert results[0] == 201
    assert sorted(map(str, results[1:])) == ["201", "201", "replayed_sequence"]
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT last_sequence FROM device_state WHERE device_id = :d"),
                            {"d": dev.id}).scalar() == 2


def test_key_cache_evicts_least_recently_used_one_at_a_time():
    cache = LRUCache(3)
    for k in "abc":
        cache.put(k, k.upper())
    assert cache.get("a") == "A"  # a is now the most recent
    cache.put("d", "D")
    assert "b" not in cache and len(cache) == 3  # only the least recently used went
    assert [cache.get(k) for k in "acd"] == ["A", "C", "D"]
    cache.pop("c")
    assert cache.get("c") is None and len(cache) == 2


def test_key_cache_beyond_its_bound_keeps_serving(store):
    """More reporting devices than the cache holds: reports keep being accepted; the
    cache stays at its bound instead of emptying."""
    from server.store import Store

    small = Store(store.engine, key_cache_size=2)
    devices = [Device(store, f"lru-{i}") for i in range(4)]
    for seq in (1, 2):
        for d in devices:
            assert outcome(small, d.report(seq)) == 201
        assert len(small._keys) == 2


def test_a_check_result_the_next_report_repeats_is_not_written_again(store):
    """An hourly report repeating a check's result leaves its device_checks row as it was
    (no new row version: PostgreSQL's xmin stays, SQLite's update trigger does not fire);
    a changed result is written, and the failing run it starts is kept while it lasts."""
    dev = Device(store, "repeat")
    pg = store.engine.dialect.name == "postgresql"
    with store.engine.begin() as conn:
        if not pg:
            conn.execute(text("CREATE TABLE test_check_writes (n INTEGER NOT NULL)"))
            conn.execute(text("INSERT INTO test_check_writes VALUES (0)"))
            conn.execute(text("CREATE TRIGGER test_check_written AFTER UPDATE ON device_checks "
                              "BEGIN UPDATE test_check_writes SET n = n + 1; END"))

    def row():
        with store.engine.connect() as conn:
            version = "xmin::text" if pg else "(SELECT n FROM test_check_writes)"
            return conn.execute(text(f"SELECT status, failing_since, {version} FROM device_checks "
                                     "WHERE device_id = :d"), {"d": dev.id}).one()

    try:
        assert outcome(store, dev.report(1)) == 201
        first = row()
        assert outcome(store, dev.report(2)) == 201
        assert row() == first  # the same result: the row untouched
        assert outcome(store, dev.report(3, status="fail")) == 201
        failing = row()
        assert failing[0] == "fail" and failing[1] is not None and failing[2] != first[2]
        assert outcome(store, dev.report(4, status="fail")) == 201
        assert row() == failing  # still failing: same run, row untouched
        assert outcome(store, dev.report(5, status="unknown")) == 201
        assert row()[0] == "unknown" and row()[1] == failing[1]  # written; the run goes on
    finally:
        if not pg:
            with store.engine.begin() as conn:
                conn.execute(text("DROP TRIGGER test_check_written"))
                conn.execute(text("DROP TABLE test_check_writes"))


def _checks(*statuses, grace=None):
    """Results of three checks (two required, one recommended) with these statuses."""
    names = ("disk-encrypted", "firewall", "screen-lock")
    out = [{"check_id": n, "status": st, "severity": "recommended" if n == "screen-lock" else "required"}
           for n, st in zip(names, statuses)]
    for r in out:
        if grace and r["check_id"] in grace:
            r["grace_hours"] = grace[r["check_id"]]
    return out


def test_a_batch_leaves_each_device_run_as_its_checks_define_it(store):
    """Several devices' reports in one batch statement, each a different change of its
    checks (a new failing run with and without grace, a run going on, a run ending, a
    replay that is refused): device_state's run and the day row equal what the device's
    own check rows define (the earliest start and deadline of its failing required checks,
    and those without grace), and the refused device's rows stay as they were."""
    from sqlalchemy import select

    from server.db import device_checks, device_days, device_state, utc

    blocker = Device(store, "blocker-run")
    new_run, going_on, ending, refused = (Device(store, f"run-{i}") for i in range(4))
    assert outcome(store, going_on.report(1, results=_checks("fail", "pass", "fail"))) == 201
    assert outcome(store, ending.report(1, results=_checks("unknown", "fail", "pass", grace={"firewall": 24}))) == 201
    assert outcome(store, refused.report(1, results=_checks("fail", "fail", "pass"))) == 201

    def rows(dev):
        dc, ds, dd = device_checks.c, device_state.c, device_days.c
        with store.engine.connect() as c:
            checks = c.execute(select(dc.check_id, dc.severity, dc.status, dc.failing_since, dc.due_until)
                               .where(dc.device_id == dev.id).order_by(dc.check_id)).all()
            state = c.execute(select(ds.failing_since, ds.due_until, ds.failing_hard, ds.last_sequence)
                              .where(ds.device_id == dev.id)).one()
            day = c.execute(select(dd.due_until, dd.failing_hard).where(dd.device_id == dev.id)
                            .order_by(dd.day.desc())).first()
        return checks, state, day

    before_going_on, before_refused = rows(going_on)[0], rows(refused)
    results = queue_behind_lock(store, blocker, [
        new_run.report(1, results=_checks("fail", "unknown", "fail", grace={"disk-encrypted": 48})),
        going_on.report(2, results=_checks("unknown", "fail", "pass")),
        ending.report(2, results=_checks("pass", "pass", "fail")),
        refused.report(1, results=_checks("pass", "pass", "pass")),  # a replayed sequence
    ])
    assert results == [201, 201, 201, 201, "replayed_sequence"]
    assert rows(refused) == before_refused
    # disk-encrypted's run goes on from the first report; firewall's starts with this one.
    after = {r.check_id: r for r in rows(going_on)[0]}
    assert after["disk-encrypted"].failing_since == before_going_on[0].failing_since
    assert after["firewall"].failing_since is not None and after["screen-lock"].failing_since is None
    for dev in (new_run, going_on, ending):
        checks, state, day = rows(dev)
        failing = [r for r in checks if r.severity == "required" and r.status in ("fail", "unknown")]
        since = min((utc(r.failing_since) for r in failing), default=None)
        due = min((utc(r.due_until) for r in failing if r.due_until is not None), default=None)
        hard = ",".join(sorted(r.check_id for r in failing if r.due_until is None))
        assert (utc(state.failing_since), utc(state.due_until), state.failing_hard) == (since, due, hard)
        assert (utc(day.due_until), day.failing_hard) == (due, hard)
    assert rows(new_run)[1].failing_hard == "firewall" and rows(new_run)[1].due_until is not None
    assert rows(ending)[1].failing_since is None and rows(ending)[1].failing_hard == ""


def test_each_stored_report_updates_its_device_state_row_once(store):
    """PostgreSQL stores a batch in one statement: device_state's row gets one new version
    per report (its run is computed with the rest), not a second update after the checks."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite writes one report at a time, statement by statement")
    blocker = Device(store, "blocker-once")
    devices = [Device(store, f"once-{i}") for i in range(3)]
    with store.engine.begin() as c:
        c.execute(text("CREATE TABLE test_state_writes (n INTEGER NOT NULL)"))
        c.execute(text("INSERT INTO test_state_writes VALUES (0)"))
        c.execute(text("CREATE FUNCTION test_count_state_write() RETURNS trigger LANGUAGE plpgsql AS "
                       "$$ BEGIN UPDATE test_state_writes SET n = n + 1; RETURN NULL; END $$"))
        c.execute(text("CREATE TRIGGER test_state_written AFTER UPDATE ON device_state FOR EACH ROW "
                       "EXECUTE FUNCTION test_count_state_write()"))
    try:
        results = queue_behind_lock(store, blocker, [
            d.report(1, results=_checks("fail", "pass", "pass")) for d in devices])
        assert results == [201] * 4
        with store.engine.connect() as c:
            assert c.execute(text("SELECT n FROM test_state_writes")).scalar() == 4
    finally:
        with store.engine.begin() as c:
            c.execute(text("DROP TRIGGER test_state_written ON device_state"))
            c.execute(text("DROP FUNCTION test_count_state_write()"))
            c.execute(text("DROP TABLE test_state_writes"))


def test_a_batch_replaces_each_devices_checks_with_its_reports_own(store):
    """In one batch statement, a device whose report drops a check and adds another, one
    whose report keeps its checks and one whose report is refused (a replayed sequence):
    each advanced device's check rows are exactly its latest report's, a continuing
    failing run keeps its start, and the refused device's rows stay as they were."""
    from sqlalchemy import select

    from server.db import device_checks

    blocker = Device(store, "blocker-replace")
    changing, keeping, refused = (Device(store, f"replace-{i}") for i in range(3))
    first = _checks("fail", "fail", "pass")
    for dev in (changing, keeping, refused):
        assert outcome(store, dev.report(1, results=first)) == 201

    def rows(dev):
        dc = device_checks.c
        with store.engine.connect() as c:
            return {r.check_id: (r.severity, r.status, r.failing_since) for r in c.execute(
                select(dc.check_id, dc.severity, dc.status, dc.failing_since).where(dc.device_id == dev.id))}

    before = {d.id: rows(d) for d in (changing, keeping, refused)}
    replaced = [r for r in _checks("fail", "pass", "pass") if r["check_id"] != "screen-lock"] + [
        {"check_id": "os-patched", "status": "unknown", "severity": "required"}]
    results = queue_behind_lock(store, blocker, [
        changing.report(2, results=replaced),
        keeping.report(2, results=first),
        refused.report(1, results=replaced),  # a replayed sequence
    ])
    assert results == [201, 201, 201, "replayed_sequence"]
    after = rows(changing)
    assert set(after) == {"disk-encrypted", "firewall", "os-patched"}
    assert after["disk-encrypted"] == before[changing.id]["disk-encrypted"]  # the run goes on
    assert after["firewall"][1:] == ("pass", None) and after["os-patched"][:2] == ("required", "unknown")
    assert rows(keeping) == before[keeping.id]
    assert rows(refused) == before[refused.id]
