"""Grace periods on the laptop: when each failing check's run started and its deadline,
so the self-check can say "åtgärda senast 3 december".

The collector keeps the authoritative copy (``device_checks.failing_since`` /
``due_until``, written at ingest by server/report_write.py); the agent keeps the same
rule over the reports it signs itself (``failing-runs.json`` in its state folder), so
its deadline is the one the collector computes from those reports:

* a check not met (fail or unknown) whose previous report also had it not met keeps its
  run: the same start, the same deadline (a later policy change moves neither);
* a check newly not met starts a run at this report's time, with the deadline
  start + the check's ``grace_hours`` in this report's policy (none without);
* a check met ends its run.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Iterable

from auditagent.durable import atomic_write

RUNS_FILE = "failing-runs.json"
NOT_MET = ("fail", "unknown")


def next_runs(previous: dict[str, dict[str, Any]], results: Iterable[Any],
              at: dt.datetime) -> dict[str, dict[str, Any]]:
    """The failing runs after a report at ``at`` with ``results`` (evaluate.Result), given
    the runs after the previous one: check id → {"since": ISO, "due": ISO or None}. Pure."""
    out: dict[str, dict[str, Any]] = {}
    for r in results:
        if r.status not in NOT_MET:
            continue
        if r.check_id in previous:
            out[r.check_id] = previous[r.check_id]
            continue
        due = at + dt.timedelta(hours=r.grace_hours) if r.grace_hours else None
        out[r.check_id] = {"since": _iso(at), "due": _iso(due) if due else None}
    return out


def deadlines(runs: dict[str, dict[str, Any]]) -> dict[str, dt.datetime]:
    """Check id → grace deadline, of the runs that have one."""
    out = {}
    for cid, run in runs.items():
        due = _parse(run.get("due"))
        if due is not None:
            out[cid] = due
    return out


def load_runs(state: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((Path(state) / RUNS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, dict) and _parse(v.get("since"))}


def save_runs(state: Path, runs: dict[str, dict[str, Any]]) -> None:
    atomic_write(Path(state) / RUNS_FILE, (json.dumps(runs, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _parse(value: Any) -> dt.datetime | None:
    try:
        t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else None
