"""Readiness summaries, computed in SQL from the latest-state rows (``device_state``,
``device_checks``, ``device_days``), on SQLite and PostgreSQL alike.

Every function takes a SQLAlchemy Connection, a :class:`Scope` (the unit subtree the
user may see; ``Scope()`` = all units) and ``now`` (so tests fix time). Nothing loops
over devices in Python beyond the page being shown; loops over units (a few hundred)
and days (90) are fine.

The state of a device — one definition, :func:`device_states`, reused by every query:

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

Where the work goes (100,000 devices, bench/bench_dashboard.py): the state is computed
from device_state alone (it carries the device's unit and its failing required checks);
the few active exceptions are gathered once per request (:class:`Cover`); a closed day
of the trend is counted once per unit and kept in ``unit_day_ready`` until something
that can change it bumps the unit's ``history_version``.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from sqlalchemy import (Date, DateTime, String, Interval, and_, bindparam, case, cast,
                        exists, func, insert, literal, or_, select, update)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ColumnElement, Select

from auditagent import report as wire
from server.db import (unit_day_ready, as_date, audit_log, device_checks, device_days, device_keys, device_state, devices, exceptions, reports,
                       record_audit, units, users, utc)
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


def unit_max_age(name: str = "unit_age", *, now: dt.datetime | None = None, conn: Connection | None = None,
                 default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> Any:
    """CTE (unit_id, path, max_age_hours-or-NULL[, cutoff]): each unit's own or nearest
    ancestor's max report age; with ``now``, also the time before which its devices'
    latest report is stale — computed once per unit, not once per device."""
    u = units.alias("mu")
    a = units.alias("ma")
    hours = (select(a.c.max_report_age_hours)
             .where(a.c.max_report_age_hours.is_not(None), _ancestor_or_self(a.c.path, u.c.path))
             .order_by(a.c.depth.desc()).limit(1).scalar_subquery())
    # Materialised: 1 row per unit, computed once, not once per device joined to it.
    ages = (select(u.c.id.label("unit_id"), u.c.path.label("path"), hours.label("max_age_hours"))
            .cte(name if now is None else name + "_hours").prefix_with("MATERIALIZED", dialect="postgresql"))
    if now is None:
        return ages
    assert conn is not None
    return (select(ages, _minus_hours(conn, now, func.coalesce(ages.c.max_age_hours, default_max_age_hours))
                   .label("cutoff"))
            .cte(name).prefix_with("MATERIALIZED", dialect="postgresql"))


def _exception_active(now: dt.datetime, e: Any = exceptions) -> ColumnElement[bool]:
    return and_(e.c.revoked_at.is_(None), e.c.expires_at > _ts(now), e.c.granted_at <= _ts(now))


def _covered(conn: Connection, now: dt.datetime, check_col: Any, device_col: Any, unit_path_col: Any) -> Any:
    """SQL EXISTS: an active exception covers ``check_col`` on this device (device-level, or
    on its unit or any ancestor unit). Correlated: for a page of rows, not for a fleet."""
    e = exceptions.alias("ex")
    eu = units.alias("exu")
    return (exists(select(literal(1)).select_from(e.outerjoin(eu, eu.c.id == e.c.unit_id))
                   .where(e.c.check_id == check_col, _exception_active(now, e),
                          or_(e.c.device_id == device_col,
                              and_(e.c.unit_id.is_not(None), _ancestor_or_self(eu.c.path, unit_path_col))))
                   .correlate_except(e, eu)))


@dataclass(frozen=True)
class Cover:
    """What the active exceptions cover, gathered once per request (there are few): the
    checks excepted unit-wide per unit (an exception on a unit covers its whole subtree)
    and per device. Handed to SQL as short literal lists — bounded by the number of
    exceptions, not of devices — so the planner sees exactly how little they select."""

    unit_checks: frozenset[tuple[str, int]] = frozenset()  # (check_id, unit id)
    device_checks: frozenset[tuple[str, str]] = frozenset()  # (check_id, device id)
    ready_pairs: frozenset[tuple[int, str]] = frozenset()  # (unit id, failing_required) covered unit-wide
    named_devices: frozenset[str] = frozenset()  # devices with a device exception …
    ready_devices: frozenset[str] = frozenset()  # … and those of them whose failing checks are all covered

    # Pairs are matched as one text key ("check unit", "check device"): check ids hold no
    # space, and a list of plain values is looked up from a hash, where a list of row
    # values would be compared one by one.

    def covers_check(self, check_col: Any, device_col: Any, unit_id_col: Any) -> ColumnElement[bool]:
        """SQL: an active exception covers this check on this device."""
        return or_(_key(check_col, unit_id_col).in_(sorted(f"{c} {u}" for c, u in self.unit_checks)),
                   _key(check_col, device_col).in_(sorted(f"{c} {d}" for c, d in self.device_checks)))

    def covers_all(self, s: Any) -> ColumnElement[bool]:
        """SQL on a device_state relation ``s``: every failing required check is covered."""
        by_unit = and_(_key(s.c.failing_required, s.c.unit_id).in_(sorted(f"{f} {u}" for u, f in self.ready_pairs)),
                       s.c.device_id.not_in(sorted(self.named_devices)))
        return or_(by_unit, s.c.device_id.in_(sorted(self.ready_devices)))


def _key(text_col: Any, other_col: Any) -> Any:
    return text_col + literal(" ") + cast(other_col, String)


def exception_cover(conn: Connection, now: dt.datetime, unit_ids: Sequence[int] | None = None) -> Cover:
    """The :class:`Cover` of the exceptions active at ``now`` (for devices of ``unit_ids``)."""
    e, eu = exceptions.alias("aex"), units.alias("aexu")
    active = conn.execute(select(e.c.check_id, e.c.device_id, eu.c.path)
                          .select_from(e.outerjoin(eu, eu.c.id == e.c.unit_id))
                          .where(_exception_active(now, e))).all()
    if not active:
        return Cover()
    by_unit_path: dict[str, set[str]] = {}
    by_device: dict[str, set[str]] = {}
    for check_id, device_id, path in active:
        if device_id is not None:
            by_device.setdefault(device_id, set()).add(check_id)
        elif path is not None:
            by_unit_path.setdefault(path, set()).add(check_id)
    unit_cov: dict[int, set[str]] = {}
    if by_unit_path:
        for uid, path in conn.execute(select(units.c.id, units.c.path)):
            for p, checks in by_unit_path.items():
                if path == p or path.startswith(p + "/"):
                    unit_cov.setdefault(uid, set()).update(checks)
    wanted = set(unit_cov) if unit_ids is None else set(unit_cov) & set(unit_ids)
    s = device_state
    ready_pairs = set()
    if wanted:
        for uid, failing in conn.execute(select(s.c.unit_id, s.c.failing_required).distinct()
                                         .where(s.c.unit_id.in_(sorted(wanted)), s.c.failing_required != "")):
            if set(failing.split(",")) <= unit_cov[uid]:
                ready_pairs.add((uid, failing))
    # Device exceptions: only those on devices of ``unit_ids`` matter to this request; of
    # them, those in a unit with covered pairs must be kept out of the unit-wide test.
    dev_unit: dict[str, int] = {}
    ready_devices = set()
    if by_device:
        q = select(s.c.device_id, s.c.unit_id, s.c.failing_required).where(s.c.device_id.in_(sorted(by_device)))
        if unit_ids is not None:
            q = q.where(s.c.unit_id.in_(unit_ids))
        for dev, uid, failing in conn.execute(q):
            dev_unit[dev] = uid
            if failing and set(failing.split(",")) <= unit_cov.get(uid, set()) | by_device[dev]:
                ready_devices.add(dev)
    pair_units = {u for u, _f in ready_pairs}
    return Cover(unit_checks=frozenset((c, u) for u, cs in unit_cov.items() for c in cs
                                       if unit_ids is None or u in wanted),
                 device_checks=frozenset((c, d) for d, cs in by_device.items() for c in cs if d in dev_unit),
                 ready_pairs=frozenset(ready_pairs),
                 named_devices=frozenset(d for d, u in dev_unit.items() if u in pair_units),
                 ready_devices=frozenset(ready_devices))


def _not_revoked(device_col: Any) -> Any:
    """SQL: the device is not revoked (an anti-join on the few revoked ones, partial index)."""
    return ~exists(select(literal(1)).where(devices.c.id == device_col, devices.c.revoked_at.is_not(None)))


def _is_stale(s: Any, cut: Any) -> ColumnElement[bool]:
    """SQL: the device (a device_state relation ``s``) reported, but last before its unit's cutoff."""
    return and_(s.c.last_report_id.is_not(None), s.c.generated_at < cut.c.cutoff)


def device_states(conn: Connection, now: dt.datetime, unit_ids: Sequence[int] | None = None, *,
                  cover: Cover | None = None,
                  default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> Select:
    """SELECT of every active device (of ``unit_ids``; None: all) with its state, from
    device_state alone: columns id, unit_id, unit_path, agent_version, generated_at,
    received_at, last_report_id, state. Use it as a subquery."""
    s = device_state
    cut = unit_max_age("unit_cutoff", now=now, conn=conn, default_max_age_hours=default_max_age_hours)
    if cover is None:
        cover = exception_cover(conn, now, unit_ids)
    state = case(
        (s.c.last_report_id.is_(None), NEVER_REPORTED),
        (_is_stale(s, cut), STALE),
        (s.c.failing_required == "", READY),
        (cover.covers_all(s), READY),
        else_=NOT_READY)
    q = (select(s.c.device_id.label("id"), s.c.unit_id, cut.c.path.label("unit_path"), s.c.agent_version,
                s.c.generated_at, s.c.received_at, s.c.last_report_id, state.label("state"))
         .select_from(s.join(cut, cut.c.unit_id == s.c.unit_id))
         .where(_not_revoked(s.c.device_id)))
    if unit_ids is not None:
        q = q.where(s.c.unit_id.in_(unit_ids))
    return q


def device_state_rows(conn: Connection, scope: Scope, now: dt.datetime, *, unit_ids: Sequence[int] | None = None,
                      cover: Cover | None = None,
                      default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> Select:
    """:func:`device_states` of the devices in scope (or of ``unit_ids``) with what a list
    of devices shows: adds hostname, platform, os, enrolled_at."""
    if unit_ids is None:
        unit_ids = scope_unit_ids(conn, scope)
    st = device_states(conn, now, unit_ids, cover=cover, default_max_age_hours=default_max_age_hours).subquery("st")
    return (select(st.c.id, st.c.unit_id, st.c.unit_path, devices.c.hostname, devices.c.platform, devices.c.os,
                   st.c.agent_version, devices.c.enrolled_at, st.c.generated_at, st.c.received_at,
                   st.c.last_report_id, st.c.state)
            .select_from(st.join(devices, devices.c.id == st.c.id)))


def stale_longest(conn: Connection, now: dt.datetime, unit_ids: Sequence[int] | None, limit: int, *,
                  default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> list["StaleDevice"]:
    """The devices (of ``unit_ids``) whose latest report is oldest among the stale ones.
    Staleness needs no exception: read straight off the generated_at index."""
    s = device_state
    cut = unit_max_age("stale_cutoff", now=now, conn=conn, default_max_age_hours=default_max_age_hours)
    q = (select(s.c.device_id, devices.c.hostname, cut.c.path, s.c.generated_at, s.c.received_at)
         .select_from(s.join(cut, cut.c.unit_id == s.c.unit_id).join(devices, devices.c.id == s.c.device_id))
         .where(_is_stale(s, cut), devices.c.revoked_at.is_(None))
         .order_by(s.c.generated_at, s.c.device_id).limit(limit))
    if unit_ids is not None:
        q = q.where(s.c.unit_id.in_(unit_ids))
    return [StaleDevice(r.device_id, r.hostname, r.path, utc(r.generated_at), utc(r.received_at))
            for r in conn.execute(q)]


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


def scope_units(conn: Connection, scope: Scope, root: str | None = None) -> list[dict[str, Any]]:
    """The units in scope (and in the subtree at ``root``), with their effective max
    report age (NULL: the default): a few hundred rows, parents before children."""
    ua = unit_max_age("scope_unit_age")
    q = (select(units.c.id, units.c.path, units.c.name, units.c.parent_id, units.c.depth, ua.c.max_age_hours)
         .join(ua, ua.c.unit_id == units.c.id).where(scope.clause(units.c.path)))
    if root is not None:
        q = q.where(_in_subtree(units.c.path, root))
    rows = [dict(r) for r in conn.execute(q).mappings()]
    rows.sort(key=lambda u: u["path"].split("/"))
    return rows


def scope_unit_ids(conn: Connection, scope: Scope, root: str | None = None) -> list[int] | None:
    """Ids of the units in scope (and under ``root``); None when that is every unit. Passed
    to queries as a list, so the planner sees how few rows a subtree selects."""
    if scope.unit_path is None and root is None:
        return None
    q = select(units.c.id).where(scope.clause(units.c.path))
    if root is not None:
        q = q.where(_in_subtree(units.c.path, root))
    return list(conn.execute(q).scalars())


@dataclass(frozen=True)
class _Counted:
    """Devices per (unit, state, agent version) — one pass over the device states, from
    which roll-ups, version distributions and outdated counts are all summed in Python."""
    rows: list[tuple[int, str, str | None, int]]

    def rollup(self, unit_list: list[dict[str, Any]]) -> dict[int, dict[str, int]]:
        """Per unit: its own devices and all below it, by state."""
        parent = {u["id"]: u["parent_id"] for u in unit_list}
        out: dict[int, dict[str, int]] = {u["id"]: {s: 0 for s in STATES} for u in unit_list}
        for unit_id, state, _v, n in self.rows:
            uid: int | None = unit_id
            while uid is not None and uid in out:
                out[uid][state] += n
                uid = parent.get(uid)
        return out

    def versions(self, unit_ids: set[int] | None = None) -> dict[str | None, int]:
        dist: dict[str | None, int] = {}
        for unit_id, _s, v, n in self.rows:
            if unit_ids is None or unit_id in unit_ids:
                dist[v] = dist.get(v, 0) + n
        return dist


def _count_states(conn: Connection, now: dt.datetime, unit_ids: Sequence[int] | None,
                  default_max_age_hours: int, cover: Cover | None = None) -> _Counted:
    st = device_states(conn, now, unit_ids, cover=cover, default_max_age_hours=default_max_age_hours).subquery("st")
    q = (select(st.c.unit_id, st.c.state, st.c.agent_version, func.count().label("n"))
         .group_by(st.c.unit_id, st.c.state, st.c.agent_version))
    return _Counted([(r.unit_id, r.state, r.agent_version, int(r.n)) for r in conn.execute(q)])


def _summaries(unit_list: list[dict[str, Any]], counted: _Counted, scope: Scope,
               default_max_age_hours: int) -> list[UnitSummary]:
    rolled = counted.rollup(unit_list)
    out = []
    for u in unit_list:
        c = rolled[u["id"]]
        total = sum(c.values())
        parent = u["parent_id"] if scope.unit_path is None or u["path"] != scope.unit_path else None
        out.append(UnitSummary(id=u["id"], path=u["path"], name=u["name"], parent_id=parent, depth=u["depth"],
                               counts=StateCounts(**c), total=total, ready_pct=_pct(c[READY], total),
                               max_report_age_hours=int(u["max_age_hours"] or default_max_age_hours)))
    return out


@dataclass(frozen=True)
class Overview:
    units: list[UnitSummary]
    agent_versions: "AgentVersions"


def overview(conn: Connection, scope: Scope, now: dt.datetime, *, minimum: str | None = None,
             default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> Overview:
    """Every unit in scope (parents before children, each counting all devices in its
    subtree) and the agent versions of the whole scope — from one pass over the states."""
    unit_list = scope_units(conn, scope)
    ids = None if scope.unit_path is None else [u["id"] for u in unit_list]
    counted = _count_states(conn, now, ids, default_max_age_hours)
    versions = _agent_versions(conn, counted.versions(), minimum, whole_fleet=scope.unit_path is None)
    return Overview(_summaries(unit_list, counted, scope, default_max_age_hours), versions)


def unit_tree(conn: Connection, scope: Scope, now: dt.datetime, *,
              default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> list[UnitSummary]:
    """Every unit in scope, parents before children (sorted by path components), each
    counting all devices in its subtree."""
    return overview(conn, scope, now, default_max_age_hours=default_max_age_hours).units


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


def _failing_checks(conn: Connection, cover: Cover, unit_ids: Sequence[int] | None,
                    limit: int) -> list[FailingCheck]:
    """The checks failing most among the active devices of ``unit_ids`` (None: all)."""
    dc, s = device_checks, device_state
    covered = cover.covers_check(dc.c.check_id, dc.c.device_id, s.c.unit_id)
    where = [dc.c.status.in_(FAILING_STATUSES), _not_revoked(dc.c.device_id)]
    if unit_ids is not None:
        where.append(s.c.unit_id.in_(unit_ids))
    # Coverage once per failing row (summing CASE on it twice evaluated it twice).
    rows_q = (select(dc.c.check_id, dc.c.severity, case((covered, 1), else_=0).label("covered"))
              .select_from(dc.join(s, s.c.device_id == dc.c.device_id)).where(*where)
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


def fleet_agent_versions(conn: Connection) -> list[str]:
    """Every agent version some active device runs. A loose index scan (one index probe
    per distinct version, of which there are a handful), not a pass over every device."""
    s, s2, s3 = device_state, device_state.alias("next_v"), device_state.alias("any_v")
    walk = select(func.min(s.c.agent_version).label("v")).cte("versions", recursive=True)
    walk = walk.union_all(select(select(func.min(s2.c.agent_version)).where(s2.c.agent_version > walk.c.v)
                                 .scalar_subquery()).where(walk.c.v.is_not(None)))
    # LIMIT 1: probe per version, rather than a semi-join the planner would run over every device.
    in_use = (select(s3.c.device_id).where(s3.c.agent_version == walk.c.v, _not_revoked(s3.c.device_id))
              .limit(1).scalar_subquery().is_not(None))
    return [v for v in conn.execute(select(walk.c.v).where(walk.c.v.is_not(None), in_use)).scalars()]


def _agent_versions(conn: Connection, dist_by_version: dict[str | None, int], minimum: str | None, *,
                    whole_fleet: bool = False) -> AgentVersions:
    """The distribution given, and how many of it run an agent older than the newest
    version reported anywhere in the fleet (a version number is not confidential) or the
    configured ``minimum``."""
    dist = [(v, n) for v, n in dist_by_version.items() if v]
    all_versions = [v for v, _ in dist] if whole_fleet else fleet_agent_versions(conn)
    newest = max(all_versions, key=version_key) if all_versions else None
    if minimum and (newest is None or version_key(minimum) > version_key(newest)):
        newest = minimum
    dist.sort(key=lambda x: version_key(x[0]), reverse=True)
    outdated = sum(n for v, n in dist if newest and version_key(v) < version_key(newest))
    return AgentVersions(newest=newest, minimum=minimum, distribution=dist, outdated=outdated)


def agent_versions(conn: Connection, scope: Scope, root: str | None, now: dt.datetime, *,
                   minimum: str | None = None) -> AgentVersions:
    """Agent version distribution in the subtree at ``root`` (None: the whole scope), and
    how many devices there run an agent older than the newest one in the fleet (or ``minimum``)."""
    ids = scope_unit_ids(conn, scope, root)
    s = device_state
    q = (select(s.c.agent_version, func.count().label("n")).where(_not_revoked(s.c.device_id))
         .group_by(s.c.agent_version))
    if ids is not None:
        q = q.where(s.c.unit_id.in_(ids))
    dist = {r.agent_version: int(r.n) for r in conn.execute(q)}
    return _agent_versions(conn, dist, minimum, whole_fleet=ids is None)


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
    # looks at that subtree's units only.
    sub = scope_units(conn, Scope(unit_path=root))
    ids = [u["id"] for u in sub]
    cover = exception_cover(conn, now, ids)
    counted = _count_states(conn, now, ids, default_max_age_hours, cover)
    summaries = {s.id: s for s in _summaries(sub, counted, scope, default_max_age_hours)}
    summary = summaries[unit_id]  # parent_id None when the user's scope starts here
    children = [summaries[u["id"]] for u in sub if u["parent_id"] == unit_id]
    versions = _agent_versions(conn, counted.versions(), min_agent_version)
    children_outdated: dict[int, int] = {}
    for c in children:
        below = {u["id"] for u in sub if u["path"] == c.path or u["path"].startswith(c.path + "/")}
        children_outdated[c.id] = sum(n for v, n in counted.versions(below).items()
                                      if v and versions.newest and version_key(v) < version_key(versions.newest))

    ds = device_state_rows(conn, scope, now, unit_ids=ids, cover=cover,
                           default_max_age_hours=default_max_age_hours).subquery("ds")
    conds = _device_filters(ds, state=state, check=check, os=os)
    offset = (page - 1) * per_page
    if check or os:
        total = conn.execute(select(func.count()).select_from(ds).where(*conds)).scalar_one()
        order = case(*[(ds.c.state == s, i) for s, i in _STATE_ORDER.items()], else_=9)
        rows = conn.execute(select(ds).where(*conds).order_by(order, ds.c.hostname, ds.c.id)
                            .limit(per_page).offset(offset)).mappings().all()
    else:
        # The counts per state are known, so the page is cut from the one or two states it
        # falls in, each read in hostname order: no sort of the whole subtree by state.
        per_state = {st: getattr(summary.counts, st) for st in STATES if st == state or not state}
        total = sum(per_state.values())
        rows, start = [], 0
        for st in sorted(per_state, key=_STATE_ORDER.__getitem__):
            lo, hi = max(offset, start), min(offset + per_page, start + per_state[st])
            if lo < hi:
                rows += conn.execute(select(ds).where(ds.c.state == st).order_by(ds.c.hostname, ds.c.id)
                                     .limit(hi - lo).offset(lo - start)).mappings().all()
            start += per_state[st]
    stale = stale_longest(conn, now, ids, stale_limit,
                          default_max_age_hours=default_max_age_hours) if summary.counts.stale else []
    failing = _failing_checks(conn, cover, ids, failing_limit)
    return UnitDetail(
        summary=summary, children=children, failing_checks=failing,
        stale_longest=stale,
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
    ds = device_state_rows(conn, scope, now, unit_ids=[dev["unit_id"]],
                           default_max_age_hours=default_max_age_hours).subquery("ds")
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
    # Day rows carry their device's unit: no join of every day row to devices. The unit ids
    # are passed as a list, so the planner sees how few rows they select (the (unit_id, day)
    # index) — a path-prefix condition it cannot estimate.
    q = (select(dd.c.unit_id, dd.c.day, func.count().label("n"))
         .select_from(dd.join(units, units.c.id == dd.c.unit_id))
         .where(dd.c.unit_id.in_(unit_ids), dd.c.day >= first, dd.c.day <= last,
                _not_revoked(dd.c.device_id), ready)
         .group_by(dd.c.unit_id, dd.c.day))
    return {(r.unit_id, as_date(r.day)): int(r.n) for r in conn.execute(q)}


def _store_day_ready(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Upsert counted closed days into the cache, in a savepoint: a reader racing another
    one for the same rows loses nothing but its copy. Kept when the caller commits."""
    if _dialect(conn) == "postgresql":
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
        select(units.c.id, units.c.history_version).where(_in_subtree(units.c.path, root)))}
    # Denominator: devices enrolled by each day's end (enrolments per day, cumulated over days).
    enrol_day = cast(devices.c.enrolled_at, Date) if _dialect(conn) == "postgresql" else func.date(devices.c.enrolled_at)
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
        out.append(TrendPoint(day=d, ready_pct=_pct(r, total), ready=r, devices=total))
    return out


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
    ds = device_state_rows(conn, scope, now, unit_ids=scope_unit_ids(conn, Scope(unit_path=root)),
                           default_max_age_hours=default_max_age_hours).subquery("ds")
    last = ""
    while True:
        rows = conn.execute(select(ds).where(ds.c.id > last)
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
    record_audit(conn, user_id, action, object_type, object_id, detail, now)


def _exception_status(row: Any, now: dt.datetime) -> str:
    if row["revoked_at"] is not None:
        return "revoked"
    if utc(row["expires_at"]) <= now:  # type: ignore[operator]
        return "expired"
    if utc(row["granted_at"]) > now:  # type: ignore[operator]
        return "pending"
    return "active"


def _history_changed(conn: Connection, *, unit_path: str | None = None, device_id: str | None = None) -> None:
    """An exception was granted or revoked: the cached trend days of the units it reaches
    are redone. (Through the API both happen at the current time and reach no closed day;
    a grant or revoke dated in the past can.)"""
    if unit_path is not None:
        where = _in_subtree(units.c.path, unit_path)
    elif device_id is not None:
        where = units.c.id == select(devices.c.unit_id).where(devices.c.id == device_id).scalar_subquery()
    else:
        return
    conn.execute(update(units).where(where).values(history_version=units.c.history_version + 1))


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
    _history_changed(conn, unit_path=target.get("path") if unit_id is not None else None,
                     device_id=device_id if unit_id is None else None)
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
    _history_changed(conn, unit_path=current.unit_path if current.unit_id is not None else None,
                     device_id=current.device_id)
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
