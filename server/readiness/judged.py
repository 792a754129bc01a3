"""The time-dependent inputs of each device's state, judged and stored (issue 13 item 4).

A device's state (:func:`server.readiness.state.state_of`, the one definition) depends on
the moment through two inputs only: whether its latest report is stale and whether its
earliest grace deadline is still ahead. Both are stored on its row
(``device_state.counted_stale`` / ``counted_due``) and counted in ``unit_state_deltas``
(its group key includes them), with the span of moments they hold for:
[``judged_from``, ``judge_again_at``), NULL meaning unbounded. A page counts the kept
groups and judges by their own row only the devices whose span does not hold the moment
asked (normally few), plus the units whose max report age changed since their devices
were judged (:func:`unsettled_units`). So a page is right whether or not the sweep ran;
the sweep (:func:`sweep`) only keeps that set small.

Who writes the flags:

* ingest (``server/report_write.py``), in the same UPDATE that stores the report:
  :func:`ingest_judgement`, judged at the report's ``generated_at``;
* the sweep: :func:`judge_devices` at its moment, for the devices whose span has ended,
  and every device of a unit whose max report age changed (:func:`settle_ages`).

The stale and within-grace tests the sweep applies are the pages' own
(:func:`server.readiness.state.stale_clause`); the spans are moments computed from the
same inputs (``generated_at`` + the max age; ``due_until``). Exceptions do not enter:
they are applied by ``state_of`` at read time, as before.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Integer, and_, bindparam, case, null, or_, select, text, update
from sqlalchemy.engine import Connection, Engine

from server.db import device_state, unit_judged_ages
from server.periodic import Periodic
from server.judged_sql import AGES_LOCK_KEY, plus_hours_expr
from server.readiness.sql import dialect, one_of, ts_param
from server.readiness.state import hours_in_force, stale_clause, unsettled_units

SWEEP_LOCK_KEY = "judged-sweep"  # one sweeper at a time across collectors and workers
SWEEP_BATCH = 5_000


def _hours_in_force(ages: dict[int, int], default: int) -> Any:
    """SQL: the hours in force for ``device_state.unit_id``, every unit id and hour a bound
    parameter (one :func:`one_of` per distinct hours other than ``default``)."""
    by_hours: dict[int, list[int]] = {}
    for uid, h in ages.items():
        if h != default:
            by_hours.setdefault(int(h), []).append(int(uid))

    def hours(h: int) -> Any:
        return bindparam(None, int(h), type_=Integer)

    if not by_hours:
        return hours(default)
    return case(*[(one_of(device_state.c.unit_id, sorted(ids)), hours(h)) for h, ids in sorted(by_hours.items())],
                else_=hours(default))


def judge_devices(conn: Connection, now: dt.datetime, where: Any, *, default_max_age_hours: int) -> int:
    """Judge the devices matching ``where`` (a clause on device_state) at ``now`` and store
    flags and span; the counts follow through the triggers of 0017/0022. Returns the rows."""
    s = device_state
    on = dialect(conn)
    in_force = hours_in_force(conn, default_max_age_hours)
    stale = stale_clause(conn, s, now, default_max_age_hours=default_max_age_hours)
    grace = and_(s.c.due_until.is_not(None), s.c.due_until > ts_param(now))
    ends = plus_hours_expr(on, s.c.generated_at, _hours_in_force(in_force, default_max_age_hours))
    never = s.c.last_report_id.is_(None)
    values = {
        "counted_stale": case((stale, 1), else_=0),
        "counted_due": case((and_(~stale, grace), 1), else_=0),
        "judged_from": case((never, null()), (stale, ends),
                            (and_(s.c.due_until.is_not(None), ~grace), s.c.due_until), else_=null()),
        "judge_again_at": case((or_(never, stale), null()), (and_(grace, s.c.due_until < ends), s.c.due_until),
                               else_=ends),
    }
    return int(conn.execute(update(s).where(where).values(**values)).rowcount)


def settle_ages(conn: Connection, now: dt.datetime, *, default_max_age_hours: int) -> list[int]:
    """Store the hours in force for each unsettled unit and judge its devices again with
    them, in the caller's transaction. On PostgreSQL under the exclusive ages lock: the
    ingest batches in flight finish first and later ones read the new hours."""
    if not unsettled_units(conn, default_max_age_hours):
        return []
    if dialect(conn) == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": AGES_LOCK_KEY})
        conn.info.pop("own_max_ages", None)  # read the settings again under the lock
    changed = list(unsettled_units(conn, default_max_age_hours))
    if not changed:
        return []
    in_force = hours_in_force(conn, default_max_age_hours)
    conn.execute(unit_judged_ages.delete().where(one_of(unit_judged_ages.c.unit_id, changed)))
    conn.execute(unit_judged_ages.insert(), [{"unit_id": u, "hours": in_force[u]} for u in changed])
    judge_devices(conn, now, one_of(device_state.c.unit_id, changed), default_max_age_hours=default_max_age_hours)
    return changed


def sweep_once(conn: Connection, now: dt.datetime, *, default_max_age_hours: int,
               limit: int = SWEEP_BATCH) -> int:
    """Judge again up to ``limit`` devices whose stored span has ended by ``now``, in the
    caller's transaction. PostgreSQL: rows an ingest holds are skipped (it judges them
    itself). Returns the devices judged."""
    s = device_state
    q = select(s.c.device_id).where(s.c.judge_again_at <= ts_param(now)).order_by(s.c.judge_again_at).limit(limit)
    if dialect(conn) == "postgresql":
        q = q.with_for_update(skip_locked=True)
    ids = list(conn.execute(q).scalars())
    if not ids:
        return 0
    return judge_devices(conn, now, one_of(s.c.device_id, ids), default_max_age_hours=default_max_age_hours)


def sweep(engine: Engine, now: dt.datetime | None = None, *, default_max_age_hours: int,
          limit: int = SWEEP_BATCH, rounds: int | None = None) -> int:
    """Settle changed max ages, then judge again every device whose span has ended, in
    transactions of ``limit`` devices. Only one sweeper at a time (a try-lock on
    PostgreSQL; the others return 0 at once). Returns the devices judged."""
    t = now or dt.datetime.now(dt.timezone.utc)
    total = 0
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            if not conn.execute(text("SELECT pg_try_advisory_lock(hashtext(:k))"), {"k": SWEEP_LOCK_KEY}).scalar():
                conn.rollback()
                return 0
            conn.commit()
        try:
            with conn.begin():
                total += len(settle_ages(conn, t, default_max_age_hours=default_max_age_hours))
            done = 0
            while rounds is None or done < rounds:
                with conn.begin():
                    n = sweep_once(conn, t, default_max_age_hours=default_max_age_hours, limit=limit)
                total += n
                done += 1
                if n < limit:
                    break
        finally:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": SWEEP_LOCK_KEY})
                conn.commit()
    return total


SWEEP_EVERY_SECONDS = 60


def sweeper(engine: Engine, *, default_max_age_hours: int, every: float = SWEEP_EVERY_SECONDS) -> Periodic:
    """:func:`sweep` every ``every`` seconds in a daemon thread (one per collector host;
    with several hosts the sweep's try-lock lets one sweep at a time). Call ``start()``."""
    return Periodic("judged-sweep", lambda: sweep(engine, default_max_age_hours=default_max_age_hours), every,
                    log_event="judged_sweep_failed", logger="auditagent.judged")
