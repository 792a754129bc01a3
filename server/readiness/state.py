"""How a device's state is decided — one definition, used by every page, the trend, the
API and the exports.

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
state) × 100, one decimal (:func:`percent`); None for a unit without devices.

The state is computed from device_state alone (it carries the device's unit and its
failing required checks); the few active exceptions come from :mod:`.cover`.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Sequence

from sqlalchemy import and_, case, exists, func, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, Select

from server.db import device_state, devices, units, utc
from server.readiness.cover import Cover, exception_cover
from server.readiness.scope import Scope, ancestor_or_self, scope_unit_ids
from server.readiness.sql import minus_hours

READY, NOT_READY, STALE, NEVER_REPORTED = "ready", "not_ready", "stale", "never_reported"
STATES = (READY, NOT_READY, STALE, NEVER_REPORTED)
DEFAULT_MAX_REPORT_AGE_HOURS = 24

# ------------------------------------------------------------------ the device state (one definition)


def unit_max_age(name: str = "unit_age", *, now: dt.datetime | None = None, conn: Connection | None = None,
                 default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> Any:
    """CTE (unit_id, path, max_age_hours-or-NULL[, cutoff]): each unit's own or nearest
    ancestor's max report age; with ``now``, also the time before which its devices'
    latest report is stale — computed once per unit, not once per device."""
    u = units.alias("mu")
    a = units.alias("ma")
    hours = (select(a.c.max_report_age_hours)
             .where(a.c.max_report_age_hours.is_not(None), ancestor_or_self(a.c.path, u.c.path))
             .order_by(a.c.depth.desc()).limit(1).scalar_subquery())
    # Materialised: 1 row per unit, computed once, not once per device joined to it.
    ages = (select(u.c.id.label("unit_id"), u.c.path.label("path"), hours.label("max_age_hours"))
            .cte(name if now is None else name + "_hours").prefix_with("MATERIALIZED", dialect="postgresql"))
    if now is None:
        return ages
    assert conn is not None
    return (select(ages, minus_hours(conn, now, func.coalesce(ages.c.max_age_hours, default_max_age_hours))
                   .label("cutoff"))
            .cte(name).prefix_with("MATERIALIZED", dialect="postgresql"))

def not_revoked(device_col: Any) -> Any:
    """SQL: the device is not revoked (an anti-join on the few revoked ones, partial index)."""
    return ~exists(select(literal(1)).where(devices.c.id == device_col, devices.c.revoked_at.is_not(None)))


def is_stale(s: Any, cut: Any) -> ColumnElement[bool]:
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
        (is_stale(s, cut), STALE),
        (s.c.failing_required == "", READY),
        (cover.covers_all(s), READY),
        else_=NOT_READY)
    q = (select(s.c.device_id.label("id"), s.c.unit_id, cut.c.path.label("unit_path"), s.c.agent_version,
                s.c.generated_at, s.c.received_at, s.c.last_report_id, state.label("state"))
         .select_from(s.join(cut, cut.c.unit_id == s.c.unit_id))
         .where(not_revoked(s.c.device_id)))
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
         .where(is_stale(s, cut), devices.c.revoked_at.is_(None))
         .order_by(s.c.generated_at, s.c.device_id).limit(limit))
    if unit_ids is not None:
        q = q.where(s.c.unit_id.in_(unit_ids))
    return [StaleDevice(r.device_id, r.hostname, r.path, utc(r.generated_at), utc(r.received_at))
            for r in conn.execute(q)]

def percent(ready: int, total: int) -> float | None:
    return round(100.0 * ready / total, 1) if total else None

@dataclass(frozen=True)
class StaleDevice:
    id: str
    hostname: str
    unit_path: str
    last_seen: dt.datetime | None  # generated_at of the latest report
    received_at: dt.datetime | None

