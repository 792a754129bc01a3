""""Already stored?" at ingest (SQLite and PostgreSQL): a report's id is looked up in
``report_ids`` and its (device, sequence) in ``reports`` only at or below the device's
``stored_sequence_max`` (migration 0023), and every case answers as before: an exact
resend 200, a reused id 409 ``report_id_conflict`` (same device or another), a stored
sequence under a new id 409 ``replayed_sequence``, an older sequence never stored 201
history, two collectors racing on one report one 201 and one 200. A history report above
the latest sequence raises the bound, so the same sequence under a new id is still
refused (the migration's backfill: tests/test_migration_0023.py)."""
from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest
from sqlalchemy import select, text

from auditagent import report as wire
from server.db import device_state, make_engine, report_ids, reports
from server.partitions import month_of
from server.store import ApiError, Store
from store_device import StoreDevice, unit_store

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@pytest.fixture(scope="module")
def store(collector_db_url):
    with unit_store(collector_db_url, "AS/Unit") as s:
        yield s


class Device(StoreDevice):
    def __init__(self, store: Store, name: str) -> None:
        super().__init__(store, "AS/Unit", name)

    def report(self, seq: int, *, at: dt.datetime = NOW, **kw) -> bytes:  # one moment for the whole module
        return super().report(seq, at=at, **kw)


def rid_of(body: bytes) -> str:
    return wire.decode_envelope(wire.parse_envelope(body)).statement["predicate"]["report_id"]


def answer(store: Store, body: bytes) -> tuple[int, str]:
    try:
        status, out = store.ingest(body)
        return status, out["status"]
    except ApiError as exc:
        return exc.status, exc.code


def stored(store: Store, device_id: str | None = None) -> dict:
    """What the checks read, and what they must agree with."""
    with store.engine.connect() as conn:
        q = select(reports.c.report_id, reports.c.sequence, reports.c.received_at)
        rows = conn.execute(q if device_id is None else q.where(reports.c.device_id == device_id)).all()
        ids = dict(conn.execute(select(report_ids.c.report_id, report_ids.c.month)).all())
        state = conn.execute(select(device_state.c.last_sequence, device_state.c.stored_sequence_max)
                             .where(device_state.c.device_id == device_id)).first() if device_id else None
    return {"reports": rows, "ids": ids, "state": state}


def assert_ids_agree(store: Store) -> None:
    """report_ids holds exactly the stored reports' ids, each with its month of receipt; each
    device's bound is its highest stored sequence or above."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(reports.c.report_id, reports.c.received_at)).all()
        ids = {r: str(m)[:10] for r, m in conn.execute(select(report_ids.c.report_id, report_ids.c.month))}
        below = conn.execute(text(
            "SELECT count(*) FROM device_state s WHERE s.stored_sequence_max < "
            "(SELECT max(r.sequence) FROM reports r WHERE r.device_id = s.device_id)")).scalar()
    assert ids == {r: month_of(t).isoformat() for r, t in rows}
    assert below == 0


def test_every_case_answers_as_before(store):
    a, b = Device(store, "as-a"), Device(store, "as-b")
    first = a.report(1)
    assert answer(store, first) == (201, "stored")
    assert answer(store, first) == (200, "duplicate")
    before = stored(store, a.id)
    assert before["state"] == (1, 1)
    # The same id with other bytes: from the same device (a fresh sequence) or another device.
    assert answer(store, a.report(2, report_id=rid_of(first))) == (409, "report_id_conflict")
    assert answer(store, b.report(1, report_id=rid_of(first))) == (409, "report_id_conflict")
    # A stored sequence under a new id.
    assert answer(store, a.report(1)) == (409, "replayed_sequence")
    assert stored(store, a.id) == before  # refusals store nothing, not even an id
    assert answer(store, b.report(1)) == (201, "stored")
    # An older sequence the collector never had: history, once.
    assert answer(store, a.report(3)) == (201, "stored")
    late = a.report(2, at=NOW - dt.timedelta(hours=1))
    assert answer(store, late) == (201, "history")
    assert answer(store, late) == (200, "duplicate")
    assert answer(store, a.report(2)) == (409, "replayed_sequence")
    assert stored(store, a.id)["state"] == (3, 3)
    assert_ids_agree(store)


def test_history_above_the_latest_sequence_raises_the_bound(store):
    """A report with a higher sequence but an earlier generated_at is history; its sequence
    is then stored above the latest state's, and must still be found."""
    d = Device(store, "as-bound")
    assert answer(store, d.report(5)) == (201, "stored")
    assert answer(store, d.report(7, at=NOW - dt.timedelta(hours=2))) == (201, "history")
    assert stored(store, d.id)["state"] == (5, 7)
    assert answer(store, d.report(6, at=NOW + dt.timedelta(minutes=1))) == (201, "stored")
    assert stored(store, d.id)["state"] == (6, 7)
    # Sequence 7 under a new id, newer than the latest state: refused, as it was when
    # every check read reports (without the history's raise it would be stored twice).
    with_seven = stored(store, d.id)
    assert answer(store, d.report(7, at=NOW + dt.timedelta(minutes=2))) == (409, "replayed_sequence")
    assert stored(store, d.id) == with_seven
    assert answer(store, d.report(8, at=NOW + dt.timedelta(minutes=3))) == (201, "stored")
    assert stored(store, d.id)["state"] == (8, 8)
    assert_ids_agree(store)


def test_two_collectors_racing_on_one_report_store_it_once(store, collector_db_url):
    other_engine = make_engine(collector_db_url, pool_size=2, max_overflow=2)
    other = Store(other_engine)
    try:
        d = Device(store, "as-race")
        for seq in range(1, 6):
            body = d.report(seq)
            start = threading.Barrier(2)
            out: list[tuple[int, str]] = []

            def send(s: Store) -> None:
                start.wait()
                out.append(answer(s, body))

            threads = [threading.Thread(target=send, args=(s,)) for s in (store, other)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert Counter(out) == Counter({(201, "stored"): 1, (200, "duplicate"): 1}), out
        assert [r.sequence for r in sorted(stored(store, d.id)["reports"], key=lambda r: r.sequence)] == [1, 2, 3, 4, 5]
        assert_ids_agree(store)
    finally:
        other_engine.dispose()
