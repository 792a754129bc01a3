"""The readiness trend of a unit's subtree, one point per UTC day.

Rule (documented simplification): a device counts on day D if it was enrolled by the
end of D (and is not revoked now); it is ready on D if it reported on D (UTC) and the
day's last report had no failing required check, or every one of them was covered by an
exception active at the end of D (for today: at ``now``). A day without a report counts
as not ready.

A closed day is counted once per unit and kept in ``unit_day_ready`` until something that
can change it bumps the unit's ``history_version``.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Date, and_, bindparam, case, cast, func, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from server.db import unit_day_ready, as_date, device_days, devices, exceptions, units, utc
from server.readiness.scope import Scope, ancestor_or_self, in_subtree, visible_unit
from server.readiness.sql import contains_item, day_end, dialect, ts_param
from server.readiness.state import not_revoked, percent

# ------------------------------------------------------------------ trend


@dataclass(frozen=True)
class TrendPoint:
    day: dt.date
    ready_pct: float | None
    ready: int
    devices: int


CLOSED_AFTER = dt.timedelta(hours=1)  # a UTC day is cached once it ended this long ago


def _ready_device_days(conn: Connection, now: dt.datetime, today: dt.date, unit_ids: list[int],
                       first: dt.date, last: dt.date) -> dict[tuple[int, dt.date], int]:
    """Ready device-days per (unit, day) of the units' own devices (not revoked), days
    ``first``..``last``: the day's last report had no failing required check, or every one
    was covered by an exception active at the end of the day (for today: at ``now``)."""
    if not unit_ids or last < first:
        return {}
    dd = device_days
    e = exceptions.alias("te")
    eu = units.alias("teu")
    cutoff = case((dd.c.day == bindparam("today", today, type_=Date), ts_param(now)), else_=day_end(conn, dd.c.day))
    covered_n = (select(func.count(func.distinct(e.c.check_id)))
                 .select_from(e.outerjoin(eu, eu.c.id == e.c.unit_id))
                 .where(contains_item(conn, dd.c.failing_required, e.c.check_id),
                        e.c.granted_at <= cutoff, e.c.expires_at > cutoff,
                        or_(e.c.revoked_at.is_(None), e.c.revoked_at > cutoff),
                        or_(e.c.device_id == dd.c.device_id,
                            and_(e.c.unit_id.is_not(None), ancestor_or_self(eu.c.path, units.c.path))))
                 .correlate_except(e, eu).scalar_subquery())
    n_failing = func.length(dd.c.failing_required) - func.length(func.replace(dd.c.failing_required, ",", "")) + 1
    # The per-row count of covering exceptions is only worth running for devices that had
    # any exception in the period: found once per device (hashed IN), not per device-day.
    period_start = ts_param(dt.datetime.combine(first, dt.time(), dt.timezone.utc))
    pe, peu = exceptions.alias("pe"), units.alias("peu")
    period_ex = (select(pe.c.device_id, peu.c.path.label("unit_path"))
                 .select_from(pe.outerjoin(peu, peu.c.id == pe.c.unit_id))
                 .where(pe.c.granted_at <= ts_param(now), pe.c.expires_at > period_start,
                        or_(pe.c.revoked_at.is_(None), pe.c.revoked_at > period_start))
                 .cte("trend_exceptions").prefix_with("MATERIALIZED", dialect="postgresql"))
    xu = units.alias("xu")
    excepted_device_ids = select(period_ex.c.device_id).where(period_ex.c.device_id.is_not(None))
    excepted_unit_ids = (select(xu.c.id).select_from(period_ex.join(xu, ancestor_or_self(period_ex.c.unit_path,
                                                                                           xu.c.path)))
                         .where(period_ex.c.unit_path.is_not(None)))
    may_be_excepted = or_(dd.c.device_id.in_(excepted_device_ids), dd.c.unit_id.in_(excepted_unit_ids))
    ready = or_(dd.c.ready_strict == True, dd.c.failing_required == "",  # noqa: E712
                and_(may_be_excepted, covered_n >= n_failing))
    # Day rows carry their device's unit: no join of every day row to devices. The unit ids
    # are passed as a list, so the planner sees how few rows they select (the (unit_id, day)
    # index) — a path-prefix condition it cannot estimate.
    q = (select(dd.c.unit_id, dd.c.day, func.count().label("n"))
         .select_from(dd.join(units, units.c.id == dd.c.unit_id))
         .where(dd.c.unit_id.in_(unit_ids), dd.c.day >= first, dd.c.day <= last,
                not_revoked(dd.c.device_id), ready)
         .group_by(dd.c.unit_id, dd.c.day))
    return {(r.unit_id, as_date(r.day)): int(r.n) for r in conn.execute(q)}


def _store_day_ready(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Upsert counted closed days into the cache, in a savepoint: a reader racing another
    one for the same rows loses nothing but its copy. Kept when the caller commits."""
    if dialect(conn) == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
    stmt = upsert(unit_day_ready)
    stmt = stmt.on_conflict_do_update(index_elements=[unit_day_ready.c.unit_id, unit_day_ready.c.day],
                                      set_={"ready": stmt.excluded.ready,
                                            "history_version": stmt.excluded.history_version})
    try:
        with conn.begin_nested():
            for i in range(0, len(rows), 1000):
                conn.execute(stmt, rows[i:i + 1000])
    except DBAPIError:  # e.g. a read-only replica: the trend is right, only not cached
        pass


def trend(conn: Connection, scope: Scope, unit_id: int, now: dt.datetime, days: int = 90) -> list[TrendPoint]:
    """Readiness % per UTC day over the last ``days`` days (oldest first), for the unit's
    subtree — see the module docstring for the rule."""
    unit = visible_unit(conn, scope, unit_id)
    root = unit["path"]
    days = max(1, min(int(days), 366))
    today = utc(now).date()  # type: ignore[union-attr]
    first = today - dt.timedelta(days=days - 1)
    sub = {r.id: int(r.history_version) for r in conn.execute(
        select(units.c.id, units.c.history_version).where(in_subtree(units.c.path, root)))}
    # Denominator: devices enrolled by each day's end (enrolments per day, cumulated over days).
    enrol_day = cast(devices.c.enrolled_at, Date) if dialect(conn) == "postgresql" else func.date(devices.c.enrolled_at)
    per_day: dict[dt.date, int] = {}
    before = 0
    for r in conn.execute(select(enrol_day.label("d"), func.count().label("n"))
                          .where(devices.c.unit_id.in_(list(sub)), devices.c.revoked_at.is_(None))
                          .group_by(enrol_day)):
        if as_date(r.d) < first:
            before += int(r.n)
        else:
            per_day[as_date(r.d)] = int(r.n)
    # Numerator: ready device-days per day, summed over the subtree's units: closed days from
    # the per-unit cache (unit_day_ready), counted afresh only where missing or outdated.
    closed_until = min(today, (utc(now) - CLOSED_AFTER).date())  # type: ignore[operator]  # days before it are closed
    ready_by_day: dict[dt.date, int] = {}
    have: set[tuple[int, dt.date]] = set()
    if first < closed_until:
        for r in conn.execute(select(unit_day_ready).where(unit_day_ready.c.unit_id.in_(list(sub)),
                                                           unit_day_ready.c.day >= first,
                                                           unit_day_ready.c.day < closed_until)):
            if int(r.history_version) == sub.get(r.unit_id):
                day = as_date(r.day)
                have.add((r.unit_id, day))
                ready_by_day[day] = ready_by_day.get(day, 0) + int(r.ready)
        closed_days = [first + dt.timedelta(days=i) for i in range((closed_until - first).days)]
        missing = {u: [d for d in closed_days if (u, d) not in have] for u in sub}
        missing = {u: ds for u, ds in missing.items() if ds}
        if missing:
            lo, hi = min(min(ds) for ds in missing.values()), max(max(ds) for ds in missing.values())
            counted = _ready_device_days(conn, now, today, sorted(missing), lo, hi)
            fresh = [{"unit_id": u, "day": d, "ready": counted.get((u, d), 0), "history_version": sub[u]}
                     for u, ds in missing.items() for d in ds]
            for row in fresh:
                ready_by_day[row["day"]] = ready_by_day.get(row["day"], 0) + row["ready"]
            _store_day_ready(conn, fresh)
    for (_u, day), n in _ready_device_days(conn, now, today, list(sub), max(first, closed_until), today).items():
        ready_by_day[day] = ready_by_day.get(day, 0) + n
    out = []
    total = int(before)
    for i in range(days):
        d = first + dt.timedelta(days=i)
        total += per_day.get(d, 0)
        r = ready_by_day.get(d, 0)
        out.append(TrendPoint(day=d, ready_pct=percent(r, total), ready=r, devices=total))
    return out

