"""Group commit: verified reports from concurrent requests share one transaction.

Each request thread hands its prepared report to :meth:`GroupCommit.store` and blocks
until the transaction holding it has COMMITTED, so a 2xx still means durable (no
``synchronous_commit=off``). One writer thread per process takes whatever has queued up
while the previous commit was in flight (at most ``max_batch``, at most one report per
device and report id, so one statement never touches a row twice) and stores it with one multi-row
statement: under load, one WAL flush carries hundreds of reports; when idle, a report
commits alone at once (no artificial wait).

If the batch statement fails on a constraint or a deadlock (a race with another
collector process), each report of the batch is redone alone in its own transaction,
so one report's conflict never refuses another. Any other database error (PostgreSQL
down) is raised in every waiting request, as a per-request transaction would.
"""
from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable, Sequence

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

# store_batch(conn, items) → for each item, True if stored, False if refused by the
# sequence rule (nothing of it changed). Raises on constraint violations.
StoreBatch = Callable[[Connection, Sequence[dict[str, Any]]], list[bool]]

_DEADLOCK = "40P01"
_IDLE_SECONDS = 2.0  # the writer thread ends after this long without work (restarted on demand)


def _retry_alone(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    orig = getattr(exc, "orig", None)
    return isinstance(exc, DBAPIError) and getattr(orig, "sqlstate", None) == _DEADLOCK


class GroupCommit:
    def __init__(self, engine: Engine, store_batch: StoreBatch, *, max_batch: int = 256) -> None:
        self._engine = engine
        self._store_batch = store_batch
        self._max_batch = max_batch
        self._queue: deque[tuple[dict[str, Any], Future]] = deque()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self.transactions_started = 0
        self.transactions = 0  # committed batch transactions, and the reports they carried
        self.reports = 0

    def store(self, item: dict[str, Any]) -> bool:
        """Store ``item`` (keyed by ``item["device_id"]``); True once committed, False if the
        sequence rule refused it. Database errors are raised here."""
        return self.submit(item).result()

    def submit(self, item: dict[str, Any]) -> Future:
        """Queue ``item`` for the next transaction without waiting: the future has what
        :meth:`store` returns or raises (an event loop awaits it instead of a thread)."""
        fut: Future = Future()
        with self._cv:
            self._queue.append((item, fut))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="auditagent-group-commit", daemon=True)
                self._thread.start()
            self._cv.notify()
        return fut

    @property
    def waiting(self) -> int:
        """Reports queued for the next transaction."""
        return len(self._queue)

    def _take(self) -> list[tuple[dict[str, Any], Future]] | None:
        with self._cv:
            if not self._queue and not self._cv.wait_for(lambda: bool(self._queue), timeout=_IDLE_SECONDS):
                self._thread = None
                return None
            batch, seen, later = [], set(), []
            while self._queue and len(batch) < self._max_batch:
                entry = self._queue.popleft()
                keys = {("device", entry[0]["device_id"]), ("report", entry[0].get("report_id"))}
                (later if keys & seen else batch).append(entry)
                seen |= keys
            # A device's second report (or a second claim to a report id) waits for the next
            # batch, whose statement sees the first one committed.
            self._queue.extendleft(reversed(later))
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            # Lock rows in one order, so two collectors' batches do not deadlock (often).
            batch.sort(key=lambda e: e[0]["device_id"])
            try:
                self._commit(batch)
            except BaseException as exc:  # noqa: BLE001 - every waiter must be woken
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)

    def _commit(self, batch: list[tuple[dict[str, Any], Future]]) -> None:
        self.transactions_started += 1
        try:
            with self._engine.begin() as conn:
                outcome = self._store_batch(conn, [item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1 or not _retry_alone(exc):
                raise
            for entry in batch:
                try:
                    self._commit([entry])
                except Exception as one:  # noqa: BLE001
                    entry[1].set_exception(one)
            return
        self.transactions += 1
        self.reports += len(batch)
        for (_, fut), stored in zip(batch, outcome):
            fut.set_result(stored)
