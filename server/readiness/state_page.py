"""One page of a subtree's devices in one state, in hostname order — without judging every
device of the subtree first.

The state of a device is :func:`server.readiness.state.state_of`, computed in SQL per row
(:func:`server.readiness.state.device_state_rows`); this module only chooses which rows
to judge. How many devices of each state the subtree holds is known beforehand (the
counts kept at ingest), so the cost of the two ways to find a page can be told apart:

* **walk**: read the subtree's devices in (hostname, id) order off the ``devices``
  hostname index, a batch at a time (keyset: each batch starts after the last key), and
  judge only those — for a state that many of the fleet's devices are in, the first
  pages need a few hundred rows;
* **scan**: judge the subtree's devices that *can* be in the state (a necessary
  condition of the rule, :func:`state_candidates`, served by an index where the state is
  rare: stale by ``generated_at``, due by ``due_until``) and sort them — for a state few
  are in, or a page deep in the list.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

from sqlalchemy import and_, func, select, text, true, tuple_
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql import ColumnElement

from server.db import devices, unit_state_deltas
from server.readiness.cover import Cover
from server.readiness.scope import Scope
from server.readiness.sql import dialect, one_of, ts_param
from server.readiness.state import (DEFAULT_MAX_REPORT_AGE_HOURS, DUE, NEVER_REPORTED, NOT_READY, READY, STALE,
                                    device_state_rows, stale_clause)

MIN_BATCH = 64  # subtree devices judged per walked batch, at least
SLACK = 1.25  # batches a little longer than the expected share, so one batch usually does


def state_candidates(conn: Connection, rel: Any, state: str, now: dt.datetime, *,
                     default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> ColumnElement[bool]:
    """SQL on a relation with device_state's columns: a necessary condition of ``state``
    under the rule (its table in :mod:`server.readiness.state`) — never reported: no
    report; stale: :func:`stale_clause`; due: a grace deadline ahead and a failing check;
    not ready: a failing required check. It only narrows the rows judged: the state itself
    is still :func:`state_of`'s."""
    if state == NEVER_REPORTED:
        return rel.c.last_report_id.is_(None)
    if state == STALE:
        return stale_clause(conn, rel, now, default_max_age_hours=default_max_age_hours)
    if state == DUE:
        return and_(rel.c.last_report_id.is_not(None), rel.c.due_until > ts_param(now), rel.c.failing_required != "")
    if state == NOT_READY:
        return and_(rel.c.last_report_id.is_not(None), rel.c.failing_required != "")
    assert state == READY
    return true()


def fleet_size(conn: Connection) -> int:
    """About how many devices the fleet has: how long a walk over the hostname index is
    (it only chooses between two ways to the same rows). PostgreSQL's own estimate of the
    table's rows where it has one (kept by autovacuum; no read of the table), else the
    counts kept at ingest summed."""
    if dialect(conn) == "postgresql":
        est = conn.execute(text("SELECT reltuples FROM pg_class WHERE oid = 'devices'::regclass")).scalar()
        if est is not None and est > 0:
            return int(est)
    return int(conn.execute(select(func.coalesce(func.sum(unit_state_deltas.c.n), 0))).scalar_one())


def devices_in_state(conn: Connection, scope: Scope, now: dt.datetime, unit_ids: Sequence[int], state: str, *,
                     offset: int, limit: int, in_state: int, in_subtree: int, fleet: int, cover: Cover,
                     default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> list[RowMapping]:
    """Rows ``offset`` … ``offset + limit`` (device_state_rows' columns) of the devices of
    ``unit_ids`` in ``state``, in (hostname, id) order. ``in_state``: how many there are
    (known from the counts), ``in_subtree``: devices of ``unit_ids`` in any state,
    ``fleet``: of all units (the hostname index spans them all)."""
    if limit <= 0 or in_state <= 0:
        return []
    ds = device_state_rows(conn, scope, now, unit_ids=unit_ids, cover=cover,
                           default_max_age_hours=default_max_age_hours).subquery("ds")
    # Rows read either way: the walk reads the fleet's index in order until it has passed
    # offset + limit devices of the state; the scan reads the candidates of the subtree
    # (stale and due ones off their indexes, the others from every row of the subtree).
    walked = (offset + limit) * max(fleet, in_subtree) / in_state
    scanned = in_state if state in (STALE, DUE) else in_subtree
    if walked > scanned:
        q = (select(ds).where(ds.c.state == state,
                              state_candidates(conn, ds, state, now, default_max_age_hours=default_max_age_hours))
             .order_by(ds.c.hostname, ds.c.id).limit(limit).offset(offset))
        return list(conn.execute(q).mappings())
    return _walk(conn, ds, unit_ids, state, offset=offset, limit=limit, share=in_state / max(in_subtree, 1))


def _walk(conn: Connection, ds: Any, unit_ids: Sequence[int], state: str, *, offset: int, limit: int,
          share: float) -> list[RowMapping]:
    out: list[RowMapping] = []
    skip = offset
    last: tuple[str, str] | None = None
    d = devices
    while True:
        wanted = skip + limit - len(out)
        batch = max(MIN_BATCH, int(wanted / max(share, 1e-6) * SLACK))
        keys = select(d.c.hostname, d.c.id).where(one_of(d.c.unit_id, unit_ids))
        if last is not None:
            keys = keys.where(tuple_(d.c.hostname, d.c.id) > tuple_(*last))
        w = keys.order_by(d.c.hostname, d.c.id).limit(batch).subquery("walk")
        rows = conn.execute(select(w.c.hostname.label("walk_hostname"), w.c.id.label("walk_id"), ds)
                            .select_from(w.outerjoin(ds, ds.c.id == w.c.id))
                            .order_by(w.c.hostname, w.c.id)).mappings().all()
        for r in rows:
            if r["id"] is None or r["state"] != state:  # revoked, or in another state
                continue
            if skip:
                skip -= 1
                continue
            out.append(r)
            if len(out) == limit:
                return out
        if len(rows) < batch:
            return out
        last = (rows[-1]["walk_hostname"], rows[-1]["walk_id"])
