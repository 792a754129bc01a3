"""Reading a query's next batch while the caller works on the one before: the database
computes rows on one core while this process converts and writes them on another,
instead of the two taking turns. For a long streamed result (an export)."""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")
_END = object()


def read_ahead(batches: Iterator[T], close: Callable[[], None], *, depth: int = 1) -> Iterator[T]:
    """``batches`` as they come, each next one fetched by a thread of its own meanwhile
    (at most ``depth`` ahead). However the caller stops (the end, an error, or closing
    the iterator early: a client gone mid-download), the thread has finished with the
    connection before this returns, and ``close`` (the result's) has run: the connection
    is never used by two threads at once, nor handed back to the pool while read."""
    handed: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handed.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def fetch() -> None:
        try:
            for b in batches:
                if not put(b):
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
            put(exc)

    thread = threading.Thread(target=fetch, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = handed.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
        close()
