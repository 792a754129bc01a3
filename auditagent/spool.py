"""The outbox: signed reports waiting for the collector.

One file per report, ``<sequence, 12 digits>-<report id>.json`` holding the envelope
exactly as it will be sent. Every write is atomic and durable (temp file, fsync,
rename, fsync the folder), so a kill -9 or power cut at any instant leaves each
report either fully in the outbox or not there at all; a half-written temp file
is never mistaken for a report and is swept on the next start.

Bounded: past ``max_reports`` or ``max_bytes`` the oldest reports are evicted — and
counted in ``evicted.json``, so the next report tells the collector (``predicate.spool``)
how many were lost and which sequence numbers they had. A report the collector
refuses for good is moved to ``rejected/`` with the reason beside it: kept, never
silently deleted.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from auditagent.durable import (TMP_PREFIX, atomic_write, clean_temp_files, crash_point, ensure_dir, fsync_dir,
                                remove_durably)

ENTRY = re.compile(r"^(\d{12})-([0-9a-fA-F-]{36})\.json$")
EVICTED_NOTE = "evicted.json"
FAILURES = "failures.json"  # report id → runs in which the collector failed on it while taking others
REJECTED = "rejected"
TOO_LARGE = "too_large"  # the reason code of a report set aside because a collector would refuse its size
MAX_LISTED_TOO_LARGE = 50
MAX_LISTED_SEQUENCES = 10000


@dataclass(frozen=True)
class SpoolEntry:
    """One signed report waiting in the outbox (or set aside)."""

    path: Path
    sequence: int
    report_id: str
    size: int

    @property
    def name(self) -> str:
        return self.path.name


def entry_name(sequence: int, report_id: str) -> str:
    return f"{sequence:012d}-{report_id}.json"


class Spool:
    def __init__(self, directory: Path, max_reports: int = 500, max_bytes: int = 50 * 1024 * 1024,
                 log: Any = None) -> None:
        self.directory = Path(directory)
        self.max_reports = max_reports
        self.max_bytes = max_bytes
        self.log = log

    # ---------------------------------------------------------------- reading

    def entries(self) -> list[SpoolEntry]:
        """Waiting reports, oldest (lowest sequence) first."""
        out: list[SpoolEntry] = []
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        for name in names:
            m = ENTRY.match(name)
            if not m:
                continue
            path = self.directory / name
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            out.append(SpoolEntry(path, int(m.group(1)), m.group(2), size))
        out.sort(key=lambda e: (e.sequence, e.report_id))
        return out

    def depth(self) -> int:
        return len(self.entries())

    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries())

    def highest_sequence(self) -> int:
        seqs = [e.sequence for e in self.entries()] + [e.sequence for e in self.rejected()]
        return max(seqs, default=0)

    @staticmethod
    def read(entry: SpoolEntry) -> bytes:
        return entry.path.read_bytes()

    def rejected(self) -> list[SpoolEntry]:
        rdir = self.directory / REJECTED
        if not rdir.is_dir():
            return []
        out = []
        for path in rdir.iterdir():
            m = ENTRY.match(path.name)
            if m:
                out.append(SpoolEntry(path, int(m.group(1)), m.group(2), path.stat().st_size))
        return sorted(out, key=lambda e: e.sequence)

    # ---------------------------------------------------------------- writing

    def recover(self) -> int:
        """Sweep temp files a crash left behind (never renamed, so never a report)."""
        return clean_temp_files(self.directory) if self.directory.is_dir() else 0

    def add(self, data: bytes, sequence: int, report_id: str) -> list[SpoolEntry]:
        """Store one signed report durably; returns the reports evicted to make room."""
        ensure_dir(self.directory, 0o700)
        evicted = self._make_room(len(data))
        crash_point("spool_write")
        atomic_write(self.directory / entry_name(sequence, report_id), data, mode=0o600,
                     crash_hook="spool_write_partial")
        crash_point("after_spool")
        return evicted

    def _make_room(self, incoming: int) -> list[SpoolEntry]:
        entries = self.entries()
        count, size = len(entries), sum(e.size for e in entries)
        victims: list[SpoolEntry] = []
        while entries and (count + 1 > self.max_reports or size + incoming > self.max_bytes):
            victim = entries.pop(0)
            victims.append(victim)
            count -= 1
            size -= victim.size
        if victims:
            # Count them first: a crash after this over-reports an eviction, never hides one.
            self._note_evicted(victims)
            for v in victims:
                try:
                    v.path.unlink()
                except FileNotFoundError:
                    pass
            fsync_dir(self.directory)
            if self.log is not None:
                self.log.warning("spool_evicted", count=len(victims), sequences=[v.sequence for v in victims],
                                 max_reports=self.max_reports, max_bytes=self.max_bytes)
        return victims

    def remove(self, entry: SpoolEntry) -> None:
        """The collector has it: drop it from the outbox."""
        remove_durably(entry.path)
        self.forget_failures(entry.report_id)

    def reject(self, entry: SpoolEntry, code: str, message: str, status: int | None = None) -> Path:
        """The collector refused it for good: keep it under rejected/ with the reason."""
        rdir = ensure_dir(self.directory / REJECTED, 0o700)
        reason = {"code": code, "message": message, "http_status": status, "report_id": entry.report_id,
                  "sequence": entry.sequence}
        atomic_write(rdir / (entry.name[:-5] + ".reason.json"), json.dumps(reason, indent=2).encode("utf-8"))
        target = rdir / entry.name
        os.replace(entry.path, target)
        fsync_dir(rdir)
        fsync_dir(self.directory)
        self.forget_failures(entry.report_id)
        return target

    def set_aside(self, data: bytes, sequence: int, report_id: str, code: str, message: str) -> Path:
        """Keep a report that must not be sent under rejected/ with the reason, straight away."""
        rdir = ensure_dir(self.directory / REJECTED, 0o700)
        name = entry_name(sequence, report_id)
        atomic_write(rdir / (name[:-5] + ".reason.json"), json.dumps(
            {"code": code, "message": message, "http_status": None, "report_id": report_id, "sequence": sequence},
            indent=2).encode("utf-8"))
        atomic_write(rdir / name, data, mode=0o600)
        return rdir / name

    def too_large_note(self) -> list[dict[str, Any]]:
        """The reports set aside for their size ({sequence, bytes}), for the next report to say."""
        out = []
        for entry in self.rejected():
            if self.reason(entry).get("code") == TOO_LARGE:
                out.append({"sequence": entry.sequence, "bytes": entry.size})
        return out[-MAX_LISTED_TOO_LARGE:]

    def reason(self, entry: SpoolEntry) -> dict[str, Any]:
        """Why a report under rejected/ was set aside (code, message, http_status)."""
        try:
            data = json.loads((entry.path.parent / (entry.name[:-5] + ".reason.json")).read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def requeue(self, entry: SpoolEntry) -> Path:
        """Put a report from rejected/ back in the outbox (``auditagent resend``)."""
        target = self.directory / entry.name
        os.replace(entry.path, target)
        remove_durably(entry.path.parent / (entry.name[:-5] + ".reason.json"))
        self.forget_failures(entry.report_id)
        fsync_dir(self.directory)
        return target

    # A report the collector keeps failing on (5xx) while it accepts the ones after it must
    # not hold them back forever: its failed runs are counted here, and past a limit it is
    # set aside under rejected/ as undeliverable (shown by `status`, re-sent by `resend`).

    def _failures(self) -> dict[str, int]:
        try:
            data = json.loads((self.directory / FAILURES).read_text(encoding="utf-8"))
            return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}
        except (OSError, ValueError, TypeError):
            return {}

    def _write_failures(self, data: dict[str, int]) -> None:
        if data:
            atomic_write(self.directory / FAILURES, json.dumps(data, sort_keys=True).encode("utf-8"))
        else:
            remove_durably(self.directory / FAILURES)

    def note_failed_run(self, entry: SpoolEntry) -> int:
        """One more run in which the collector failed on this report; returns how many."""
        data = self._failures()
        data[entry.report_id] = data.get(entry.report_id, 0) + 1
        self._write_failures(data)
        return data[entry.report_id]

    def forget_failures(self, report_id: str) -> None:
        data = self._failures()
        if data.pop(report_id, None) is not None:
            self._write_failures(data)

    def rewrite(self, transform: Callable[[bytes], bytes]) -> int:
        """Replace every waiting report with ``transform(old bytes)`` (atomically, one by one)
        — used when re-enrolment gives the device a new key."""
        n = 0
        for entry in self.entries():
            atomic_write(entry.path, transform(self.read(entry)), mode=0o600)
            n += 1
        return n

    # ---------------------------------------------------------------- eviction note
    #
    # evicted.json lists the sequence numbers evicted and not yet acknowledged by the
    # collector. Every new report carries the whole list (predicate.spool); a number
    # leaves the list only when a report that told it has been *delivered* — so a
    # report that carried the news and was itself evicted loses nothing.

    def _note_path(self) -> Path:
        return self.directory / EVICTED_NOTE

    def eviction_note(self) -> dict[str, Any]:
        """{"evicted": n, "evicted_sequences": [...]} that the collector has not yet been told."""
        try:
            note = json.loads(self._note_path().read_text(encoding="utf-8"))
            if isinstance(note, dict) and isinstance(note.get("evicted_sequences"), list):
                seqs = [int(s) for s in note["evicted_sequences"]]
                unlisted = int(note.get("unlisted") or 0)
                return {"evicted": len(seqs) + unlisted, "evicted_sequences": seqs,
                        **({"unlisted": unlisted} if unlisted else {})}
        except (OSError, ValueError, TypeError):
            pass
        return {"evicted": 0, "evicted_sequences": []}

    def _write_note(self, seqs: list[int], unlisted: int) -> None:
        if len(seqs) > MAX_LISTED_SEQUENCES:
            unlisted += len(seqs) - MAX_LISTED_SEQUENCES
            seqs = seqs[-MAX_LISTED_SEQUENCES:]
        if not seqs and not unlisted:
            remove_durably(self._note_path())
            return
        atomic_write(self._note_path(), json.dumps({"evicted_sequences": seqs, "unlisted": unlisted}).encode())

    def _note_evicted(self, victims: list[SpoolEntry]) -> None:
        note = self.eviction_note()
        self._write_note(note["evicted_sequences"] + [v.sequence for v in victims], note.get("unlisted", 0))

    def acknowledge_eviction_note(self, told: dict[str, Any] | None) -> None:
        """The collector has a report that told ``told``: forget those evictions."""
        if not told or not told.get("evicted"):
            return
        note = self.eviction_note()
        told_seqs = set(told.get("evicted_sequences") or [])
        seqs = [s for s in note["evicted_sequences"] if s not in told_seqs]
        unlisted = max(0, note.get("unlisted", 0) - int(told.get("unlisted") or 0))
        if (seqs, unlisted) != (note["evicted_sequences"], note.get("unlisted", 0)):
            self._write_note(seqs, unlisted)

    def acknowledge_delivered(self, data: bytes) -> None:
        """Called when a spooled report has been delivered: what it told about evictions is known now."""
        told = spool_note_of(data)
        if told:
            self.acknowledge_eviction_note(told)


def spool_note_of(data: bytes) -> dict[str, Any] | None:
    """predicate.spool of a signed report envelope (None if it has none or cannot be read)."""
    import base64

    try:
        envelope = json.loads(data)
        statement = json.loads(base64.b64decode(envelope["payload"]))
        note = statement["predicate"].get("spool")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return note if isinstance(note, dict) else None


__all__ = ["Spool", "SpoolEntry", "entry_name", "TMP_PREFIX"]
