"""What a subscription's daily digest says: device state changes since the previous
digest (from the one definition of a device's state, :mod:`server.readiness`),
exceptions about to end, and the unit's readiness against its target.

The digest is culture-invariant JSON (ids, states, ISO times); :mod:`messages` puts it
into words at delivery, in the subscriber's language.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from server import readiness as rd
from server.db import utc
from server.notify.events import BELOW_TARGET, EXCEPTION_EXPIRING, NOT_READY, SILENT

MAX_LISTED = 200  # devices or exceptions per event in one digest; the count says how many in all
ALERT_STATES = frozenset({rd.NOT_READY, rd.DUE})


def _iso(value: Any) -> str | None:
    return None if value is None else utc(value).isoformat()  # type: ignore[union-attr]


def _alerts(previous: str | None, state: str) -> bool:
    """Worth telling: a device newly failing (due: it has until its deadline; not ready),
    and a due device whose grace ran out (due → not ready). Not a not-ready device
    whose checks without grace were fixed while one with grace still fails (not ready → due)."""
    if state == rd.NOT_READY:
        return previous != rd.NOT_READY
    return state == rd.DUE and previous not in ALERT_STATES


def transitions(previous: dict[str, str] | None, current: dict[str, str]) -> dict[str, list[str]]:
    """Device ids that became not ready (or due) and that went silent since
    ``previous``; nothing on the first digest (no previous snapshot to compare with)."""
    if previous is None:
        return {NOT_READY: [], SILENT: []}
    became = [d for d, s in current.items() if _alerts(previous.get(d), s)]
    silent = [d for d, s in current.items() if s == rd.STALE and previous.get(d) not in (rd.STALE, None)]
    return {NOT_READY: sorted(became), SILENT: sorted(silent)}


def build(conn: Connection, sub: Any, user: Any, now: dt.datetime, *,
          default_max_age_hours: int = rd.DEFAULT_MAX_REPORT_AGE_HOURS) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """(the digest, or None when there is nothing to say; the new snapshot)."""
    unit = rd.visible_unit(conn, rd.Scope.for_user(user), sub["unit_id"])  # NotFound when out of scope now
    sub_scope = rd.Scope(unit_path=unit["path"])
    unit_ids = rd.scope_unit_ids(conn, sub_scope)
    q = rd.device_state_rows(conn, sub_scope, now, unit_ids=unit_ids,
                             default_max_age_hours=default_max_age_hours).subquery("ds")
    rows = {r["id"]: r for r in conn.execute(select(q.c.id, q.c.hostname, q.c.unit_path, q.c.state,
                                                    q.c.due_until)).mappings()}
    current = {d: r["state"] for d, r in rows.items()}
    wanted = set(sub["events"].split(","))
    changed = transitions(sub["snapshot"], current)
    events: dict[str, Any] = {}
    for event in (NOT_READY, SILENT):
        if event in wanted and changed[event]:
            ids = changed[event]
            events[event] = {"count": len(ids), "devices": [
                {"device_id": d, "hostname": rows[d]["hostname"], "unit": rows[d]["unit_path"],
                 "state": current[d], "previous": (sub["snapshot"] or {}).get(d),
                 **({"due_until": _iso(rows[d]["due_until"])} if current[d] == rd.DUE else {})}
                for d in ids[:MAX_LISTED]]}
    if EXCEPTION_EXPIRING in wanted:
        until = now + dt.timedelta(days=int(sub["exception_days"]))
        ending = [e for e in rd.list_exceptions(conn, sub_scope, now)
                  if e.status == "active" and e.expires_at <= until]
        ending.sort(key=lambda e: e.expires_at)
        if ending:
            events[EXCEPTION_EXPIRING] = {"count": len(ending), "days": int(sub["exception_days"]), "exceptions": [
                {"exception_id": e.id, "check_id": e.check_id, "device_id": e.device_id,
                 "hostname": e.device_hostname, "unit": e.unit_path, "expires_at": e.expires_at.isoformat()}
                for e in ending[:MAX_LISTED]]}
    summary = next(u for u in rd.unit_tree(conn, sub_scope, now, default_max_age_hours=default_max_age_hours)
                   if u.id == sub["unit_id"])
    if BELOW_TARGET in wanted and summary.ready_pct is not None and sub["target_pct"] is not None \
            and summary.ready_pct < sub["target_pct"]:
        events[BELOW_TARGET] = {"ready_pct": summary.ready_pct, "target_pct": sub["target_pct"]}
    if not events:
        return None, current
    return {"type": "auditagent.digest", "version": 1, "subscription_id": sub["id"], "unit_id": sub["unit_id"],
            "unit": unit["path"], "day": now.date().isoformat(), "generated_at": now.isoformat(),
            "lang": sub["lang"], "counts": dataclasses.asdict(summary.counts), "ready_pct": summary.ready_pct,
            "events": events}, current
