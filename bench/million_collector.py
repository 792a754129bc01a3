"""The collector for bench/bench_million.py: the app ``auditagent-collector serve``
builds (:func:`server.asgi.app_from_environment`, the same factory ``serve --workers N``
uses), with one difference: the store's clock is a *simulated* one, so that a few
minutes of ingest can be months of hourly reports and fill several monthly partitions.

Why a clock and not a backdated ``received_at`` alone: ingest compares a report's day
with the collector's clock (a report whose day has already ended is "late" and redoes
its unit's trend days), makes the coming months' partitions when the collector's month
turns, and dedups facts per month of receipt. With the store's clock simulated, all of
that behaves as on a collector that has really been running for those months.

The simulated time is a pure function of the wall clock (:func:`sim_time`): the run is
cut into *rounds* of ``round_seconds`` wall seconds; round k is simulated hour
``hours[k]`` (hours spread over the months the run covers), and within a round the
clock moves linearly through that hour. The senders compute each report's
``generated_at`` with the same function, so a report is never ahead of the collector.

Bench-only: this module lives in ``bench/``, ``serve`` never imports it, and it does
nothing unless started as the factory below with :data:`CLOCK_ENV` set.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import time
from dataclasses import dataclass
from typing import Any

CLOCK_ENV = "AUDITAGENT_BENCH_SIM_CLOCK"
HOUR = dt.timedelta(hours=1)


@dataclass(frozen=True)
class SimClock:
    wall0: float  # time.time() at which round 0 starts
    round_seconds: float  # wall seconds per round (one simulated hour of the whole fleet)
    hours: tuple[dt.datetime, ...]  # the simulated hour of each round (UTC, ascending)

    def to_env(self) -> str:
        return json.dumps({"wall0": self.wall0, "round_seconds": self.round_seconds,
                           "hours": [h.isoformat() for h in self.hours]})

    @classmethod
    def from_env(cls, text: str) -> "SimClock":
        d = json.loads(text)
        return cls(d["wall0"], d["round_seconds"], tuple(dt.datetime.fromisoformat(h) for h in d["hours"]))

    def at(self, wall: float) -> dt.datetime:
        return sim_time(self, wall)


def sim_time(clock: SimClock, wall: float) -> dt.datetime:
    """The simulated UTC time at wall-clock ``wall`` (clamped to the run's first and last hour)."""
    elapsed = max(wall - clock.wall0, 0.0)
    k = min(int(elapsed // clock.round_seconds), len(clock.hours) - 1)
    frac = min((elapsed - k * clock.round_seconds) / clock.round_seconds, 0.999)
    return clock.hours[k] + frac * HOUR


def round_hours(end: dt.datetime, rounds: int, months: int) -> tuple[dt.datetime, ...]:
    """``rounds`` simulated hours, evenly spaced over the ``months`` (of 30 days) before
    ``end`` (the last one is the hour before ``end``), so each month gets its share."""
    last = end.replace(minute=0, second=0, microsecond=0) - HOUR
    if rounds == 1:
        return (last,)
    span = dt.timedelta(days=30 * months)  # 30-day steps: from the 1st of a month, each round in the next month
    step = span / (rounds - 1)
    return tuple((last - (rounds - 1 - k) * step).replace(minute=0, second=0, microsecond=0) for k in range(rounds))


def app() -> Any:
    """uvicorn factory: the collector app with the store's clock simulated."""
    from server import store as store_module
    from server.asgi import app_from_environment

    clock = SimClock.from_env(os.environ[CLOCK_ENV])
    # The store module's clock only (ingest's received time, its "late" day and the
    # partitions it makes ahead); the dashboard keeps the real clock.
    store_module.now = lambda: sim_time(clock, time.time())
    return app_from_environment()
