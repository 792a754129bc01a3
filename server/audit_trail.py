"""The audit log as officers read it: each entry with the unit it concerns, filtered by
unit (with its sub-units) and time, limited to the reader's units.

An entry's unit is found from what it is about, at read time: an exception's unit or its
device's unit, a unit (created, token made, policy set), a device's unit (enrolled,
revoked), a user's scope. An entry that concerns no unit (an administrator created, a
lockout of an unscoped user) is shown only to readers who see every unit: unknown fails
closed.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from typing import Any, Iterator

from sqlalchemy import String, and_, cast, func, select
from sqlalchemy.engine import Connection

from server import readiness as rd
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


CSV_COLUMNS = ("at_utc", "at_local", "user", "action", "unit", "object_type", "object_id", "detail")


def audit_csv(conn: Connection, scope: rd.Scope, flt: AuditFilter, local: Any = str) -> Iterator[str]:
    """The same entries as CSV text lines (RFC 4180, CRLF; formula-looking cells defused);
    ``local`` writes the time for a reader (the dashboard's :meth:`Translator.when`)."""
    def line(cells: Any) -> str:
        buf = io.StringIO()
        csv.writer(buf).writerow([rd.csv_cell(c) for c in cells])
        return buf.getvalue()

    yield line(CSV_COLUMNS)
    for r in audit_trail(conn, scope, flt, limit=EXPORT_LIMIT):
        yield line((r.at, local(r.at), r.user or "", r.action, r.unit_path or "", r.object_type, r.object_id,
                    json.dumps(r.detail, ensure_ascii=False, sort_keys=True)))
