"""Group commit (server/group_commit.py) on SQLite and PostgreSQL, in-process: reports of
concurrent requests share one transaction and each request learns its own outcome; a
conflict inside a batch refuses only its own report; nothing is answered before the
commit. The writer is held up by a real lock taken in another transaction, so the
reports queue up behind it deterministically."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from auditagent import report as wire
from server.key_cache import LRUCache


@pytest.fixture(scope="module")
def store(collector_db_url):
    from server import migrate
    from server.db import make_engine
    from server.store import Store

    engine = make_engine(collector_db_url, pool_size=4, max_overflow=20)
    migrate.upgrade(engine)
    s = Store(engine)
    s.add_unit("GC/Unit")
    yield s
    engine.dispose()


class Device:
    def __init__(self, store, name):
        self.key = Ed25519PrivateKey.generate()
        token, _ = store.create_token("GC/Unit", uses=1)
        self.id = store.enroll(token=token, public_key_pem=wire.public_key_pem(self.key.public_key()),
                               device={"hostname": name, "os": "Debian 12", "platform": "linux"})["device_id"]
        store._load_key(self.id)  # cached up front: on SQLite even a read waits for the held write lock

    def report(self, seq, report_id=None, status="pass"):
        pred = wire.build_predicate(report_id=report_id, device={"id": self.id, "hostname": "h", "serial": None,
                                                                 "os": "Debian 12", "platform": "linux"},
                                    agent_version="0.1.0", policy={"id": "p", "version": "1", "sha256": "ab" * 32},
                                    facts={"disk": {"status": "ok"}},
                                    results=[{"check_id": "disk-encrypted", "status": status, "severity": "required"}],
                                    verdict="ready" if status == "pass" else "not_ready", sequence=seq)
        st = wire.build_statement(device_id=self.id, public_key=self.key.public_key(), predicate=pred)
        return wire.envelope_bytes(wire.sign_envelope(st, self.key))


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
    shared_id = "7a1f3c52-0000-4000-8000-000000000001"
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
