"""The readiness trend of a unit's subtree: the fleet's state at the end of each day.

Days are the organisation's local days (``serve --timezone``, :mod:`server.local_time`):
a day ends at local midnight, so a DST change day lasts 23 or 25 hours, and reports are
filed under their local day at ingest (``device_days``, server/store.py).

Rule (also written under the chart): a day's point is the state of every device at the
end of that day, by the one definition of :mod:`.state`, judged from its latest report
*before* that moment — not from whether it reported that day. A device counts from the
day it was enrolled (revoked devices are left out, as everywhere). It is

* *never reported* if it had sent no report by then;
* *stale* if that report was older than its unit's max report age then — so laptops
  switched off over a weekend show as stale, not as a collapse of readiness;
* *ready* / *due* / *not ready* by that report's required checks, the grace deadline
  in force after it and the exceptions active at the end of the day: *due* while the
  deadline was still ahead at that moment (no passing report came in between, or it
  would be the latest), *not ready* once it had passed.

Each day row keeps the deadline and the failing checks without grace as its report left
them (``device_days.due_until``, ``failing_hard``, copied from ``device_state`` at
ingest), and the state is :func:`.state.state_of` itself — the tiles' expression, with
the exceptions active at each day's end — so a closed day and today cannot disagree on
what *due* means. A report stored as history (older than the device's latest) keeps no
deadline: a day judged from it counts its failing checks as without grace.

Today's point is *now*: the same counts as the tiles and the unit tree. Reports are
placed on days, so a report counts as fresh for ``ceil(max age / 24 h)`` whole days
including its own (exact for ages in whole days, such as the default 24 h); the max age
is the one in force at the end of that day (the unit's own, else its nearest ancestor's,
else the default — as :mod:`.state` decides it, from each unit's history of settings), so
a policy change today does not rewrite how last month looked.

A closed day is counted once per unit and kept in ``unit_day_ready`` until something that
can change it bumps the unit's ``history_version``.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Date, DateTime, Integer, and_, cast, false, func, literal, or_, select, union_all
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from server.db import as_date, device_days, devices, exceptions, unit_day_ready, units, utc
from server.local_time import DEFAULT_ZONE, Zone, as_tz, local_day, local_midnight_after, zone_name
from server.readiness.scope import Scope, ancestor_or_self, in_subtree, visible_unit
from server.readiness.sql import contains_item, day_number, dialect, ts_param
from server.readiness.state import (COUNTED_READY, DEFAULT_MAX_REPORT_AGE_HOURS, DUE, NEVER_REPORTED, NOT_READY,
                                    READY, STALE, max_age_in_force, not_revoked, percent, ready_share,
                                    state_counts, state_of)

BANDS = (READY, DUE, NOT_READY, STALE, NEVER_REPORTED)  # bottom to top in the chart


@dataclass(frozen=True)
class TrendPoint:
    day: dt.date
    ready_pct: float | None  # (ready + due) / devices, as the tiles count it
    ready: int
    devices: int
    due: int = 0
    not_ready: int = 0
    stale: int = 0
    never_reported: int = 0

    def count(self, state: str) -> int:
        return int(getattr(self, state))

    @property
    def reported(self) -> int:
        """How many of the day's devices had sent a report by its end (every state but never reported)."""
        return self.devices - self.never_reported


CLOSED_AFTER = dt.timedelta(hours=1)  # a day is cached once it ended this long ago


def _day_end(day: dt.date, zone: Zone) -> dt.datetime:
    """The moment a day of the trend ends: local midnight after it, in UTC."""
    return local_midnight_after(day, zone)


def fresh_days(max_age_hours: int) -> int:
    """How many whole days, its own included, a report stays fresh on the day scale."""
    return max(1, math.ceil(max_age_hours / 24))


@dataclass(frozen=True)
class DayCover:
    """The exceptions active at the end of each day (``ends``, a column of the day table),
    in the shape :func:`.state.state_of` asks of a :class:`.cover.Cover`: whether every
    check of a device's failing list is covered, on the device or on its unit or an
    ancestor (``unit_path``). Only devices the period's exceptions may cover
    (``may_be_excepted``) get the costly count."""

    conn: Connection
    ends: Any
    unit_path: Any
    may_be_excepted: Any

    def covers_all(self, failing: Any, unit_id: Any, device_id: Any, *, hard: bool = False) -> Any:
        e, eu = exceptions.alias("he" if hard else "te"), units.alias("heu" if hard else "teu")
        at = self.ends
        covered_n = (select(func.count(func.distinct(e.c.check_id)))
                     .select_from(e.outerjoin(eu, eu.c.id == e.c.unit_id))
                     .where(contains_item(self.conn, failing, e.c.check_id),
                            e.c.granted_at <= at, e.c.expires_at > at,
                            or_(e.c.revoked_at.is_(None), e.c.revoked_at > at),
                            or_(e.c.device_id == device_id,
                                and_(e.c.unit_id.is_not(None), ancestor_or_self(eu.c.path, self.unit_path))))
                     .correlate_except(e, eu).scalar_subquery())
        n_failing = func.length(failing) - func.length(func.replace(failing, ",", "")) + 1
        return and_(self.may_be_excepted, covered_n >= n_failing)


def _day_states(conn: Connection, unit_ids: list[int], fresh: int, first: dt.date,
                last: dt.date, zone: Zone) -> dict[tuple[int, dt.date], dict[str, int]]:
    """Devices per (unit, closed day ``first``..``last``, state) of the units' own devices
    (not revoked) that had reported by the day's end: each judged from its latest report
    day on or before the day (a span of device_days rows), fresh for ``fresh`` days."""
    if not unit_ids or last < first:
        return {}
    dd = device_days
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    ends = [_day_end(d, zone) for d in days]
    # The days as a small table (SQLite has no VALUES with column names in FROM).
    cal = union_all(*[select(literal(d, Date).label("day"), literal(day_number(d), Integer).label("n"),
                             literal(e, DateTime(timezone=True)).label("ends"))
                      for d, e in zip(days, ends)]).cte("cal")
    n = day_number(dd.c.day, conn)
    # Each report day of a device is its latest one until its next report day.
    spans = (select(dd.c.device_id, dd.c.unit_id, dd.c.failing_required, dd.c.failing_hard, dd.c.due_until,
                    n.label("n"),
                    func.lead(n).over(partition_by=dd.c.device_id, order_by=dd.c.day).label("next_n"))
             .where(dd.c.unit_id.in_(unit_ids), dd.c.day <= last, not_revoked(dd.c.device_id))
             .subquery("spans"))
    sp = (select(spans).where(or_(spans.c.next_n.is_(None), spans.c.next_n > day_number(first)))
          .cte("live_spans").prefix_with("MATERIALIZED", dialect="postgresql"))
    # Exceptions that reach into the period: only devices they may cover get the costly test.
    period_start = ts_param(_day_end(first - dt.timedelta(days=1), zone))
    period_end = ts_param(ends[-1])
    pe, peu = exceptions.alias("pe"), units.alias("peu")
    period_ex = (select(pe.c.device_id, peu.c.path.label("unit_path"))
                 .select_from(pe.outerjoin(peu, peu.c.id == pe.c.unit_id))
                 .where(pe.c.granted_at <= period_end, pe.c.expires_at > period_start,
                        or_(pe.c.revoked_at.is_(None), pe.c.revoked_at > period_start))
                 .cte("trend_exceptions").prefix_with("MATERIALIZED", dialect="postgresql"))
    xu = units.alias("xu")
    excepted_device_ids = select(period_ex.c.device_id).where(period_ex.c.device_id.is_not(None))
    excepted_unit_ids = (select(xu.c.id).select_from(period_ex.join(xu, ancestor_or_self(period_ex.c.unit_path,
                                                                                          xu.c.path)))
                         .where(period_ex.c.unit_path.is_not(None)))
    may_be_excepted = or_(sp.c.device_id.in_(excepted_device_ids), sp.c.unit_id.in_(excepted_unit_ids))
    # The one rule (state.state_of), judged at the day's end from the span's report: never
    # reported is what is left over (no span yet), stale by the day scale.
    state = state_of(never=false(), stale=cal.c.n >= sp.c.n + fresh, due_open=sp.c.due_until > cal.c.ends,
                     failing_required=sp.c.failing_required, failing_hard=sp.c.failing_hard,
                     unit_id=sp.c.unit_id, device_id=sp.c.device_id,
                     cover=DayCover(conn, cal.c.ends, units.c.path, may_be_excepted))
    q = (select(sp.c.unit_id, cal.c.day, state.label("state"), func.count().label("k"))
         .select_from(sp.join(cal, and_(cal.c.n >= sp.c.n, or_(sp.c.next_n.is_(None), cal.c.n < sp.c.next_n)))
                      .join(units, units.c.id == sp.c.unit_id))
         .group_by(sp.c.unit_id, cal.c.day, state))
    out: dict[tuple[int, dt.date], dict[str, int]] = {}
    for r in conn.execute(q):
        out.setdefault((r.unit_id, as_date(r.day)), {})[r.state] = int(r.k)
    return out


def _store_day_states(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Upsert counted closed days into the cache, in a savepoint: a reader racing another
    one for the same rows loses nothing but its copy. Kept when the caller commits."""
    if dialect(conn) == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
    stmt = upsert(unit_day_ready)
    stmt = stmt.on_conflict_do_update(index_elements=[unit_day_ready.c.unit_id, unit_day_ready.c.day],
                                      set_={c: stmt.excluded[c] for c in ("ready", "due", "not_ready", "stale",
                                                                          "history_version", "zone")})
    try:
        with conn.begin_nested():
            for i in range(0, len(rows), 1000):
                conn.execute(stmt, rows[i:i + 1000])
    except DBAPIError:  # e.g. a read-only replica: the trend is right, only not cached
        pass


def _now_counts(conn: Connection, now: dt.datetime, unit_ids: list[int], default_max_age_hours: int) -> dict[str, int]:
    """The subtree's devices by state at ``now``: exactly what the tiles count."""
    out: dict[str, int] = {}
    for _u, state, _v, n in state_counts(conn, now, unit_ids, default_max_age_hours=default_max_age_hours):
        out[state] = out.get(state, 0) + n
    return out


def _whole_hours(zone: Zone) -> bool:
    """Whether the zone is a whole number of hours off UTC, summer and winter."""
    tz = as_tz(zone)
    return all(dt.datetime(2026, m, 1, tzinfo=tz).utcoffset().total_seconds() % 3600 == 0  # type: ignore[union-attr]
               for m in (1, 7))


def _enrolled_per_day(conn: Connection, unit_ids: list[int], zone: Zone) -> dict[dt.date, int]:
    """Devices (not revoked) of the units by the local day they were enrolled."""
    live = devices.c.unit_id.in_(unit_ids), devices.c.revoked_at.is_(None)
    out: dict[dt.date, int] = {}
    if dialect(conn) == "postgresql":
        d = cast(func.timezone(zone_name(zone), devices.c.enrolled_at), Date)
        for r in conn.execute(select(d.label("d"), func.count().label("n")).where(*live).group_by(d)):
            out[as_date(r.d)] = int(r.n)
        return out
    # SQLite keeps UTC text and knows no zones: counted per UTC hour (per minute where the
    # zone's offset is not whole hours), placed on local days here.
    width, fmt = (13, "%Y-%m-%d %H") if _whole_hours(zone) else (16, "%Y-%m-%d %H:%M")
    bucket = func.substr(devices.c.enrolled_at, 1, width)
    for r in conn.execute(select(bucket.label("m"), func.count().label("n")).where(*live).group_by(bucket)):
        at = dt.datetime.strptime(r.m, fmt).replace(tzinfo=dt.timezone.utc)
        day = local_day(at, zone)
        out[day] = out.get(day, 0) + int(r.n)
    return out


def trend(conn: Connection, scope: Scope, unit_id: int, now: dt.datetime, days: int = 90, *,
          default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS, zone: Zone = DEFAULT_ZONE) -> list[TrendPoint]:
    """The subtree's devices by state at the end of each local day (in ``zone``) over the
    last ``days`` days (oldest first; the last point is ``now``) — see the module docstring
    for the rule."""
    unit = visible_unit(conn, scope, unit_id)
    root = unit["path"]
    days = max(1, min(int(days), 366))
    zkey = zone_name(zone)
    today = local_day(utc(now), zone)  # type: ignore[arg-type]
    first = today - dt.timedelta(days=days - 1)
    sub_rows = conn.execute(select(units.c.id, units.c.path, units.c.history_version)
                            .where(in_subtree(units.c.path, root))).all()
    sub = {r.id: int(r.history_version) for r in sub_rows}
    # Each past day is judged by the max age in force at its end (its unit's history).
    past = [first + dt.timedelta(days=i) for i in range(days - 1)]
    in_force = max_age_in_force(conn, {r.id: r.path for r in sub_rows}, [_day_end(d, zone) for d in past],
                                default_max_age_hours=default_max_age_hours)
    fresh_on = {(u, d): fresh_days(h) for u, hs in in_force.items() for d, h in zip(past, hs)}
    # Devices counted on each day: enrolled by its end (enrolments per day, cumulated).
    per_day: dict[dt.date, int] = {}
    before = 0
    for d, k in _enrolled_per_day(conn, list(sub), zone).items():
        if d < first:
            before += k
        else:
            per_day[d] = k
    # Closed days from the per-unit cache (kept per zone: the same date is another span of
    # time in another zone), counted afresh only where missing, outdated or of another zone;
    # the day just ended (within CLOSED_AFTER) is counted but not kept.
    closed_until = min(today, local_day(utc(now) - CLOSED_AFTER, zone))  # type: ignore[operator]
    by_day: dict[dt.date, dict[str, int]] = {}

    def add(day: dt.date, counts: dict[str, int]) -> None:
        into = by_day.setdefault(day, {})
        for k, v in counts.items():
            into[k] = into.get(k, 0) + v

    have: set[tuple[int, dt.date]] = set()
    if first < closed_until:
        for r in conn.execute(select(unit_day_ready).where(unit_day_ready.c.unit_id.in_(list(sub)),
                                                           unit_day_ready.c.day >= first,
                                                           unit_day_ready.c.day < closed_until,
                                                           unit_day_ready.c.not_ready.is_not(None),
                                                           unit_day_ready.c.due.is_not(None))):
            if int(r.history_version) == sub[r.unit_id] and r.zone == zkey:
                have.add((r.unit_id, as_date(r.day)))
                add(as_date(r.day), {READY: int(r.ready), DUE: int(r.due), NOT_READY: int(r.not_ready),
                                     STALE: int(r.stale)})
    closed_days = [first + dt.timedelta(days=i) for i in range(max(0, (closed_until - first).days))]
    open_days = [d for d in (first + dt.timedelta(days=i) for i in range(days)) if closed_until <= d < today]
    fresh_rows = []
    for fresh in sorted(set(fresh_on.values())):
        missing = {u: [d for d in closed_days if (u, d) not in have and fresh_on[(u, d)] == fresh] for u in sub}
        missing = {u: ds for u, ds in missing.items() if ds}
        if missing:
            lo = min(min(ds) for ds in missing.values())
            hi = max(max(ds) for ds in missing.values())
            counted = _day_states(conn, sorted(missing), fresh, lo, hi, zone)
            for u, ds in missing.items():
                for d in ds:
                    c = counted.get((u, d), {})
                    add(d, c)
                    fresh_rows.append({"unit_id": u, "day": d, "ready": c.get(READY, 0), "due": c.get(DUE, 0),
                                       "not_ready": c.get(NOT_READY, 0), "stale": c.get(STALE, 0),
                                       "history_version": sub[u], "zone": zkey})
        group = sorted({u for u in sub for d in open_days if fresh_on[(u, d)] == fresh})
        if group:
            for (u, d), c in _day_states(conn, group, fresh, open_days[0], open_days[-1], zone).items():
                if fresh_on[(u, d)] == fresh:
                    add(d, c)
    if fresh_rows:
        _store_day_states(conn, fresh_rows)
    out = []
    total = int(before)
    for i in range(days - 1):
        d = first + dt.timedelta(days=i)
        total += per_day.get(d, 0)
        c = dict(by_day.get(d, {}))
        c[NEVER_REPORTED] = max(0, total - sum(c.values()))  # enrolled by the day's end, no report yet
        out.append(TrendPoint(day=d, ready_pct=percent(sum(c.get(k, 0) for k in COUNTED_READY), total), ready=c.get(READY, 0),
                              devices=total, due=c.get(DUE, 0), not_ready=c.get(NOT_READY, 0),
                              stale=c.get(STALE, 0), never_reported=c[NEVER_REPORTED]))
    c = _now_counts(conn, now, list(sub), default_max_age_hours)
    n = sum(c.values())
    out.append(TrendPoint(day=today, ready_pct=ready_share(c), ready=c.get(READY, 0), devices=n,
                          due=c.get(DUE, 0), not_ready=c.get(NOT_READY, 0), stale=c.get(STALE, 0),
                          never_reported=c.get(NEVER_REPORTED, 0)))
    return out
