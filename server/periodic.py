"""A task run every N seconds in a daemon thread of the collector (``serve``), until
``stop()``: the notification pass (server/notify/worker.py), the stored judgement's sweep
(server/readiness/judged.py). A failed pass is logged by its kind of error (never its
text, which may hold data) and tried again at the next turn."""
from __future__ import annotations

import threading
from typing import Callable

import structlog


class Periodic:
    def __init__(self, name: str, run: Callable[[], object], every: float, *, log_event: str,
                 logger: str = "auditagent") -> None:
        self.run, self.every, self.log_event = run, every, log_event
        self._log = structlog.get_logger(logger)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> "Periodic":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive a database hiccup
                self._log.error(self.log_event, error=type(exc).__name__)
            self._stop.wait(self.every)
