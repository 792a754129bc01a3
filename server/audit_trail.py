"""The audit log as officers read it: each entry with the unit it concerns, filtered by
unit (with its sub-units) and time, limited to the reader's units.

An entry's unit is found from what it is about, at read time: an exception's unit or its
device's unit, a unit (created, token made, policy set), a device's unit (enrolled,
revoked), a user's scope. An entry that concerns no unit (an administrator created, a
lockout of an unscoped user) is shown only to readers who see every unit: unknown fails
closed.
"""
from __future__ import annotations

import datetime as dt
import itertools
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from sqlalchemy import String, and_, cast, func, select
from sqlalchemy.engine import Connection

from server import readiness as rd
from server import spreadsheet
from server.db import audit_log, devices, exceptions, units, users, utc

PAGE_LIMIT = 500
EXPORT_LIMIT = 100_000
ACTIONS = ("exception.grant", "exception.revoke", "user.create", "user.disable", "user.locked", "unit.create",
           "token.create", "device.enroll", "device.revoke", "policy.set")


@dataclass(frozen=True)
class AuditRow(rd.AuditEntry):
    """An API audit entry with the unit it concerns (None: no unit)."""

    unit_path: str | None = None


@dataclass(frozen=True)
class AuditFilter:
    unit_path: str | None = None  # this unit and its sub-units
    since: dt.datetime | None = None  # inclusive, UTC
    until: dt.datetime | None = None  # exclusive, UTC
    action: str | None = None


def _query(scope: rd.Scope, flt: AuditFilter) -> Any:
    ex, ex_unit, ex_dev, ex_dev_unit = exceptions.alias("ex"), units.alias("ex_unit"), devices.alias("ex_dev"), \
        units.alias("ex_dev_unit")
    obj_unit, obj_dev, obj_dev_unit = units.alias("obj_unit"), devices.alias("obj_dev"), units.alias("obj_dev_unit")
    actor, target_user, target_user_unit = users.alias("actor"), users.alias("target_user"), units.alias("tu_unit")
    oid, otype = audit_log.c.object_id, audit_log.c.object_type
    unit_path = func.coalesce(ex_unit.c.path, ex_dev_unit.c.path, obj_unit.c.path, obj_dev_unit.c.path,
                              target_user_unit.c.path).label("unit_path")
    q = (select(audit_log.c.id, audit_log.c.at, audit_log.c.action, otype, oid, audit_log.c.detail,
                actor.c.username, unit_path)
         .select_from(audit_log)
         .outerjoin(actor, actor.c.id == audit_log.c.user_id)
         .outerjoin(ex, and_(otype == "exception", cast(ex.c.id, String) == oid))
         .outerjoin(ex_unit, ex_unit.c.id == ex.c.unit_id)
         .outerjoin(ex_dev, ex_dev.c.id == ex.c.device_id)
         .outerjoin(ex_dev_unit, ex_dev_unit.c.id == ex_dev.c.unit_id)
         .outerjoin(obj_unit, and_(otype == "unit", cast(obj_unit.c.id, String) == oid))
         .outerjoin(obj_dev, and_(otype == "device", obj_dev.c.id == oid))
         .outerjoin(obj_dev_unit, obj_dev_unit.c.id == obj_dev.c.unit_id)
         .outerjoin(target_user, and_(otype == "user", cast(target_user.c.id, String) == oid))
         .outerjoin(target_user_unit, target_user_unit.c.id == target_user.c.scope_unit_id))
    if scope.unit_path is not None:
        q = q.where(scope.clause(unit_path))
    if flt.unit_path is not None:
        q = q.where(rd.Scope(flt.unit_path).clause(unit_path))
    if flt.since is not None:
        q = q.where(audit_log.c.at >= flt.since)
    if flt.until is not None:
        q = q.where(audit_log.c.at < flt.until)
    if flt.action:
        q = q.where(audit_log.c.action == flt.action)
    return q.order_by(audit_log.c.at.desc(), audit_log.c.id.desc())


def _detail(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def audit_trail(conn: Connection, scope: rd.Scope, flt: AuditFilter = AuditFilter(), *,
                limit: int = PAGE_LIMIT) -> list[AuditRow]:
    """The entries the reader may see that match ``flt``, newest first, at most ``limit``."""
    return [AuditRow(r.id, utc(r.at), r.username, r.action, r.object_type, r.object_id,  # type: ignore[arg-type]
                     _detail(r.detail), r.unit_path)
            for r in conn.execute(_query(scope, flt).limit(limit))]


def action_label(t: Callable[..., str], action: str) -> str:
    """An action as the reader's words (the code itself for one the catalogue lacks)."""
    key = "action." + action
    return t(key) if t.has(key) else action


def detail_pairs(entry: AuditRow) -> list[tuple[str, str]]:
    """An entry's detail as (key, text) pairs, as the page and the exports show it: empty
    values and the unit (its own column) left out."""
    return [(k, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
            for k, v in sorted(entry.detail.items())
            if v not in (None, "") and not (k == "unit" and v == entry.unit_path)]


# The exports for a person: the page's columns (their headers' keys), the time also in UTC
# (a date cell in XLSX), and the action's code for filtering in a spreadsheet.
EXPORT_HEADERS = ("audit.at", "audit.at", "audit.who", "audit.action", "unit", "audit.object", "audit.detail",
                  "audit.action_code")


def export_header(t: Any) -> list[str]:
    head = [t(k) for k in EXPORT_HEADERS]
    head[0], head[1] = f"{head[0]} ({t.zone_name})", f"{head[1]} (UTC)"
    return head


def export_rows(entries: Iterable[AuditRow], t: Any, *, text_times: bool) -> Iterator[list[Any]]:
    """One row per entry in the reader's language (``t``: the dashboard's Translator)."""
    for r in entries:
        at_utc = r.at.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if text_times else r.at
        yield [t.when(r.at), at_utc, r.user or t("audit.system"), action_label(t, r.action), r.unit_path or "",
               f"{r.object_type} {r.object_id or ''}".strip(), "; ".join(f"{k}: {v}" for k, v in detail_pairs(r)),
               r.action]


def audit_export(conn: Connection, scope: rd.Scope, flt: AuditFilter, t: Any, fmt: str) -> str | bytes:
    """The entries the page shows (filters applied, newest first, up to EXPORT_LIMIT) as a
    person's CSV (their Excel's dialect: ';' and a BOM for Swedish and Danish) or XLSX, with
    the same spreadsheet writers as the device exports."""
    entries = audit_trail(conn, scope, flt, limit=EXPORT_LIMIT)
    if fmt == "xlsx":
        return spreadsheet.xlsx_bytes(export_header(t), export_rows(entries, t, text_times=False),
                                      sheet=t("audit.title"))
    rows = (list(map(str, r)) for r in export_rows(entries, t, text_times=True))
    return "".join(spreadsheet.csv_lines(itertools.chain([export_header(t)], rows), rd.csv_style_for(t.lang)))
