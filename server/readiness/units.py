"""Unit views: the tree with each unit's roll-up (the overview), and one unit's page
(children, checks failing most, stale devices, a filtered page of devices).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from sqlalchemy import DateTime, and_, case, func, select, type_coerce
from sqlalchemy.engine import Connection

from server.db import device_checks, device_state, devices, units, utc
from server.readiness.cover import Cover, exception_cover
from server.readiness.devices import DevicePage, MAX_PER_PAGE, STATE_ORDER, device_filters, device_rows
from server.readiness.scope import Invalid, Scope, in_subtree, visible_unit
from server.readiness.state_page import devices_in_state, fleet_size
from server.readiness.sql import one_of
from server.readiness.state import (DEFAULT_MAX_REPORT_AGE_HOURS, STATES, StaleDevice,
                                    device_state_rows,
                                    not_revoked, ready_share, stale_longest, stale_clause,
                                    BlockingRow, FailingRow, StateRow, inherited_max_ages, state_rows)
from server.readiness.versions import AgentVersions, agent_versions, version_key, versions_of
from server.store import FAILING_STATUSES

# ------------------------------------------------------------------ units


@dataclass(frozen=True)
class StateCounts:
    ready: int = 0
    due: int = 0  # failing, inside a grace period: counted with the ready ones in the %
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



def scope_units(conn: Connection, scope: Scope, root: str | None = None) -> list[dict[str, Any]]:
    """The units in scope (and in the subtree at ``root``), with their effective max
    report age (None: the default): a few hundred rows, parents before children."""
    ages = inherited_max_ages(conn)  # (the read the stale cut-offs of the same request use)
    q = (select(units.c.id, units.c.path, units.c.name, units.c.parent_id, units.c.depth)
         .where(scope.clause(units.c.path)))
    if root is not None:
        q = q.where(in_subtree(units.c.path, root))
    rows = [dict(r, max_age_hours=ages.get(r["id"])) for r in conn.execute(q).mappings().all()]
    rows.sort(key=lambda u: u["path"].split("/"))
    return rows

@dataclass(frozen=True)
class _Counted:
    """Devices per (unit, state, agent version) — one pass over the groups of alike
    devices, from which roll-ups, version distributions and outdated counts are all
    summed in Python — and, when asked, the blocking checks' counts of the same pass."""
    rows: list[StateRow]
    blocking: list[BlockingRow] = field(default_factory=list)
    failing: list[FailingRow] = field(default_factory=list)

    def rollup(self, unit_list: list[dict[str, Any]]) -> dict[int, dict[str, int]]:
        """Per unit: its own devices and all below it, by state."""
        own: dict[tuple[int, str], int] = {}
        for unit_id, state, _v, n in self.rows:  # each unit's own first: the walk up is then once per unit
            own[unit_id, state] = own.get((unit_id, state), 0) + n
        out: dict[int, dict[str, int]] = {u["id"]: {s: 0 for s in STATES} for u in unit_list}
        up = _chains(unit_list)
        for (unit_id, state), n in own.items():
            for uid in up.get(unit_id, ()):
                out[uid][state] += n
        return out

    def outdated(self, unit_list: list[dict[str, Any]], newest: str | None) -> dict[int, int]:
        """Per unit: devices in its subtree running an agent older than ``newest``."""
        out = {u["id"]: 0 for u in unit_list}
        old = {v: bool(newest and v and version_key(v) < version_key(newest))
               for v in {r.agent_version for r in self.rows}}
        own: dict[int, int] = {}
        for unit_id, _s, v, n in self.rows:
            if old[v]:
                own[unit_id] = own.get(unit_id, 0) + n
        up = _chains(unit_list)
        for unit_id, n in own.items():
            for uid in up.get(unit_id, ()):
                out[uid] += n
        return out

    def versions(self, unit_ids: set[int] | None = None) -> dict[str | None, int]:
        dist: dict[str | None, int] = {}
        for unit_id, _s, v, n in self.rows:
            if unit_ids is None or unit_id in unit_ids:
                dist[v] = dist.get(v, 0) + n
        return dist


def _chains(unit_list: list[dict[str, Any]]) -> dict[int, list[int]]:
    """Per unit of ``unit_list``: the unit and its ancestors among them, nearest first."""
    parent = {u["id"]: u["parent_id"] for u in unit_list}
    out: dict[int, list[int]] = {}
    for uid in parent:
        chain: list[int] = []
        at: int | None = uid
        while at is not None and at in parent:
            chain.append(at)
            at = parent[at]
        out[uid] = chain
    return out


def _count_states(conn: Connection, now: dt.datetime, unit_ids: Sequence[int] | None,
                  default_max_age_hours: int, cover: Cover | None = None, *, blocking: bool = False,
                  failing: bool = False) -> _Counted:
    return _Counted(*state_rows(conn, now, unit_ids, cover=cover, blocking=blocking, failing=failing,
                                default_max_age_hours=default_max_age_hours))


def _summaries(unit_list: list[dict[str, Any]], counted: _Counted, scope: Scope,
               default_max_age_hours: int) -> list[UnitSummary]:
    rolled = counted.rollup(unit_list)
    out = []
    for u in unit_list:
        c = rolled[u["id"]]
        total = sum(c.values())
        parent = u["parent_id"] if scope.unit_path is None or u["path"] != scope.unit_path else None
        out.append(UnitSummary(id=u["id"], path=u["path"], name=u["name"], parent_id=parent, depth=u["depth"],
                               counts=StateCounts(**c), total=total, ready_pct=ready_share(c),
                               max_report_age_hours=int(u["max_age_hours"] or default_max_age_hours)))
    return out


@dataclass(frozen=True)
class Overview:
    units: list[UnitSummary]
    agent_versions: "AgentVersions"
    outdated: dict[int, int] = field(default_factory=dict)  # unit id → devices (subtree) on an older agent
    blocking: dict[int, tuple[str, int]] = field(default_factory=dict)  # unit id → (check, devices)


def overview(conn: Connection, scope: Scope, now: dt.datetime, *, minimum: str | None = None, why: bool = True,
             default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> Overview:
    """Every unit in scope (parents before children, each counting all devices in its
    subtree) and the agent versions of the whole scope — from one pass over the states;
    with ``why``, each unit's most common blocking check (the overview page's column)."""
    unit_list = scope_units(conn, scope)
    ids = None if scope.unit_path is None else [u["id"] for u in unit_list]
    cover = exception_cover(conn, now, ids)
    counted = _count_states(conn, now, ids, default_max_age_hours, cover, blocking=why)
    versions = versions_of(conn, counted.versions(), minimum, whole_fleet=scope.unit_path is None)
    return Overview(_summaries(unit_list, counted, scope, default_max_age_hours), versions,
                    outdated=counted.outdated(unit_list, versions.newest),
                    blocking=blocking_checks(unit_list, counted.blocking)
                    if why else {})


def unit_tree(conn: Connection, scope: Scope, now: dt.datetime, *,
              default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> list[UnitSummary]:
    """Every unit in scope, parents before children (sorted by path components), each
    counting all devices in its subtree."""
    return overview(conn, scope, now, why=False, default_max_age_hours=default_max_age_hours).units

@dataclass(frozen=True)
class FailingCheck:
    check_id: str
    severity: str
    devices_failing: int  # failing and not covered by an exception
    devices_excepted: int  # failing but covered by an active exception
    devices_stale: int = 0  # failing in a stale device's latest report: counted apart
    failing_since: dt.datetime | None = None  # the oldest run among the devices_failing


@dataclass(frozen=True)
class FailingRun:
    """A required check failing on a device (fresh report, not covered), since when."""
    device_id: str
    hostname: str
    check_id: str
    failing_since: dt.datetime | None
    due_until: dt.datetime | None  # its grace deadline, if the run has one still ahead


@dataclass(frozen=True)
class UnitDetail:
    summary: UnitSummary
    children: list[UnitSummary]
    failing_checks: list[FailingCheck]
    stale_longest: list[StaleDevice]
    devices: DevicePage
    agent_versions: AgentVersions
    children_outdated_agents: dict[int, int] = field(default_factory=dict)  # child unit id → devices
    failing_longest: list[FailingRun] = field(default_factory=list)  # oldest first


def _failing_checks(conn: Connection, now: dt.datetime, cover: Cover, unit_ids: Sequence[int] | None,
                    limit: int, default_max_age_hours: int, required: list[FailingRow], *, in_subtree: int,
                    fleet: int) -> list[FailingCheck]:
    """The checks failing most among the active devices of ``unit_ids`` (None: all):
    counted of devices judged on a fresh report (not ready); stale ones apart. The required
    checks' counts come from the pass that counted the states (``required``: from the
    groups of alike devices, :func:`state_rows`); the recommended checks' from their rows
    (no device's state depends on them, so no count is kept); the oldest failing run of
    each check is read off the failing-since index."""
    dc, s = device_checks, device_state
    stale = stale_clause(conn, s, now, default_max_age_hours=default_max_age_hours)
    covered = cover.covers_check(dc.c.check_id, dc.c.device_id, s.c.unit_id)
    failing_rows = [dc.c.status.in_(FAILING_STATUSES), not_revoked(dc.c.device_id)]
    if unit_ids is not None:
        failing_rows.append(one_of(s.c.unit_id, unit_ids))
    rows = [FailingCheck(f.check_id, "required", f.failing, f.excepted, f.stale) for f in required]
    # Coverage and staleness once per failing row (summing CASE on them evaluated them twice).
    r = (select(dc.c.check_id, dc.c.severity, case((covered, 1), else_=0).label("covered"),
                case((stale, 1), else_=0).label("stale"))
         .select_from(dc.join(s, s.c.device_id == dc.c.device_id))
         .where(*failing_rows, dc.c.severity == "recommended")  # the one other severity stored
         .cte("recommended_rows").prefix_with("MATERIALIZED", dialect="postgresql"))
    fresh = 1 - r.c.stale
    rows += [FailingCheck(x.check_id, x.severity, int(x.failing), int(x.excepted), int(x.stale))
             for x in conn.execute(select(r.c.check_id, r.c.severity,
                                          func.sum(fresh * (1 - r.c.covered)).label("failing"),
                                          func.sum(fresh * r.c.covered).label("excepted"),
                                          func.sum(r.c.stale).label("stale"))
                                   .group_by(r.c.check_id, r.c.severity))]
    rows.sort(key=lambda f: (f.severity != "required", -f.devices_failing, -f.devices_excepted, f.check_id))
    rows = rows[:limit]
    # Since when: each shown check's oldest run on a fresh report, uncovered. In a large
    # subtree, the first such row in failing-since order (a short walk of the index per
    # check: about fleet / subtree rows); in a small one, its failing rows at once.
    wanted = [(i, f) for i, f in enumerate(rows) if f.devices_failing]
    if not wanted:
        return rows
    fresh_uncovered = [*failing_rows, dc.c.failing_since.is_not(None), ~stale, ~covered]
    rows_of = dc.join(s, s.c.device_id == dc.c.device_id)
    if in_subtree * in_subtree > len(wanted) * fleet:
        oldest = [select(dc.c.failing_since).select_from(rows_of)
                  .where(*fresh_uncovered, dc.c.check_id == f.check_id, dc.c.severity == f.severity)
                  .order_by(dc.c.failing_since).limit(1).scalar_subquery().label(f"since_{i}") for i, f in wanted]
        since = dict(zip((i for i, _f in wanted), conn.execute(select(*oldest)).one()))
    else:
        at = {(x.check_id, x.severity): x.since for x in conn.execute(
            select(dc.c.check_id, dc.c.severity,
                   type_coerce(func.min(dc.c.failing_since), DateTime(timezone=True)).label("since"))
            .select_from(rows_of).where(*fresh_uncovered, one_of(dc.c.check_id, sorted({f.check_id for _i, f in wanted})))
            .group_by(dc.c.check_id, dc.c.severity))}
        since = {i: at.get((f.check_id, f.severity)) for i, f in wanted}
    for i, f in wanted:
        rows[i] = replace(f, failing_since=utc(since[i]))
    return rows


def failing_longest(conn: Connection, now: dt.datetime, cover: Cover, unit_ids: Sequence[int] | None,
                    limit: int, default_max_age_hours: int) -> list[FailingRun]:
    """The required checks failing longest on the active devices of ``unit_ids`` (fresh
    report, not covered by an exception), oldest first: read off the failing-since index."""
    dc, s = device_checks, device_state
    q = (select(dc.c.device_id, devices.c.hostname, dc.c.check_id, dc.c.failing_since, dc.c.due_until)
         .select_from(dc.join(s, s.c.device_id == dc.c.device_id).join(devices, devices.c.id == dc.c.device_id))
         .where(dc.c.status.in_(FAILING_STATUSES), dc.c.severity == "required", dc.c.failing_since.is_not(None),
                devices.c.revoked_at.is_(None),
                ~stale_clause(conn, s, now, default_max_age_hours=default_max_age_hours),
                ~cover.covers_check(dc.c.check_id, dc.c.device_id, s.c.unit_id))
         .order_by(dc.c.failing_since, dc.c.device_id, dc.c.check_id).limit(limit))
    if unit_ids is not None:
        q = q.where(one_of(s.c.unit_id, unit_ids))
    return [FailingRun(r.device_id, r.hostname, r.check_id, utc(r.failing_since), _ahead(utc(r.due_until), now))
            for r in conn.execute(q)]


def _ahead(deadline: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
    """A grace deadline still ahead of ``now`` (one that has passed grants nothing)."""
    return deadline if deadline is not None and deadline > now else None


def blocking_checks(unit_list: list[dict[str, Any]], rows: list[BlockingRow]) -> dict[int, tuple[str, int]]:
    """Per unit: the required check that keeps most of its subtree's devices not ready
    or due (failing, not covered by an exception) and how many — the overview's "why".
    ``rows``: those devices per (unit, check), from the pass that counted the tiles
    (:func:`state_rows`), rolled up the tree here."""
    up = _chains(unit_list)
    per: dict[int, dict[str, int]] = {}
    for x in rows:
        for uid in up.get(x.unit_id, ()):
            into = per.setdefault(uid, {})
            into[x.check_id] = into.get(x.check_id, 0) + x.n
    return {u: min(((k, n) for k, n in c.items() if n > 0), key=lambda kv: (-kv[1], kv[0]))
            for u, c in per.items() if any(n > 0 for n in c.values())}


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
    counted = _count_states(conn, now, ids, default_max_age_hours, cover, failing=True)
    summaries = {s.id: s for s in _summaries(sub, counted, scope, default_max_age_hours)}
    summary = summaries[unit_id]  # parent_id None when the user's scope starts here
    children = [summaries[u["id"]] for u in sub if u["parent_id"] == unit_id]
    versions = versions_of(conn, counted.versions(), min_agent_version)
    children_outdated: dict[int, int] = {}
    for c in children:
        below = {u["id"] for u in sub if u["path"] == c.path or u["path"].startswith(c.path + "/")}
        children_outdated[c.id] = sum(n for v, n in counted.versions(below).items()
                                      if v and versions.newest and version_key(v) < version_key(versions.newest))

    ds = device_state_rows(conn, scope, now, unit_ids=ids, cover=cover,
                           default_max_age_hours=default_max_age_hours).subquery("ds")
    conds = device_filters(ds, state=state, check=check, os=os)
    offset = (page - 1) * per_page
    fleet: int | None = None
    if check or os:
        total = conn.execute(select(func.count()).select_from(ds).where(*conds)).scalar_one()
        order = case(*[(ds.c.state == s, i) for s, i in STATE_ORDER.items()], else_=9)
        rows = conn.execute(select(ds).where(*conds).order_by(order, ds.c.hostname, ds.c.id)
                            .limit(per_page).offset(offset)).mappings().all()
    else:
        # The counts per state are known, so the page is cut from the one or two states it
        # falls in, each read in hostname order: no sort of the whole subtree by state.
        # Within a state, only the devices of the page are judged (state_page).
        per_state = {st: getattr(summary.counts, st) for st in STATES if st == state or not state}
        total = sum(per_state.values())
        rows, start = [], 0
        for st in sorted(per_state, key=STATE_ORDER.__getitem__):
            lo, hi = max(offset, start), min(offset + per_page, start + per_state[st])
            if lo < hi:
                fleet = fleet_size(conn) if fleet is None else fleet
                rows += devices_in_state(conn, scope, now, ids, st, offset=lo - start, limit=hi - lo,
                                         in_state=per_state[st], in_subtree=summary.total, fleet=fleet, cover=cover,
                                         default_max_age_hours=default_max_age_hours)
            start += per_state[st]
    stale = stale_longest(conn, now, ids, stale_limit,
                          default_max_age_hours=default_max_age_hours) if summary.counts.stale else []
    failing = _failing_checks(conn, now, cover, ids, failing_limit, default_max_age_hours, counted.failing,
                              in_subtree=summary.total, fleet=fleet_size(conn) if fleet is None else fleet)
    longest = failing_longest(conn, now, cover, ids, stale_limit, default_max_age_hours) \
        if summary.counts.not_ready or summary.counts.due else []
    return UnitDetail(
        summary=summary, children=children, failing_checks=failing,
        stale_longest=stale,
        devices=DevicePage(items=device_rows(conn, now, rows, versions.newest, cover=cover), total=int(total), page=page,
                           per_page=per_page),
        agent_versions=versions, children_outdated_agents=children_outdated, failing_longest=longest)

