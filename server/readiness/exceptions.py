"""Exceptions: granting, revoking and listing them (each change audited).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, insert, literal, or_, select, update
from sqlalchemy.engine import Connection

from server.db import as_date, devices, exceptions, units, users, utc, write_audit
from server.local_time import as_tz, last_local_day, local_midnight_after
from server.readiness.scope import (Actor, Forbidden, Invalid, NotFound, Scope, ancestor_or_self, in_subtree,
                                    visible_device, visible_unit)
from server.readiness.sql import ts_param
from server.store import ApiError

MAX_EXCEPTION_DAYS = 180
_CHECK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")


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
    expires_at: dt.datetime  # the instant it stops covering
    valid_through: dt.date  # the last day it covers: the date the officer picked
    revoked_at: dt.datetime | None
    revoked_by: str | None
    revoke_reason: str | None
    status: str  # active | expired | revoked | pending


# ------------------------------------------------------------------ exceptions



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
        where = in_subtree(units.c.path, unit_path)
    elif device_id is not None:
        where = units.c.id == select(devices.c.unit_id).where(devices.c.id == device_id).scalar_subquery()
    else:
        return
    conn.execute(update(units).where(where).values(history_version=units.c.history_version + 1))


def grant_exception(conn: Connection, user: Actor, *, check_id: str, device_id: str | None = None,
                    unit_id: int | None = None, expires_at: dt.datetime | None = None,
                    expires_on: dt.date | None = None, tz: dt.tzinfo | None = None, justification: str,
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
    if (expires_at is None) == (expires_on is None):
        raise Invalid("expires_at", "give exactly one of expires_at and expires_on")
    if expires_on is not None:  # a date: valid through that day in the organisation's time zone
        expires_at = local_midnight_after(expires_on, as_tz(tz))
    assert expires_at is not None
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
        granted_at=now, expires_at=expires_at, expires_on=expires_on).returning(exceptions.c.id)).scalar_one()
    write_audit(conn, user.id, "exception.grant", "exception", new_id,
                {"check_id": check_id, **target_desc, "expires_at": expires_at.isoformat(),
                 **({"expires_on": expires_on.isoformat()} if expires_on else {}),
                 "justification": justification}, now)
    return get_exception(conn, scope, new_id, now)


def revoke_exception(conn: Connection, user: Actor, exception_id: int, reason: str,
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
    write_audit(conn, user.id, "exception.revoke", "exception", exception_id,
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
        granted_at=utc(row["granted_at"]), expires_at=utc(row["expires_at"]),
        valid_through=as_date(row["expires_on"]) if row["expires_on"] is not None
        else last_local_day(utc(row["expires_at"]), None),  # type: ignore[arg-type]
        revoked_at=utc(row["revoked_at"]),
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
        q = q.where(exceptions.c.revoked_at.is_(None), exceptions.c.expires_at > ts_param(now))
    if device_id is not None:
        dev = visible_device(conn, scope, device_id)
        q = q.where(or_(exceptions.c.device_id == dev["id"],
                        and_(exceptions.c.unit_id.is_not(None), ancestor_or_self(eu.c.path, literal(dev["unit_path"])))))
    if unit_id is not None:
        u = visible_unit(conn, scope, unit_id)
        q = q.where(or_(in_subtree(du.c.path, u["path"]), in_subtree(eu.c.path, u["path"]),
                        and_(exceptions.c.unit_id.is_not(None), ancestor_or_self(eu.c.path, literal(u["path"])))))
    rows = conn.execute(q.order_by(exceptions.c.granted_at.desc(), exceptions.c.id.desc())).mappings().all()
    return [_info(r, scope, now) for r in rows]


