"""Exports of a unit's devices (rows, CSV).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any, Iterator

from sqlalchemy import select
from sqlalchemy.engine import Connection

from server.readiness.devices import device_rows
from server.readiness.scope import Scope, scope_unit_ids, visible_unit
from server.readiness.state import DEFAULT_MAX_REPORT_AGE_HOURS, device_state_rows
from server.readiness.versions import agent_versions

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
        for d in device_rows(conn, now, rows, newest):
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

