"""Readiness summaries, computed in SQL from the latest-state rows (``device_state``,
``device_checks``, ``device_days``), on SQLite and PostgreSQL alike.

Every function takes a SQLAlchemy Connection, a :class:`Scope` (the unit subtree the
user may see; ``Scope()`` = all units) and ``now`` (so tests fix time). Nothing loops
over devices in Python beyond the page being shown; loops over units (a few hundred)
and days (90) are fine.

The state of a device — one definition, :func:`device_state_rows`, reused by every query:

================ ==========================================================================
never_reported   enrolled, no report stored yet
stale            its latest report was generated more than the unit's max report age ago
                 (``units.max_report_age_hours`` of the unit or its nearest ancestor that
                 sets one, else the collector default, 24 h)
not_ready        a required check is not met (status fail or unknown) and no active
                 exception covers it (for that device, or for its unit or any ancestor)
ready            otherwise: every required check passes (or is not applicable) or is
                 covered by an active exception
================ ==========================================================================

Revoked devices are left out everywhere. Readiness % = ready / all devices (of every
state) × 100, one decimal; None for a unit without devices.

Trend rule (documented simplification): a device counts on day D if it was enrolled by
the end of D (and is not revoked now); it is ready on D if it reported on D (UTC) and
the day's last report had no failing required check, or every one of them was covered
by an exception active at the end of D (for today: at ``now``). A day without a report
counts as not ready.
"""
from __future__ import annotations

import uuid

import csv
import datetime as dt
import io
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from sqlalchemy import (Column, Date, DateTime, Interval, MetaData, Table, and_, bindparam, case, cast,
                        exists, func, insert, literal, or_, select, text, tuple_, update)
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, Select

from auditagent import report as wire
from server.db import (audit_log, device_checks, device_days, device_keys, device_state, devices, exceptions, reports,
                       units, users, utc)
from server.store import FAILING_STATUSES, ApiError

if TYPE_CHECKING:  # pragma: no cover
    from server.auth import User

READY, NOT_READY, STALE, NEVER_REPORTED = "ready", "not_ready", "stale", "never_reported"
STATES = (READY, NOT_READY, STALE, NEVER_REPORTED)
DEFAULT_MAX_REPORT_AGE_HOURS = 24
MAX_EXCEPTION_DAYS = 180
MAX_PER_PAGE = 500
_CHECK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")


# ------------------------------------------------------------------ errors


class NotFound(ApiError):
    """404. A unit, device, report or exception outside the user's scope raises this too:
    out of scope is indistinguishable from missing."""

    def __init__(self, what: str, ident: Any) -> None:
        super().__init__(404, "not_found", f"{what} {ident}: not found")


class Forbidden(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(403, "forbidden", message)


class Invalid(ApiError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(422, "invalid", f"{field_name}: {message}", field=field_name)


# ------------------------------------------------------------------ scope


@dataclass(frozen=True)
class Scope:
    """The units a user may see: the subtree at ``unit_path`` ('A/B'), or all (None)."""

    unit_path: str | None = None

    @classmethod
    def all(cls) -> "Scope":
        return cls(None)

    @classmethod
    def for_user(cls, user: "User") -> "Scope":
        return cls(user.scope_path)

    def contains(self, path: str | None) -> bool:
        if self.unit_path is None:
            return True
        if path is None:
            return False
        return path == self.unit_path or path.startswith(self.unit_path + "/")

    def clause(self, path_col: Any) -> ColumnElement[bool]:
        """SQL: ``path_col`` lies in this scope (no LIKE: unit names may hold % or _)."""
        if self.unit_path is None:
            return literal(True) == literal(True)
        return _in_subtree(path_col, self.unit_path)


def _in_subtree(path_col: Any, root: str) -> ColumnElement[bool]:
    prefix = root + "/"
    return or_(path_col == root, func.substr(path_col, 1, len(prefix)) == prefix)


def _ancestor_or_self(anc_path: Any, path: Any) -> ColumnElement[bool]:
    """SQL: the unit at ``anc_path`` is ``path`` or one of its ancestors (both columns)."""
    return or_(path == anc_path, func.substr(path, 1, func.length(anc_path) + 1) == anc_path + "/")


# ------------------------------------------------------------------ dialect helpers


def _dialect(conn: Connection) -> str:
    return conn.dialect.name


def _ts(value: dt.datetime) -> Any:
    return bindparam(None, utc(value), type_=DateTime(timezone=True))


def _minus_hours(conn: Connection, ts: dt.datetime, hours: Any) -> Any:
    """SQL timestamp ``ts - hours`` (``hours`` an integer SQL expression)."""
    if _dialect(conn) == "postgresql":
        return _ts(ts) - func.make_interval(0, 0, 0, 0, hours, type_=Interval)
    # SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff' text; strftime yields the same shape (ms).
    return func.strftime("%Y-%m-%d %H:%M:%f", _ts(ts), func.printf("-%d hours", hours))


def _day_end(conn: Connection, day_col: Any) -> Any:
    """SQL timestamp: midnight UTC after ``day_col``."""
    if _dialect(conn) == "postgresql":
        return cast(day_col, DateTime) + func.make_interval(0, 0, 0, 1, type_=Interval)
    return func.strftime("%Y-%m-%d %H:%M:%f", day_col, "+1 day")


def _agg_list(conn: Connection, col: Any) -> Any:
    """SQL: the values of ``col`` in a group joined with ',' (order unspecified)."""
    if _dialect(conn) == "postgresql":
        return func.string_agg(col, ",")
    return func.group_concat(col, ",")


def _contains_item(conn: Connection, csv_col: Any, item: Any) -> ColumnElement[bool]:
    """SQL: ``item`` is one of the comma-separated values in ``csv_col``."""
    hay = "," + csv_col + ","
    needle = "," + item + ","
    if _dialect(conn) == "postgresql":
        return func.strpos(hay, needle) > 0
    return func.instr(hay, needle) > 0


# ------------------------------------------------------------------ the device state (one definition)


def unit_max_age(name: str = "unit_age") -> Any:
    """Subquery (unit_id, path, max_age_hours-or-NULL): each unit's own or nearest ancestor's
    max report age."""
    u = units.alias("mu")
    a = units.alias("ma")
    hours = (select(a.c.max_report_age_hours)
             .where(a.c.max_report_age_hours.is_not(None), _ancestor_or_self(a.c.path, u.c.path))
             .order_by(a.c.depth.desc()).limit(1).scalar_subquery())
    # Materialised: 1 row per unit, computed once, not once per device joined to it.
    return (select(u.c.id.label("unit_id"), u.c.path.label("path"), hours.label("max_age_hours"))
            .cte(name).prefix_with("MATERIALIZED", dialect="postgresql"))


def _exception_active(now: dt.datetime, e: Any = exceptions) -> ColumnElement[bool]:
    return and_(e.c.revoked_at.is_(None), e.c.expires_at > _ts(now), e.c.granted_at <= _ts(now))


def _covered(conn: Connection, now: dt.datetime, check_col: Any, device_col: Any, unit_path_col: Any) -> Any:
    """SQL EXISTS: an active exception covers ``check_col`` on this device (device-level, or
    on its unit or any ancestor unit)."""
    e = exceptions.alias("ex")
    eu = units.alias("exu")
    return (exists(select(literal(1)).select_from(e.outerjoin(eu, eu.c.id == e.c.unit_id))
                   .where(e.c.check_id == check_col, _exception_active(now, e),
                          or_(e.c.device_id == device_col,
                              and_(e.c.unit_id.is_not(None), _ancestor_or_self(eu.c.path, unit_path_col))))
                   .correlate_except(e, eu)))


def device_state_rows(conn: Connection, scope: Scope, now: dt.datetime, *,
                      default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> Select:
    """SELECT of every active device in scope with its state: columns id, unit_id,
    unit_path, hostname, platform, os, agent_version, enrolled_at, generated_at,
    received_at, last_report_id, state. Use it as a subquery."""
    ua = unit_max_age()
    hours = func.coalesce(ua.c.max_age_hours, default_max_age_hours)
    failing = uncovered_failing_devices(now, scope)
    state = case(
        (device_state.c.last_report_id.is_(None), NEVER_REPORTED),
        (device_state.c.generated_at < _minus_hours(conn, now, hours), STALE),
        (failing.c.device_id.is_not(None), NOT_READY),
        else_=READY)
    return (select(devices.c.id, devices.c.unit_id, ua.c.path.label("unit_path"), devices.c.hostname,
                   devices.c.platform, devices.c.os,
                   func.coalesce(device_state.c.agent_version, devices.c.agent_version).label("agent_version"),
                   devices.c.enrolled_at, device_state.c.generated_at, device_state.c.received_at,
                   device_state.c.last_report_id, state.label("state"))
            .select_from(devices.join(ua, ua.c.unit_id == devices.c.unit_id)
                         .outerjoin(device_state, device_state.c.device_id == devices.c.id)
                         .outerjoin(failing, failing.c.device_id == devices.c.id))
            .where(devices.c.revoked_at.is_(None), scope.clause(ua.c.path)))


def active_exceptions(now: dt.datetime) -> Any:
    """CTE (check_id, device_id, unit_path): the exceptions in force at ``now``, with the
    path of the unit a unit-wide exception covers. Few rows; gathered once per query."""
    e, eu = exceptions.alias("aex"), units.alias("aexu")
    return (select(e.c.check_id, e.c.device_id, eu.c.path.label("unit_path"))
            .select_from(e.outerjoin(eu, eu.c.id == e.c.unit_id))
            .where(_exception_active(now, e))
            .cte("active_exceptions").prefix_with("MATERIALIZED", dialect="postgresql"))


def _covered_by(active: Any, check_col: Any, device_col: Any, unit_id_col: Any) -> Any:
    """SQL: one of the ``active`` exceptions covers this check on this device. Two
    uncorrelated IN lookups, which the database answers from a hash: device exceptions
    by (check, device), and unit exceptions spread over every unit of their subtree by
    (check, unit) — rather than scanning the exceptions once per failing row."""
    covered_units = units.alias("cov_u")
    by_unit = (select(active.c.check_id, covered_units.c.id)
               .select_from(active.join(covered_units, _ancestor_or_self(active.c.unit_path, covered_units.c.path)))
               .where(active.c.unit_path.is_not(None)))
    by_device = select(active.c.check_id, active.c.device_id).where(active.c.device_id.is_not(None))
    return or_(tuple_(check_col, device_col).in_(by_device), tuple_(check_col, unit_id_col).in_(by_unit))


def uncovered_failing_devices(now: dt.datetime, scope: Scope) -> Any:
    """CTE (device_id): devices with a failing required check that no active exception
    covers. Set-based: the few active exceptions are gathered once (with their unit's
    path), then matched against the failing checks — instead of a correlated lookup
    per device, which cost a scan of exceptions and units for each failing device."""
    active = active_exceptions(now)
    dc, d, du = device_checks.alias("fdc"), devices.alias("fd"), units.alias("fdu")
    covered = _covered_by(active, dc.c.check_id, dc.c.device_id, d.c.unit_id)
    return (select(dc.c.device_id)
            .select_from(dc.join(d, d.c.id == dc.c.device_id).join(du, du.c.id == d.c.unit_id))
            .where(dc.c.severity == "required", dc.c.status.in_(FAILING_STATUSES), ~covered,
                   scope.clause(du.c.path))
            .group_by(dc.c.device_id)
            .cte("uncovered_failing").prefix_with("MATERIALIZED", dialect="postgresql"))


# ------------------------------------------------------------------ units


@dataclass(frozen=True)
class StateCounts:
    ready: int = 0
    not_ready: int = 0
    stale: int = 0
    never_reported: int = 0


@dataclass(frozen=True)
class UnitSummary:
    id: int
    path: str
    name: str
    parent_id: int | None  # None also when the parent lies outside the user's scope
    depth: int
    counts: StateCounts
    total: int
    ready_pct: float | None
    max_report_age_hours: int


def _pct(ready: int, total: int) -> float | None:
    return round(100.0 * ready / total, 1) if total else None


def _rollup(conn: Connection, scope: Scope, now: dt.datetime, ids: list[int] | None = None, *,
            default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> list[UnitSummary]:
    """Per-unit counts with roll-up: direct counts per unit first (GROUP BY unit_id over
    devices), then summed over the small units table by path prefix."""
    ds = device_state_rows(conn, scope, now, default_max_age_hours=default_max_age_hours).subquery("ds")
    # Count per (unit, state): the state expression (with its per-device EXISTS) is then
    # evaluated once per device — summing CASE WHEN state = … per state made PostgreSQL
    # inline and evaluate it once per state. Materialised, so the path-prefix roll-up
    # below does not re-run it per unit.
    by_state = (select(ds.c.unit_id, ds.c.state, func.count().label("n"))
                .group_by(ds.c.unit_id, ds.c.state).cte("by_state")
                .prefix_with("MATERIALIZED", dialect="postgresql"))
    du = units.alias("du")
    direct = (select(by_state.c.unit_id, du.c.path.label("unit_path"),
                     *[func.sum(case((by_state.c.state == s, by_state.c.n), else_=0)).label(s) for s in STATES])
              .select_from(by_state.join(du, du.c.id == by_state.c.unit_id))
              .group_by(by_state.c.unit_id, du.c.path).subquery("direct"))
    a = units.alias("a")
    ua = unit_max_age("rollup_unit_age")
    q = (select(a.c.id, a.c.path, a.c.name, a.c.parent_id, a.c.depth, ua.c.max_age_hours,
                *[func.coalesce(func.sum(direct.c[s]), 0).label(s) for s in STATES])
         .select_from(a.join(ua, ua.c.unit_id == a.c.id)
                      .outerjoin(direct, _ancestor_or_self(a.c.path, direct.c.unit_path)))
         .where(scope.clause(a.c.path))
         .group_by(a.c.id, a.c.path, a.c.name, a.c.parent_id, a.c.depth, ua.c.max_age_hours))
    if ids is not None:
        q = q.where(a.c.id.in_(ids))
    out = []
    for r in conn.execute(q).mappings():
        counts = StateCounts(**{s: int(r[s]) for s in STATES})
        total = sum(int(r[s]) for s in STATES)
        parent = r["parent_id"] if scope.unit_path is None or r["path"] != scope.unit_path else None
        out.append(UnitSummary(id=r["id"], path=r["path"], name=r["name"], parent_id=parent, depth=r["depth"],
                               counts=counts, total=total, ready_pct=_pct(counts.ready, total),
                               max_report_age_hours=int(r["max_age_hours"] or default_max_age_hours)))
    out.sort(key=lambda u: u.path.split("/"))
    return out


def unit_tree(conn: Connection, scope: Scope, now: dt.datetime, *,
              default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> list[UnitSummary]:
    """Every unit in scope, parents before children (sorted by path components), each
    counting all devices in its subtree."""
    return _rollup(conn, scope, now, default_max_age_hours=default_max_age_hours)


def visible_unit(conn: Connection, scope: Scope, unit_id: int) -> dict[str, Any]:
    row = conn.execute(select(units).where(units.c.id == unit_id)).mappings().first()
    if row is None or not scope.contains(row["path"]):
        raise NotFound("unit", unit_id)
    return dict(row)


def visible_device(conn: Connection, scope: Scope, device_id: str) -> dict[str, Any]:
    """The device row (with ``unit_path``) if it exists, is not revoked and lies in scope; else NotFound."""
    row = conn.execute(select(devices, units.c.path.label("unit_path"))
                       .join(units, units.c.id == devices.c.unit_id)
                       .where(devices.c.id == str(device_id)[:64])).mappings().first()
    if row is None or row["revoked_at"] is not None or not scope.contains(row["unit_path"]):
        raise NotFound("device", device_id)
    return dict(row)


@dataclass(frozen=True)
class FailingCheck:
    check_id: str
    severity: str
    devices_failing: int  # failing and not covered by an exception
    devices_excepted: int  # failing but covered by an active exception


@dataclass(frozen=True)
class StaleDevice:
    id: str
    hostname: str
    unit_path: str
    last_seen: dt.datetime | None  # generated_at of the latest report
    received_at: dt.datetime | None


@dataclass(frozen=True)
class DeviceRow:
    id: str
    hostname: str
    unit_id: int
    unit_path: str
    platform: str | None
    os: str | None
    agent_version: str | None
    agent_outdated: bool
    state: str
    last_seen: dt.datetime | None
    received_at: dt.datetime | None
    failing_checks: list[str] = field(default_factory=list)  # required, not met, not excepted
    excepted_checks: list[str] = field(default_factory=list)  # required, not met, covered by an exception


@dataclass(frozen=True)
class DevicePage:
    items: list[DeviceRow]
    total: int
    page: int
    per_page: int


@dataclass(frozen=True)
class AgentVersions:
    newest: str | None  # newest version reported anywhere (or the configured minimum if higher)
    minimum: str | None  # configured minimum, if any
    distribution: list[tuple[str, int]]  # (version, devices) in the unit's subtree, newest first
    outdated: int  # devices in the subtree below ``newest``


@dataclass(frozen=True)
class UnitDetail:
    summary: UnitSummary
    children: list[UnitSummary]
    failing_checks: list[FailingCheck]
    stale_longest: list[StaleDevice]
    devices: DevicePage
    agent_versions: AgentVersions
    children_outdated_agents: dict[int, int] = field(default_factory=dict)  # child unit id → devices


def _failing_checks(conn: Connection, scope: Scope, now: dt.datetime, root: str, limit: int, *,
                    states: Table | None = None) -> list[FailingCheck]:
    dc = device_checks
    if states is not None:  # the drill-down's devices, states computed once
        source = dc.join(states, states.c.id == dc.c.device_id)
        unit_id_col, where = states.c.unit_id, [dc.c.status.in_(FAILING_STATUSES)]
    else:
        source = dc.join(devices, devices.c.id == dc.c.device_id).join(units, units.c.id == devices.c.unit_id)
        unit_id_col = devices.c.unit_id
        where = [devices.c.revoked_at.is_(None), dc.c.status.in_(FAILING_STATUSES),
                 _in_subtree(units.c.path, root), scope.clause(units.c.path)]
    covered = _covered_by(active_exceptions(now), dc.c.check_id, dc.c.device_id, unit_id_col)
    # Coverage once per failing row (summing CASE on it twice evaluated it twice).
    rows_q = (select(dc.c.check_id, dc.c.severity, case((covered, 1), else_=0).label("covered"))
              .select_from(source).where(*where)
              .cte("failing_rows").prefix_with("MATERIALIZED", dialect="postgresql"))
    q = (select(rows_q.c.check_id, rows_q.c.severity,
                func.sum(1 - rows_q.c.covered).label("failing"), func.sum(rows_q.c.covered).label("excepted"))
         .group_by(rows_q.c.check_id, rows_q.c.severity))
    rows = [FailingCheck(r.check_id, r.severity, int(r.failing), int(r.excepted)) for r in conn.execute(q)]
    rows.sort(key=lambda f: (f.severity != "required", -f.devices_failing, -f.devices_excepted, f.check_id))
    return rows[:limit]


def version_key(v: str | None) -> tuple[Any, ...]:
    """Sort key for agent versions: numeric parts compare as numbers ('0.10.0' > '0.9.1')."""
    if not v:
        return ()
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.\-+]", v))


def agent_versions(conn: Connection, scope: Scope, root: str | None, now: dt.datetime, *,
                   minimum: str | None = None, states: Table | None = None) -> AgentVersions:
    """Agent version distribution in the subtree at ``root`` (None: the whole scope), and
    how many devices run an agent older than the newest version reported anywhere in the
    fleet (a version number is not confidential) or the configured ``minimum``."""
    ver = func.coalesce(device_state.c.agent_version, devices.c.agent_version)
    dist_q = (select(ver.label("v"), func.count().label("n"))
              .select_from(devices.join(units, units.c.id == devices.c.unit_id)
                           .outerjoin(device_state, device_state.c.device_id == devices.c.id))
              .where(devices.c.revoked_at.is_(None), scope.clause(units.c.path))
              .group_by(ver))
    if root is not None:
        dist_q = dist_q.where(_in_subtree(units.c.path, root))
    if states is not None:  # the drill-down's states, computed once: no second pass over devices
        dist_q = select(states.c.agent_version.label("v"), func.count().label("n")).group_by(states.c.agent_version)
    dist = [(r.v, int(r.n)) for r in conn.execute(dist_q) if r.v]
    # Over the whole fleet, the distribution already names every version reported.
    if scope.unit_path is None and root is None and states is None:
        all_versions = [v for v, _ in dist]
    else:
        all_versions = [r.v for r in conn.execute(
            select(func.coalesce(device_state.c.agent_version, devices.c.agent_version).label("v")).distinct()
            .select_from(devices.outerjoin(device_state, device_state.c.device_id == devices.c.id))
            .where(devices.c.revoked_at.is_(None))) if r.v]
    newest = max(all_versions, key=version_key) if all_versions else None
    if minimum and (newest is None or version_key(minimum) > version_key(newest)):
        newest = minimum
    dist.sort(key=lambda x: version_key(x[0]), reverse=True)
    outdated = sum(n for v, n in dist if newest and version_key(v) < version_key(newest))
    return AgentVersions(newest=newest, minimum=minimum, distribution=dist, outdated=outdated)


_STATE_ORDER = {NOT_READY: 0, STALE: 1, NEVER_REPORTED: 2, READY: 3}


def _device_rows(conn: Connection, now: dt.datetime, rows: Sequence[Any], newest: str | None) -> list[DeviceRow]:
    """DeviceRows for one page of device_state_rows results, with their failing checks."""
    ids = [r["id"] for r in rows]
    failing: dict[str, list[str]] = {i: [] for i in ids}
    excepted: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        dc = device_checks
        covered = _covered(conn, now, dc.c.check_id, dc.c.device_id, units.c.path)
        q = (select(dc.c.device_id, dc.c.check_id, covered.label("covered"))
             .select_from(dc.join(devices, devices.c.id == dc.c.device_id).join(units, units.c.id == devices.c.unit_id))
             .where(dc.c.device_id.in_(ids), dc.c.severity == "required", dc.c.status.in_(FAILING_STATUSES))
             .order_by(dc.c.check_id))
        for r in conn.execute(q):
            (excepted if r.covered else failing)[r.device_id].append(r.check_id)
    out = []
    for r in rows:
        v = r["agent_version"]
        out.append(DeviceRow(id=r["id"], hostname=r["hostname"], unit_id=r["unit_id"], unit_path=r["unit_path"],
                             platform=r["platform"], os=r["os"], agent_version=v,
                             agent_outdated=bool(newest and v and version_key(v) < version_key(newest)),
                             state=r["state"], last_seen=utc(r["generated_at"]), received_at=utc(r["received_at"]),
                             failing_checks=failing[r["id"]], excepted_checks=excepted[r["id"]]))
    return out


def _device_filters(ds: Any, *, state: str | None, check: str | None, os: str | None) -> list[Any]:
    """WHERE conditions of the devices list, on any relation with device_state_rows' columns."""
    if state and state not in STATES:
        raise Invalid("state", f"must be one of {', '.join(STATES)}")
    conds: list[Any] = []
    if state:
        conds.append(ds.c.state == state)
    if check:
        conds.append(exists(select(literal(1)).where(device_checks.c.device_id == ds.c.id,
                                                     device_checks.c.check_id == check,
                                                     device_checks.c.status.in_(FAILING_STATUSES))))
    if os:
        conds.append(or_(ds.c.platform == os, ds.c.os == os))
    return conds


def _subtree_states(conn: Connection, root: str, now: dt.datetime, default_max_age_hours: int) -> Table:
    """The device states of the subtree at ``root``, computed once into a table private to
    this connection: the drill-down asks several questions of them (roll-up, one page,
    total, stale, versions), and computing the state per question cost a pass each."""
    name = f"subtree_states_{uuid.uuid4().hex[:12]}"
    ds = device_state_rows(conn, Scope(unit_path=root), now, default_max_age_hours=default_max_age_hours)
    cols = [Column(c.name, c.type) for c in ds.selected_columns]
    tmp = Table(name, MetaData(), *cols, prefixes=["TEMPORARY"])
    tmp.create(conn)
    conn.execute(tmp.insert().from_select([c.name for c in cols], ds))
    return tmp


def _drop_temporary(conn: Connection, table: Table) -> None:
    try:
        conn.execute(text(f'DROP TABLE IF EXISTS "{table.name}"'))
    except Exception:  # noqa: BLE001 - a rolled-back transaction took it already
        pass


def _subtree_rollup(conn: Connection, tmp: Table, unit: dict[str, Any], default_max_age_hours: int,
                    user_scope: Scope) -> tuple[UnitSummary, list[UnitSummary]]:
    """The unit's and its children's counts from per-unit counts (SQL GROUP BY on the
    states computed once), summed over the few units of the subtree."""
    direct: dict[int, dict[str, int]] = {}
    for r in conn.execute(select(tmp.c.unit_id, tmp.c.state, func.count().label("n"))
                          .group_by(tmp.c.unit_id, tmp.c.state)):
        direct.setdefault(r.unit_id, {})[r.state] = int(r.n)
    ua = unit_max_age("detail_unit_age")
    subtree = conn.execute(select(units.c.id, units.c.path, units.c.name, units.c.parent_id, units.c.depth,
                                  ua.c.max_age_hours)
                           .join(ua, ua.c.unit_id == units.c.id)
                           .where(_in_subtree(units.c.path, unit["path"]))).mappings().all()
    paths = {u["id"]: u["path"] for u in subtree}

    def summarise(u: Any, parent_id: int | None) -> UnitSummary:
        prefix = u["path"] + "/"
        counts = {s: 0 for s in STATES}
        for uid, by_state in direct.items():
            p = paths.get(uid)
            if p is not None and (p == u["path"] or p.startswith(prefix)):
                for st, n in by_state.items():
                    counts[st] += n
        total = sum(counts.values())
        return UnitSummary(id=u["id"], path=u["path"], name=u["name"], parent_id=parent_id, depth=u["depth"],
                           counts=StateCounts(**counts), total=total, ready_pct=_pct(counts[READY], total),
                           max_report_age_hours=int(u["max_age_hours"] or default_max_age_hours))

    me = next(u for u in subtree if u["id"] == unit["id"])
    summary = summarise(me, unit["parent_id"] if user_scope.unit_path != unit["path"] else None)
    children = sorted((summarise(u, u["parent_id"]) for u in subtree if u["parent_id"] == unit["id"]),
                      key=lambda c: c.path.split("/"))
    return summary, children


def unit_detail(conn: Connection, scope: Scope, unit_id: int, now: dt.datetime, *, state: str | None = None,
                check: str | None = None, os: str | None = None, page: int = 1, per_page: int = 50,
                stale_limit: int = 10, failing_limit: int = 20, min_agent_version: str | None = None,
                default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> UnitDetail:
    """One unit: its roll-up, its children's, the checks failing most, the devices stale
    the longest, and one page of its devices (filtered by state, failing check, OS/platform)."""
    unit = visible_unit(conn, scope, unit_id)
    root = unit["path"]
    if state and state not in STATES:
        raise Invalid("state", f"must be one of {', '.join(STATES)}")
    page = max(1, int(page))
    per_page = max(1, min(int(per_page), MAX_PER_PAGE))
    # Scopes are subtrees, so a visible unit's whole subtree is visible: everything below
    # looks at that subtree only.
    tmp = _subtree_states(conn, root, now, default_max_age_hours)
    try:
        summary, children = _subtree_rollup(conn, tmp, unit, default_max_age_hours, scope)
        conds = _device_filters(tmp, state=state, check=check, os=os)
        total = conn.execute(select(func.count()).select_from(tmp).where(*conds)).scalar_one()
        order = case(*[(tmp.c.state == s, i) for s, i in _STATE_ORDER.items()], else_=9)
        rows = conn.execute(select(tmp).where(*conds).order_by(order, tmp.c.hostname, tmp.c.id)
                            .limit(per_page).offset((page - 1) * per_page)).mappings().all()
        versions = agent_versions(conn, Scope(unit_path=root), root, now, minimum=min_agent_version, states=tmp)
        stale_rows = conn.execute(select(tmp.c.id, tmp.c.hostname, tmp.c.unit_path, tmp.c.generated_at,
                                         tmp.c.received_at)
                                  .where(tmp.c.state == STALE)
                                  .order_by(tmp.c.generated_at, tmp.c.id).limit(stale_limit)).all()
        failing = _failing_checks(conn, Scope(unit_path=root), now, root, failing_limit, states=tmp)
        children_outdated = {c.id: 0 for c in children}
        if versions.newest:
            newest = version_key(versions.newest)
            for r in conn.execute(select(tmp.c.unit_path, tmp.c.agent_version, func.count().label("n"))
                                  .group_by(tmp.c.unit_path, tmp.c.agent_version)):
                if r.agent_version and version_key(r.agent_version) < newest:
                    for c in children:
                        if r.unit_path == c.path or r.unit_path.startswith(c.path + "/"):
                            children_outdated[c.id] += int(r.n)
    finally:
        _drop_temporary(conn, tmp)
    return UnitDetail(
        summary=summary, children=children, failing_checks=failing,
        stale_longest=[StaleDevice(r.id, r.hostname, r.unit_path, utc(r.generated_at), utc(r.received_at))
                       for r in stale_rows],
        devices=DevicePage(items=_device_rows(conn, now, rows, versions.newest), total=int(total), page=page,
                           per_page=per_page),
        agent_versions=versions, children_outdated_agents=children_outdated)


# ------------------------------------------------------------------ devices


@dataclass(frozen=True)
class ExceptionInfo:
    id: int
    check_id: str
    device_id: str | None
    device_hostname: str | None
    unit_id: int | None  # None also when the unit lies above the user's scope (inherited)
    unit_path: str | None
    inherited: bool  # a unit exception granted above the user's scope
    justification: str
    granted_by: str | None
    granted_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    revoked_by: str | None
    revoke_reason: str | None
    status: str  # active | expired | revoked | pending


@dataclass(frozen=True)
class CheckResult:
    check_id: str
    kind: str | None
    severity: str
    status: str
    messages: list[Any]
    evidence: Any
    excepted_by: int | None  # id of the active exception covering this failing required check


@dataclass(frozen=True)
class TimelineEntry:
    report_id: str
    sequence: int
    generated_at: dt.datetime
    received_at: dt.datetime
    verdict: str
    policy_id: str
    policy_version: str


@dataclass(frozen=True)
class Timeline:
    items: list[TimelineEntry]
    total: int
    page: int
    per_page: int


@dataclass(frozen=True)
class DeviceDetail:
    device: DeviceRow
    serial: str | None
    enrolled_at: dt.datetime
    keyid: str
    last_sequence: int
    policy: dict[str, Any] | None  # {id, version, sha256} of the latest report
    facts: dict[str, Any] | None
    results: list[CheckResult]
    exceptions: list[ExceptionInfo]  # active ones that apply to this device
    timeline: Timeline


def device_detail(conn: Connection, scope: Scope, device_id: str, now: dt.datetime, *, page: int = 1,
                  per_page: int = 50, min_agent_version: str | None = None,
                  default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> DeviceDetail:
    """A device's state, its latest facts and results (decoded from the stored envelope of
    its latest report), the exceptions that apply, and its report timeline (newest first)."""
    dev = visible_device(conn, scope, device_id)
    ds = device_state_rows(conn, scope, now, default_max_age_hours=default_max_age_hours).subquery("ds")
    row = conn.execute(select(ds).where(ds.c.id == dev["id"])).mappings().one()
    versions_newest = agent_versions(conn, Scope(dev["unit_path"]), dev["unit_path"], now,
                                     minimum=min_agent_version).newest
    drow = _device_rows(conn, now, [row], versions_newest)[0]
    st = conn.execute(select(device_state).where(device_state.c.device_id == dev["id"])).mappings().first()
    applying = list_exceptions(conn, scope, now, device_id=dev["id"])
    by_check = {e.check_id: e.id for e in applying if e.status == "active"}
    facts = policy = None
    results: list[CheckResult] = []
    if st is not None and st["last_report_id"]:
        env = conn.execute(select(reports.c.envelope).where(reports.c.report_id == st["last_report_id"])).scalar()
        if env is not None:
            pred = wire.decode_envelope(wire.parse_envelope(env)).statement["predicate"]
            facts, policy = pred.get("facts"), pred.get("policy")
            for r in pred.get("results") or []:
                sev = r.get("severity") if r.get("severity") in ("required", "recommended") else "required"
                failing_req = sev == "required" and r.get("status") in FAILING_STATUSES
                results.append(CheckResult(check_id=r.get("check_id"), kind=r.get("kind"), severity=sev,
                                           status=r.get("status"), messages=list(r.get("messages") or []),
                                           evidence=r.get("evidence"),
                                           excepted_by=by_check.get(r.get("check_id")) if failing_req else None))
    return DeviceDetail(device=drow, serial=dev["serial"], enrolled_at=utc(dev["enrolled_at"]),
                        keyid=dev["current_keyid"], last_sequence=int(st["last_sequence"]) if st else 0,
                        policy=policy, facts=facts, results=results, exceptions=applying,
                        timeline=device_timeline(conn, scope, dev["id"], page=page, per_page=per_page))


def device_timeline(conn: Connection, scope: Scope, device_id: str, *, page: int = 1,
                    per_page: int = 50) -> Timeline:
    dev = visible_device(conn, scope, device_id)
    page = max(1, int(page))
    per_page = max(1, min(int(per_page), MAX_PER_PAGE))
    total = conn.execute(select(func.count()).select_from(reports)
                         .where(reports.c.device_id == dev["id"])).scalar_one()
    rows = conn.execute(select(reports.c.report_id, reports.c.sequence, reports.c.generated_at,
                               reports.c.received_at, reports.c.verdict, reports.c.policy_id,
                               reports.c.policy_version)
                        .where(reports.c.device_id == dev["id"]).order_by(reports.c.sequence.desc())
                        .limit(per_page).offset((page - 1) * per_page)).all()
    return Timeline(items=[TimelineEntry(r.report_id, int(r.sequence), utc(r.generated_at), utc(r.received_at),
                                         r.verdict, r.policy_id, r.policy_version) for r in rows],
                    total=int(total), page=page, per_page=per_page)


@dataclass(frozen=True)
class SignedReport:
    report_id: str
    device_id: str
    envelope: str  # verbatim, as received
    keyid: str
    public_key_pem: str | None  # the key that signed it (from device_keys)


def report_envelope(conn: Connection, scope: Scope, report_id: str) -> SignedReport:
    """The stored envelope of one report, verbatim, and the public key that signed it."""
    row = conn.execute(select(reports.c.report_id, reports.c.device_id, reports.c.envelope, reports.c.keyid)
                       .where(reports.c.report_id == str(report_id)[:36])).first()
    if row is None:
        raise NotFound("report", report_id)
    try:
        visible_device(conn, scope, row.device_id)
    except NotFound:
        raise NotFound("report", report_id) from None
    pem = conn.execute(select(device_keys.c.public_key_pem).where(device_keys.c.device_id == row.device_id,
                                                                  device_keys.c.keyid == row.keyid)).scalar()
    return SignedReport(row.report_id, row.device_id, row.envelope, row.keyid, pem)


def device_public_key(conn: Connection, scope: Scope, device_id: str) -> tuple[str, str]:
    """(keyid, SubjectPublicKeyInfo PEM) of the device's current key."""
    dev = visible_device(conn, scope, device_id)
    pem = conn.execute(select(device_keys.c.public_key_pem).where(device_keys.c.device_id == dev["id"],
                                                                  device_keys.c.keyid == dev["current_keyid"])).scalar()
    if pem is None:
        pem = wire.public_key_pem(wire.public_key_from_raw(bytes(dev["public_key"])))
    return dev["current_keyid"], pem


# ------------------------------------------------------------------ trend


@dataclass(frozen=True)
class TrendPoint:
    day: dt.date
    ready_pct: float | None
    ready: int
    devices: int


def trend(conn: Connection, scope: Scope, unit_id: int, now: dt.datetime, days: int = 90) -> list[TrendPoint]:
    """Readiness % per UTC day over the last ``days`` days (oldest first), for the unit's
    subtree — see the module docstring for the rule."""
    unit = visible_unit(conn, scope, unit_id)
    root = unit["path"]
    days = max(1, min(int(days), 366))
    today = utc(now).date()  # type: ignore[union-attr]
    first = today - dt.timedelta(days=days - 1)
    in_root = and_(devices.c.revoked_at.is_(None), _in_subtree(units.c.path, root))
    # Denominator: devices enrolled by each day's end (enrolments per day, cumulated over days).
    enrol_day = cast(devices.c.enrolled_at, Date) if _dialect(conn) == "postgresql" else func.date(devices.c.enrolled_at)
    before = conn.execute(select(func.count()).select_from(devices.join(units, units.c.id == devices.c.unit_id))
                          .where(in_root, devices.c.enrolled_at < _ts(dt.datetime.combine(first, dt.time(),
                                                                                          dt.timezone.utc)))).scalar_one()
    per_day = {(_as_date(r.d)): int(r.n) for r in conn.execute(
        select(enrol_day.label("d"), func.count().label("n"))
        .select_from(devices.join(units, units.c.id == devices.c.unit_id))
        .where(in_root, devices.c.enrolled_at >= _ts(dt.datetime.combine(first, dt.time(), dt.timezone.utc)))
        .group_by(enrol_day))}
    # Numerator: device-days that were ready (strictly, or with every failing required check excepted).
    dd = device_days
    e = exceptions.alias("te")
    eu = units.alias("teu")
    cutoff = case((dd.c.day == bindparam("today", today, type_=Date), _ts(now)), else_=_day_end(conn, dd.c.day))
    covered_n = (select(func.count(func.distinct(e.c.check_id)))
                 .select_from(e.outerjoin(eu, eu.c.id == e.c.unit_id))
                 .where(_contains_item(conn, dd.c.failing_required, e.c.check_id),
                        e.c.granted_at <= cutoff, e.c.expires_at > cutoff,
                        or_(e.c.revoked_at.is_(None), e.c.revoked_at > cutoff),
                        or_(e.c.device_id == dd.c.device_id,
                            and_(e.c.unit_id.is_not(None), _ancestor_or_self(eu.c.path, units.c.path))))
                 .correlate_except(e, eu).scalar_subquery())
    n_failing = func.length(dd.c.failing_required) - func.length(func.replace(dd.c.failing_required, ",", "")) + 1
    # The per-row count of covering exceptions is only worth running for devices that had
    # any exception in the period: found once per device (hashed IN), not per device-day.
    period_start = _ts(dt.datetime.combine(first, dt.time(), dt.timezone.utc))
    pe, peu = exceptions.alias("pe"), units.alias("peu")
    period_ex = (select(pe.c.device_id, peu.c.path.label("unit_path"))
                 .select_from(pe.outerjoin(peu, peu.c.id == pe.c.unit_id))
                 .where(pe.c.granted_at <= _ts(now), pe.c.expires_at > period_start,
                        or_(pe.c.revoked_at.is_(None), pe.c.revoked_at > period_start))
                 .cte("trend_exceptions").prefix_with("MATERIALIZED", dialect="postgresql"))
    xu = units.alias("xu")
    excepted_device_ids = select(period_ex.c.device_id).where(period_ex.c.device_id.is_not(None))
    excepted_unit_ids = (select(xu.c.id).select_from(period_ex.join(xu, _ancestor_or_self(period_ex.c.unit_path,
                                                                                           xu.c.path)))
                         .where(period_ex.c.unit_path.is_not(None)))
    may_be_excepted = or_(dd.c.device_id.in_(excepted_device_ids), dd.c.unit_id.in_(excepted_unit_ids))
    ready = or_(dd.c.ready_strict == True, dd.c.failing_required == "",  # noqa: E712
                and_(may_be_excepted, covered_n >= n_failing))
    # Day rows carry their device's unit: no join of every day row to devices. The subtree's
    # unit ids are passed as a list, so the planner sees how few rows they select (the
    # (unit_id, day) index) — a path-prefix condition it cannot estimate.
    subtree_ids = list(conn.execute(select(units.c.id).where(_in_subtree(units.c.path, root),
                                                             scope.clause(units.c.path))).scalars())
    revoked = select(devices.c.id).where(devices.c.revoked_at.is_not(None))
    q = (select(dd.c.day, func.count().label("n"))
         .select_from(dd.join(units, units.c.id == dd.c.unit_id))
         .where(dd.c.unit_id.in_(subtree_ids), dd.c.day >= first, dd.c.day <= today,
                dd.c.device_id.not_in(revoked), ready)
         .group_by(dd.c.day))
    ready_by_day = {_as_date(r.day): int(r.n) for r in conn.execute(q)}
    out = []
    total = int(before)
    for i in range(days):
        d = first + dt.timedelta(days=i)
        total += per_day.get(d, 0)
        r = ready_by_day.get(d, 0)
        out.append(TrendPoint(day=d, ready_pct=_pct(r, total), ready=r, devices=total))
    return out


def _as_date(v: Any) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    return dt.date.fromisoformat(str(v)[:10])


# ------------------------------------------------------------------ CSV export

CSV_COLUMNS = ("device_id", "hostname", "unit", "state", "last_seen", "received_at", "failing_checks",
               "excepted_checks", "platform", "os", "agent_version", "agent_outdated")


def csv_cell(value: Any) -> str:
    """One CSV cell; text a spreadsheet would run as a formula (= + - @, tab, CR) gets a
    leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    text = str(value)
    if text and text[0] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def export_rows(conn: Connection, scope: Scope, unit_id: int, now: dt.datetime, *,
                min_agent_version: str | None = None, batch: int = 500,
                default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> Iterator[list[str]]:
    """Header, then one row per active device in the unit's subtree (keyset-paginated in
    batches, so memory stays flat for any fleet)."""
    unit = visible_unit(conn, scope, unit_id)
    root = unit["path"]
    newest = agent_versions(conn, scope, root, now, minimum=min_agent_version).newest
    yield list(CSV_COLUMNS)
    ds = device_state_rows(conn, scope, now, default_max_age_hours=default_max_age_hours).subquery("ds")
    last = ""
    while True:
        rows = conn.execute(select(ds).where(_in_subtree(ds.c.unit_path, root), ds.c.id > last)
                            .order_by(ds.c.id).limit(batch)).mappings().all()
        if not rows:
            return
        for d in _device_rows(conn, now, rows, newest):
            yield [csv_cell(v) for v in (d.id, d.hostname, d.unit_path, d.state, d.last_seen, d.received_at,
                                         ";".join(d.failing_checks), ";".join(d.excepted_checks), d.platform,
                                         d.os, d.agent_version, d.agent_outdated)]
        last = rows[-1]["id"]


def export_csv(conn: Connection, scope: Scope, unit_id: int, now: dt.datetime, **kwargs: Any) -> Iterator[str]:
    """The export as CSV text chunks (one line each, RFC 4180 quoting, CRLF)."""
    for row in export_rows(conn, scope, unit_id, now, **kwargs):
        buf = io.StringIO()
        csv.writer(buf).writerow(row)
        yield buf.getvalue()


# ------------------------------------------------------------------ exceptions


def _audit(conn: Connection, user_id: int | None, action: str, object_type: str, object_id: Any,
           detail: dict[str, Any], now: dt.datetime) -> None:
    conn.execute(insert(audit_log).values(at=utc(now), user_id=user_id, action=action, object_type=object_type,
                                          object_id=None if object_id is None else str(object_id),
                                          detail=json.dumps(detail, ensure_ascii=False, default=str)))


def _exception_status(row: Any, now: dt.datetime) -> str:
    if row["revoked_at"] is not None:
        return "revoked"
    if utc(row["expires_at"]) <= now:  # type: ignore[operator]
        return "expired"
    if utc(row["granted_at"]) > now:  # type: ignore[operator]
        return "pending"
    return "active"


def grant_exception(conn: Connection, user: "User", *, check_id: str, device_id: str | None = None,
                    unit_id: int | None = None, expires_at: dt.datetime, justification: str,
                    now: dt.datetime) -> ExceptionInfo:
    """A security officer excepts one check on a device or on a unit's whole subtree, until
    ``expires_at`` (at most 180 days ahead), with a justification; written to the audit log
    in the caller's transaction."""
    if user.role != "security_officer":
        raise Forbidden("only a security officer may grant exceptions")
    scope = Scope.for_user(user)
    check_id = (check_id or "").strip()
    if not _CHECK_ID.match(check_id):
        raise Invalid("check_id", "a check id (letters, digits, . _ : -), at most 200 characters")
    if (device_id is None) == (unit_id is None):
        raise Invalid("target", "give exactly one of device_id and unit_id")
    justification = (justification or "").strip()
    if len(justification) < 10:
        raise Invalid("justification", "say why (at least 10 characters)")
    if len(justification) > 4000:
        raise Invalid("justification", "at most 4000 characters")
    if expires_at.tzinfo is None:
        raise Invalid("expires_at", "must carry a time zone")
    now = utc(now)  # type: ignore[assignment]
    expires_at = utc(expires_at)  # type: ignore[assignment]
    if expires_at <= now:
        raise Invalid("expires_at", "must be in the future")
    if expires_at > now + dt.timedelta(days=MAX_EXCEPTION_DAYS):
        raise Invalid("expires_at", f"at most {MAX_EXCEPTION_DAYS} days ahead")
    if device_id is not None:
        target = visible_device(conn, scope, device_id)
        device_id, target_desc = target["id"], {"device_id": target["id"], "hostname": target["hostname"]}
    else:
        target = visible_unit(conn, scope, int(unit_id))  # type: ignore[arg-type]
        unit_id, target_desc = target["id"], {"unit_id": target["id"], "unit": target["path"]}
    new_id = conn.execute(insert(exceptions).values(
        check_id=check_id, device_id=device_id, unit_id=unit_id, justification=justification, granted_by=user.id,
        granted_at=now, expires_at=expires_at).returning(exceptions.c.id)).scalar_one()
    _audit(conn, user.id, "exception.grant", "exception", new_id,
           {"check_id": check_id, **target_desc, "expires_at": expires_at.isoformat(),
            "justification": justification}, now)
    return get_exception(conn, scope, new_id, now)


def revoke_exception(conn: Connection, user: "User", exception_id: int, reason: str,
                     now: dt.datetime) -> ExceptionInfo:
    if user.role != "security_officer":
        raise Forbidden("only a security officer may revoke exceptions")
    scope = Scope.for_user(user)
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("reason", "say why the exception is revoked")
    if len(reason) > 4000:
        raise Invalid("reason", "at most 4000 characters")
    current = get_exception(conn, scope, exception_id, now)
    if current.inherited:  # granted above this officer's subtree: not theirs to revoke
        raise NotFound("exception", exception_id)
    res = conn.execute(update(exceptions).where(exceptions.c.id == exception_id, exceptions.c.revoked_at.is_(None))
                       .values(revoked_at=utc(now), revoked_by=user.id, revoke_reason=reason))
    if res.rowcount != 1:
        raise ApiError(409, "already_revoked", f"exception {exception_id}: already revoked")
    _audit(conn, user.id, "exception.revoke", "exception", exception_id,
           {"check_id": current.check_id, "device_id": current.device_id, "unit_id": current.unit_id,
            "reason": reason}, now)
    return get_exception(conn, scope, exception_id, now)


def _exceptions_query(scope: Scope) -> Any:
    eu = units.alias("eu")
    du = units.alias("du")
    g = users.alias("g")
    r = users.alias("r")
    return (select(exceptions, devices.c.hostname.label("device_hostname"), eu.c.path.label("unit_path"),
                   du.c.path.label("device_unit_path"), g.c.username.label("granted_by_name"),
                   r.c.username.label("revoked_by_name"))
            .select_from(exceptions.outerjoin(eu, eu.c.id == exceptions.c.unit_id)
                         .outerjoin(devices, devices.c.id == exceptions.c.device_id)
                         .outerjoin(du, du.c.id == devices.c.unit_id)
                         .outerjoin(g, g.c.id == exceptions.c.granted_by)
                         .outerjoin(r, r.c.id == exceptions.c.revoked_by))), eu, du


def _info(row: Any, scope: Scope, now: dt.datetime) -> ExceptionInfo:
    inherited = row["unit_id"] is not None and not scope.contains(row["unit_path"])
    return ExceptionInfo(
        id=row["id"], check_id=row["check_id"], device_id=row["device_id"], device_hostname=row["device_hostname"],
        unit_id=None if inherited else row["unit_id"], unit_path=None if inherited else row["unit_path"],
        inherited=inherited, justification=row["justification"], granted_by=row["granted_by_name"],
        granted_at=utc(row["granted_at"]), expires_at=utc(row["expires_at"]), revoked_at=utc(row["revoked_at"]),
        revoked_by=row["revoked_by_name"], revoke_reason=row["revoke_reason"], status=_exception_status(row, now))


def _visible_exception_clause(scope: Scope, eu: Any, du: Any) -> Any:
    """Exceptions on a device in scope, on a unit in scope, or on an ancestor of the scope
    root (they change verdicts inside it; shown as 'inherited', without the unit's name)."""
    if scope.unit_path is None:
        return literal(True) == literal(True)
    root = scope.unit_path
    parts = root.split("/")
    ancestors = ["/".join(parts[:i]) for i in range(1, len(parts))]
    return or_(and_(exceptions.c.device_id.is_not(None), devices.c.revoked_at.is_(None), scope.clause(du.c.path)),
               and_(exceptions.c.unit_id.is_not(None), or_(scope.clause(eu.c.path), eu.c.path.in_(ancestors))))


def get_exception(conn: Connection, scope: Scope, exception_id: int, now: dt.datetime) -> ExceptionInfo:
    q, eu, du = _exceptions_query(scope)
    row = conn.execute(q.where(exceptions.c.id == exception_id, _visible_exception_clause(scope, eu, du))
                       ).mappings().first()
    if row is None:
        raise NotFound("exception", exception_id)
    return _info(row, scope, now)


def list_exceptions(conn: Connection, scope: Scope, now: dt.datetime, *, include_expired: bool = False,
                    device_id: str | None = None, unit_id: int | None = None) -> list[ExceptionInfo]:
    """Exceptions visible in scope, newest first. ``device_id``: those that apply to that
    device (its own and its units'); ``unit_id``: those on that unit's subtree or above it.
    Without ``include_expired``: only active (and future) ones."""
    q, eu, du = _exceptions_query(scope)
    q = q.where(_visible_exception_clause(scope, eu, du))
    if not include_expired:
        q = q.where(exceptions.c.revoked_at.is_(None), exceptions.c.expires_at > _ts(now))
    if device_id is not None:
        dev = visible_device(conn, scope, device_id)
        q = q.where(or_(exceptions.c.device_id == dev["id"],
                        and_(exceptions.c.unit_id.is_not(None), _ancestor_or_self(eu.c.path, literal(dev["unit_path"])))))
    if unit_id is not None:
        u = visible_unit(conn, scope, unit_id)
        q = q.where(or_(_in_subtree(du.c.path, u["path"]), _in_subtree(eu.c.path, u["path"]),
                        and_(exceptions.c.unit_id.is_not(None), _ancestor_or_self(eu.c.path, literal(u["path"])))))
    rows = conn.execute(q.order_by(exceptions.c.granted_at.desc(), exceptions.c.id.desc())).mappings().all()
    return [_info(r, scope, now) for r in rows]


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: dt.datetime
    user: str | None
    action: str
    object_type: str
    object_id: str | None
    detail: dict[str, Any] | None


def audit_entries(conn: Connection, *, object_type: str | None = None, object_id: Any = None,
                  limit: int = 200) -> list[AuditEntry]:
    q = (select(audit_log, users.c.username).outerjoin(users, users.c.id == audit_log.c.user_id)
         .order_by(audit_log.c.id.desc()).limit(limit))
    if object_type:
        q = q.where(audit_log.c.object_type == object_type)
    if object_id is not None:
        q = q.where(audit_log.c.object_id == str(object_id))
    return [AuditEntry(r["id"], utc(r["at"]), r["username"], r["action"], r["object_type"], r["object_id"],
                       json.loads(r["detail"]) if r["detail"] else None) for r in conn.execute(q).mappings()]
