"""The outbox and the durable-write helpers under it: atomic writes, the sequence
counter, bounded size with eviction that is reported, refused reports kept."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from auditagent.durable import SequenceCounter, atomic_write, state_lock, StateLocked
from auditagent.spool import Spool, entry_name

from conftest import REPO


def rid() -> str:
    return str(uuid.uuid4())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_replaces_whole_file_owner_only(tmp_path):
    target = tmp_path / "x.json"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp file left


def test_sequence_counter_is_persisted_and_never_reused(tmp_path):
    c = SequenceCounter(tmp_path / "sequence")
    assert c.current() == 0 and c.peek_next() == 1
    assert [c.take(), c.take(), c.take()] == [1, 2, 3]
    assert SequenceCounter(tmp_path / "sequence").take() == 4  # a new process continues
    c.advance_to(2)  # never goes back
    assert c.current() == 4
    c.advance_to(10)
    assert c.take() == 11


def test_sequence_counter_damaged_is_an_error_not_a_reset(tmp_path):
    (tmp_path / "sequence").write_text("garbage")
    with pytest.raises(ValueError, match="damaged"):
        SequenceCounter(tmp_path / "sequence").take()


def test_entries_oldest_first_and_files_owner_only(tmp_path):
    spool = Spool(tmp_path / "spool", max_reports=10)
    ids = {seq: rid() for seq in (3, 1, 2)}
    for seq, r in ids.items():
        spool.add(f"report {seq}".encode(), seq, r)
    entries = spool.entries()
    assert [e.sequence for e in entries] == [1, 2, 3]
    assert [e.report_id for e in entries] == [ids[1], ids[2], ids[3]]
    assert spool.read(entries[0]) == b"report 1"
    assert mode(tmp_path / "spool") == 0o700
    assert all(mode(e.path) == 0o600 for e in entries)
    assert spool.highest_sequence() == 3


def test_stray_files_are_not_reports(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.add(b"r", 1, rid())
    (tmp_path / "spool" / ".tmp-000000000002-x.json.abc").write_bytes(b"half")
    (tmp_path / "spool" / "notes.txt").write_text("x")
    assert spool.depth() == 1
    assert spool.recover() == 1
    assert not list((tmp_path / "spool").glob(".tmp-*"))


def envelope_telling(note):
    import base64

    statement = {"predicate": {"spool": note}}
    return json.dumps({"payload": base64.b64encode(json.dumps(statement).encode()).decode()}).encode()


def test_eviction_by_count_oldest_first_forgotten_only_once_delivered(tmp_path):
    spool = Spool(tmp_path / "spool", max_reports=3)
    for seq in range(1, 4):
        spool.add(b"x" * 10, seq, rid())
    assert spool.eviction_note()["evicted"] == 0
    evicted = spool.add(b"x" * 10, 4, rid())
    assert [e.sequence for e in evicted] == [1]
    assert [e.sequence for e in spool.entries()] == [2, 3, 4]
    spool.add(b"x" * 10, 5, rid())
    note = spool.eviction_note()
    assert note == {"evicted": 2, "evicted_sequences": [1, 2]}
    # A report telling [1, 2] is spooled (evicting 3 to make room): nothing is forgotten yet …
    carrier = envelope_telling(note)
    spool.add(carrier, 6, rid())
    assert spool.eviction_note() == {"evicted": 3, "evicted_sequences": [1, 2, 3]}
    # … only once the collector has it.
    spool.acknowledge_delivered(carrier)
    assert spool.eviction_note() == {"evicted": 1, "evicted_sequences": [3]}
    spool.acknowledge_delivered(envelope_telling(spool.eviction_note()))
    assert spool.eviction_note()["evicted"] == 0
    assert not (tmp_path / "spool" / "evicted.json").exists()
    spool.acknowledge_delivered(b"not json")  # harmless


def test_eviction_by_bytes(tmp_path):
    spool = Spool(tmp_path / "spool", max_reports=1000, max_bytes=100)
    for seq in range(1, 5):
        spool.add(b"y" * 30, seq, rid())  # 4 × 30 > 100: the first goes
    assert [e.sequence for e in spool.entries()] == [2, 3, 4]
    assert spool.total_bytes() <= 100
    assert spool.eviction_note()["evicted"] == 1


def test_rejected_reports_are_kept_with_the_reason(tmp_path):
    spool = Spool(tmp_path / "spool")
    r = rid()
    spool.add(b"{}", 7, r)
    entry = spool.entries()[0]
    target = spool.reject(entry, "schema_violation", "predicate.facts: must be an object", 422)
    assert spool.depth() == 0
    assert target.read_bytes() == b"{}"
    reason = json.loads((tmp_path / "spool" / "rejected" / (entry_name(7, r)[:-5] + ".reason.json")).read_text())
    assert reason["code"] == "schema_violation" and reason["http_status"] == 422
    assert [e.sequence for e in spool.rejected()] == [7]
    assert spool.highest_sequence() == 7  # a refused report's number is not reused either


def test_remove_and_rewrite(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.add(b"a", 1, rid())
    spool.add(b"b", 2, rid())
    assert spool.rewrite(lambda old: old.upper()) == 2
    assert [spool.read(e) for e in spool.entries()] == [b"A", b"B"]
    spool.remove(spool.entries()[0])
    assert [e.sequence for e in spool.entries()] == [2]


CRASHER = """
import sys, uuid
from pathlib import Path
from auditagent.spool import Spool
spool = Spool(Path(sys.argv[1]))
spool.add(b"first report", 1, str(uuid.uuid4()))
spool.add(b"second report " * 100, 2, str(uuid.uuid4()))
print("not reached")
"""


@pytest.mark.parametrize("point,expect", [("spool_write", [1]), ("spool_write_partial:2", [1]),
                                          ("after_spool:2", [1, 2])])
def test_sigkill_during_spool_write_leaves_whole_reports_only(tmp_path, point, expect):
    env = {**os.environ, "PYTHONPATH": str(REPO), "AUDITAGENT_TEST_CRASH_AT": point}
    if point == "spool_write":
        env["AUDITAGENT_TEST_CRASH_AT"] = "spool_write:2"
    proc = subprocess.run([sys.executable, "-c", CRASHER, str(tmp_path / "spool")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr  # SIGKILL
    assert "not reached" not in proc.stdout
    spool = Spool(tmp_path / "spool")
    spool.recover()
    entries = spool.entries()
    assert [e.sequence for e in entries] == expect
    assert spool.read(entries[0]) == b"first report"
    if 2 in expect:
        assert spool.read(entries[1]) == b"second report " * 100
    assert not list((tmp_path / "spool").glob(".tmp-*"))


def test_state_lock_is_exclusive(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time\nfrom pathlib import Path\nfrom auditagent.durable import state_lock\n"
                               "with state_lock(Path(sys.argv[1])):\n    print('locked', flush=True)\n"
                               "    time.sleep(30)\n", str(tmp_path)],
                              env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StateLocked, match="another auditagent process"):
            with state_lock(tmp_path, timeout=0.3):
                pass
    finally:
        holder.kill()
        holder.wait()
    with state_lock(tmp_path, timeout=5):  # released by the OS when the holder died
        pass
