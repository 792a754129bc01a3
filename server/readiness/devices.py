"""One device: its row in a list (state, failing and excepted checks), its page (latest
results, exceptions that apply, timeline), its signed reports and key.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Sequence

from sqlalchemy import exists, func, literal, or_, select
from sqlalchemy.engine import Connection

from auditagent import report as wire
from server.db import device_checks, device_keys, device_state, devices, exceptions, reports, units, utc
from server.readiness.cover import Cover, covered_exists, exception_cover
from server.readiness.exceptions import ExceptionInfo, list_exceptions
from server.readiness.sql import one_of
from server.readiness.scope import Invalid, NotFound, Scope, visible_device
from server.readiness.state import (DEFAULT_MAX_REPORT_AGE_HOURS, DUE, NEVER_REPORTED, NOT_READY, READY, STALE,
                                    STATES, device_state_rows)
from server.readiness.versions import agent_versions, version_key
from server.report_read import SIGNED_COLUMNS, payload_of, signed_envelope
from server.store import FAILING_STATUSES

MAX_PER_PAGE = 500

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
    # Only while due or not ready: since when its required checks fail (the earliest run),
    # and the grace deadline, if due.
    failing_since: dt.datetime | None = None
    due_until: dt.datetime | None = None


@dataclass(frozen=True)
class DevicePage:
    items: list[DeviceRow]
    total: int
    page: int
    per_page: int


STATE_ORDER = {NOT_READY: 0, DUE: 1, STALE: 2, NEVER_REPORTED: 3, READY: 4}


def device_rows(conn: Connection, now: dt.datetime, rows: Sequence[Any], newest: str | None, *,
                cover: Cover | None = None) -> list[DeviceRow]:
    """DeviceRows for one page of device_state_rows results, with their failing checks
    (``cover``: the active exceptions, when the caller holds them; else looked up per check)."""
    ids = [r["id"] for r in rows]
    failing: dict[str, list[str]] = {i: [] for i in ids}
    excepted: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        dc = device_checks
        covered = (covered_exists(conn, now, dc.c.check_id, dc.c.device_id, units.c.path) if cover is None
                   else cover.covers_check(dc.c.check_id, dc.c.device_id, devices.c.unit_id))
        q = (select(dc.c.device_id, dc.c.check_id, covered.label("covered"))
             .select_from(dc.join(devices, devices.c.id == dc.c.device_id).join(units, units.c.id == devices.c.unit_id))
             .where(one_of(dc.c.device_id, ids), dc.c.severity == "required", dc.c.status.in_(FAILING_STATUSES))
             .order_by(dc.c.check_id))
        for r in conn.execute(q):
            (excepted if r.covered else failing)[r.device_id].append(r.check_id)
    return [device_row(r, failing[r["id"]], excepted[r["id"]], newest) for r in rows]


def device_row(r: Any, failing: list[str], excepted: list[str], newest: str | None) -> DeviceRow:
    """One device_state_rows result (a mapping) as the DeviceRow every list shows, with its
    failing and excepted checks (the rules of :func:`is_outdated` and :func:`shown_run`)."""
    v = r["agent_version"]
    state = r["state"]
    since, due = shown_run(state, r["failing_since"], r["due_until"])
    return DeviceRow(id=r["id"], hostname=r["hostname"], unit_id=r["unit_id"], unit_path=r["unit_path"],
                     platform=r["platform"], os=r["os"], agent_version=v, agent_outdated=is_outdated(v, newest),
                     state=state, last_seen=utc(r["generated_at"]), received_at=utc(r["received_at"]),
                     failing_checks=failing, excepted_checks=excepted, failing_since=utc(since), due_until=utc(due))


def is_outdated(version: str | None, newest: str | None) -> bool:
    """The device runs an agent older than the newest one of its unit's subtree."""
    return bool(newest and version and version_key(version) < version_key(newest))


def shown_run(state: str, failing_since: Any, due_until: Any) -> tuple[Any, Any]:
    """(failing since, grace deadline) as a list shows them: since when only while due or
    not ready, the deadline only while due."""
    if state == DUE:
        return failing_since, due_until
    return (failing_since if state == NOT_READY else None), None


def device_filters(ds: Any, *, state: str | None, check: str | None, os: str | None) -> list[Any]:
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

# ------------------------------------------------------------------ devices


@dataclass(frozen=True)
class CheckResult:
    check_id: str
    kind: str | None
    severity: str
    status: str
    messages: list[Any]
    evidence: Any
    excepted_by: int | None  # id of the active exception covering this failing required check
    failing_since: dt.datetime | None = None  # not met since (the current run's start)
    due_until: dt.datetime | None = None  # the run's grace deadline, if it has one (past or ahead)


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
    # The exceptions bearing on this one device (not on every device of its unit).
    cover = exception_cover(conn, now, [dev["unit_id"]], device_ids=[dev["id"]])
    ds = device_state_rows(conn, scope, now, unit_ids=[dev["unit_id"]], cover=cover,
                           default_max_age_hours=default_max_age_hours).subquery("ds")
    row = conn.execute(select(ds).where(ds.c.id == dev["id"])).mappings().one()
    versions_newest = agent_versions(conn, Scope(dev["unit_path"]), dev["unit_path"], now,
                                     minimum=min_agent_version).newest
    drow = device_rows(conn, now, [row], versions_newest)[0]
    st = conn.execute(select(device_state).where(device_state.c.device_id == dev["id"])).mappings().first()
    applying = list_exceptions(conn, scope, now, device_id=dev["id"])
    by_check = {e.check_id: e.id for e in applying if e.status == "active"}
    runs = {r.check_id: (utc(r.failing_since), utc(r.due_until)) for r in conn.execute(
        select(device_checks.c.check_id, device_checks.c.failing_since, device_checks.c.due_until)
        .where(device_checks.c.device_id == dev["id"]))}
    facts = policy = None
    results: list[CheckResult] = []
    if st is not None and st["last_report_id"]:
        latest = conn.execute(select(*SIGNED_COLUMNS).where(reports.c.report_id == st["last_report_id"])).first()
        if latest is not None:  # (gone if retention removed it)
            pred = wire.strict_loads(payload_of(conn, latest), "stored report")["predicate"]
            facts, policy = pred.get("facts"), pred.get("policy")
            for r in pred.get("results") or []:
                sev = r.get("severity") if r.get("severity") in ("required", "recommended") else "required"
                failing_req = sev == "required" and r.get("status") in FAILING_STATUSES
                results.append(CheckResult(check_id=r.get("check_id"), kind=r.get("kind"), severity=sev,
                                           status=r.get("status"), messages=list(r.get("messages") or []),
                                           evidence=r.get("evidence"),
                                           excepted_by=by_check.get(r.get("check_id")) if failing_req else None,
                                           failing_since=runs.get(r.get("check_id"), (None, None))[0],
                                           due_until=runs.get(r.get("check_id"), (None, None))[1]))
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
    envelope: str  # rebuilt from the signed bytes kept (server/report_read.py)
    keyid: str
    public_key_pem: str | None  # the key that signed it (from device_keys)


def report_envelope(conn: Connection, scope: Scope, report_id: str) -> SignedReport:
    """The stored envelope of one report (the signed bytes as received, in the agent's
    envelope form) and the public key that signed it."""
    row = conn.execute(select(*SIGNED_COLUMNS)
                       .where(reports.c.report_id == str(report_id)[:36])).first()
    if row is None:
        raise NotFound("report", report_id)
    try:
        visible_device(conn, scope, row.device_id)
    except NotFound:
        raise NotFound("report", report_id) from None
    envelope, kid = signed_envelope(conn, row)
    pem = conn.execute(select(device_keys.c.public_key_pem).where(device_keys.c.device_id == row.device_id,
                                                                  device_keys.c.keyid == kid)).scalar()
    return SignedReport(row.report_id, row.device_id, envelope, kid, pem)


def device_public_key(conn: Connection, scope: Scope, device_id: str) -> tuple[str, str]:
    """(keyid, SubjectPublicKeyInfo PEM) of the device's current key."""
    dev = visible_device(conn, scope, device_id)
    pem = conn.execute(select(device_keys.c.public_key_pem).where(device_keys.c.device_id == dev["id"],
                                                                  device_keys.c.keyid == dev["current_keyid"])).scalar()
    if pem is None:
        pem = wire.public_key_pem(wire.public_key_from_raw(bytes(dev["public_key"])))
    return dev["current_keyid"], pem

