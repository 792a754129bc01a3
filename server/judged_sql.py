"""SQL text of the stored judgement that ingest writes (server/readiness/judged.py says
what it is): kept apart from :mod:`server.readiness` so the ingest writer
(server/report_write.py) needs nothing of the pages."""
from __future__ import annotations

from typing import Any

from sqlalchemy import DateTime, Interval, func, type_coerce

# The settle step's exclusive lock; every ingest batch holds it shared (report_write's
# first statement), so a batch never stores a judgement made with hours being changed.
AGES_LOCK_KEY = "judged-ages"


def plus_hours(on: str, ts: str, hours: str) -> str:
    """SQL text: timestamp ``ts`` plus ``hours`` (an integer SQL expression); NULL if either is.
    SQLite keeps the stored microseconds (the pages compare the same text form)."""
    if on == "postgresql":
        return f"({ts} + make_interval(hours => {hours}))"
    return f"(strftime('%Y-%m-%d %H:%M:%S', {ts}, '+' || ({hours}) || ' hours') || substr({ts}, 20))"


def plus_hours_expr(on: str, ts: Any, hours: Any) -> Any:
    """SQL expression: timestamp ``ts`` plus ``hours`` (an integer SQL expression, bound
    values welcome); NULL if either is. The same SQL as :func:`plus_hours`, built by
    SQLAlchemy rather than as text."""
    if on == "postgresql":
        return ts + func.make_interval(0, 0, 0, 0, hours, type_=Interval)
    shifted = func.strftime("%Y-%m-%d %H:%M:%S", ts, func.printf("+%d hours", hours))
    return type_coerce(shifted.concat(func.substr(ts, 20)), DateTime(timezone=True))


def ingest_judgement(on: str, generated_at: str, due_until: str, unit_id: str) -> str:
    """SQL text: the SET assignments judging a device that has just reported (``generated_at``,
    ``due_until`` and ``unit_id`` are its new values as SQL). Judged at ``generated_at``:
    never stale then; within grace iff the deadline is after it. The span: until the report
    turns stale or the deadline passes, whichever comes first; a deadline already passed at
    ``generated_at`` starts the span. A unit without judged hours gives an empty span (its
    devices are judged one by one until the sweep settles it)."""
    ends = (f"COALESCE((SELECT {plus_hours(on, generated_at, 'a.hours')} FROM unit_judged_ages a "
            f"WHERE a.unit_id = {unit_id}), {generated_at})")
    return (f"counted_stale = 0, counted_due = CASE WHEN {due_until} > {generated_at} THEN 1 ELSE 0 END, "
            f"judged_from = CASE WHEN {due_until} <= {generated_at} THEN {due_until} END, "
            f"judge_again_at = CASE WHEN {due_until} > {generated_at} AND {due_until} < {ends} "
            f"THEN {due_until} ELSE {ends} END")
