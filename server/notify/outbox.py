"""The durable outbox: digests wait here until delivered. Several collector processes
may run the worker at once: a row is claimed by moving its ``next_attempt_at`` forward
in one conditional UPDATE (only one process sees its UPDATE match), so no digest is
sent twice in parallel, and none is lost when a process stops midway (the lease ends)."""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from server.db import notify_outbox as outbox
from server.db import utc

LEASE = dt.timedelta(minutes=5)
FIRST_RETRY = dt.timedelta(minutes=1)
MAX_RETRY = dt.timedelta(hours=6)


def backoff(attempts: int) -> dt.timedelta:
    """1, 2, 4, 8 … minutes after the 1st, 2nd, 3rd … failure, at most 6 hours."""
    return min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), MAX_RETRY)


def enqueue(conn: Connection, subscription_id: int, day: dt.date, digest: dict[str, Any], now: dt.datetime) -> bool:
    """Add the day's digest; False if that day's is already there (another process)."""
    try:
        with conn.begin_nested():
            conn.execute(insert(outbox).values(subscription_id=subscription_id, day=day, created_at=now,
                                               payload=json.dumps(digest, ensure_ascii=False), next_attempt_at=now,
                                               attempts=0))
    except IntegrityError:
        return False
    return True


@dataclass(frozen=True)
class Claimed:
    id: int
    subscription_id: int
    payload: dict[str, Any]
    attempts: int


def claim_due(conn: Connection, now: dt.datetime, limit: int = 20) -> list[Claimed]:
    rows = conn.execute(select(outbox.c.id, outbox.c.subscription_id, outbox.c.payload, outbox.c.attempts,
                               outbox.c.next_attempt_at)
                        .where(outbox.c.delivered_at.is_(None), outbox.c.failed_at.is_(None),
                               outbox.c.next_attempt_at <= now)
                        .order_by(outbox.c.next_attempt_at).limit(limit)).all()
    claimed = []
    for r in rows:
        won = conn.execute(update(outbox).where(outbox.c.id == r.id, outbox.c.next_attempt_at == r.next_attempt_at,
                                                outbox.c.delivered_at.is_(None))
                           .values(next_attempt_at=now + LEASE)).rowcount
        if won == 1:
            claimed.append(Claimed(r.id, r.subscription_id, json.loads(r.payload), r.attempts))
    return claimed


def delivered(conn: Connection, row_id: int, now: dt.datetime) -> None:
    conn.execute(update(outbox).where(outbox.c.id == row_id).values(delivered_at=now, last_error=None))


def failed(conn: Connection, row_id: int, attempts: int, error: str, now: dt.datetime, max_attempts: int) -> None:
    values: dict[str, Any] = {"attempts": attempts, "last_error": error[:500]}
    if attempts >= max_attempts:
        values["failed_at"] = now
    else:
        values["next_attempt_at"] = now + backoff(attempts)
    conn.execute(update(outbox).where(outbox.c.id == row_id).values(**values))


def depth(conn: Connection) -> int:
    """Digests not yet delivered nor given up: the queue the metrics show."""
    return int(conn.execute(select(func.count()).select_from(outbox)
                            .where(outbox.c.delivered_at.is_(None), outbox.c.failed_at.is_(None))).scalar_one())


def next_attempt(conn: Connection, row_id: int) -> dt.datetime | None:
    return utc(conn.execute(select(outbox.c.next_attempt_at).where(outbox.c.id == row_id)).scalar())
