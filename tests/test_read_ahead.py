"""read_ahead: batches in order, errors raised where they are read, and however the
reader stops, the fetching thread is done (and the result closed) before it returns."""
from __future__ import annotations

import threading

import pytest

from server.readiness.read_ahead import read_ahead


def _source(n, seen, fail_at=None):
    for i in range(n):
        if i == fail_at:
            raise RuntimeError(f"lost the connection at {i}")
        seen.append((i, threading.current_thread().name))
        yield [i] * 3


def test_batches_come_in_order_from_another_thread_and_the_result_is_closed():
    seen, closed = [], []
    got = list(read_ahead(_source(50, seen), lambda: closed.append(True)))
    assert got == [[i] * 3 for i in range(50)] and closed == [True]
    assert {name for _i, name in seen} == {"read-ahead"}


def test_an_error_while_fetching_is_raised_to_the_reader_after_the_batches_before_it():
    seen, closed = [], []
    got = []
    with pytest.raises(RuntimeError, match="lost the connection at 7"):
        for b in read_ahead(_source(50, seen, fail_at=7), lambda: closed.append(True)):
            got.append(b)
    assert got == [[i] * 3 for i in range(7)] and closed == [True]


def test_a_reader_that_stops_early_leaves_no_thread_reading():
    seen, closed = [], []
    it = read_ahead(_source(10_000, seen), lambda: closed.append(True), depth=1)
    assert next(it) == [0, 0, 0]
    it.close()  # e.g. the client went away mid-download
    assert closed == [True]
    assert not any(t.name == "read-ahead" and t.is_alive() for t in threading.enumerate())
    assert len(seen) <= 3  # the one read, at most one waiting, one being fetched: not the whole result
