"""Failure throttling for log-in and enrolment, kept in the database so that every
collector process on one PostgreSQL (or SQLite) counts the same failures.

A *key* names what is counted (``pair:<user>|<addr>``, ``addr:<addr>``,
``account:<user>``, ``enroll:<addr>``); its :class:`Rule` says how many failures inside
the window start a block and how long the block lasts. Each block of the same key
within the window lasts twice as long as the one before (backoff), up to a cap.

Counting is one atomic upsert (``INSERT … ON CONFLICT DO UPDATE … RETURNING``): thirty
parallel wrong guesses count thirty, on SQLite and PostgreSQL alike. A blocked key
answers 429 with ``Retry-After`` before any password is hashed.

Why three keys for a log-in: a block on the account alone would let any stranger lock
the administrator out with five wrong passwords. So five failures block that account
*from that address* only (``pair``); one address failing against many accounts is
blocked on its own (``addr``); and only a flood at one account from many addresses
(``account``, far higher threshold, short blocks) slows the account for everyone.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, Iterable

from sqlalchemy import case, select, update
from sqlalchemy.engine import Connection

from server.db import throttle, utc
from server.store import ApiError


@dataclass(frozen=True)
class Rule:
    limit: int  # failures within `window` that start a block
    window: dt.timedelta  # a key quiet this long starts over
    block: dt.timedelta  # the first block; each further one doubles
    max_block: dt.timedelta

    def block_for(self, blocks_before: int) -> dt.timedelta:
        return min(self.max_block, self.block * (2 ** min(blocks_before, 20)))


H, M = dt.timedelta(hours=1), dt.timedelta(minutes=1)
RULES = {
    "pair": Rule(limit=5, window=H, block=15 * M, max_block=4 * H),
    "addr": Rule(limit=20, window=H, block=M, max_block=H),
    "account": Rule(limit=100, window=H, block=M, max_block=15 * M),
    "enroll": Rule(limit=10, window=H, block=M, max_block=H),
}


def source_of(request: Any) -> str:
    """The client's address. Behind the shipped nginx, uvicorn has already put the real
    client from X-Forwarded-For there (it trusts that header from 127.0.0.1 only)."""
    client = getattr(request, "client", None)
    return (getattr(client, "host", None) or "unknown")[:64]


def login_keys(username: str, source: str) -> list[str]:
    user = (username or "").strip().lower()[:100]
    return [f"pair:{user}|{source}", f"addr:{source}", f"account:{user}"]


def enroll_keys(source: str) -> list[str]:
    return [f"enroll:{source}"]


def _rule(key: str) -> Rule:
    return RULES[key.split(":", 1)[0]]


def retry_after(conn: Connection, keys: Iterable[str], now: dt.datetime) -> int | None:
    """Seconds until every one of ``keys`` is unblocked; None if none is blocked now."""
    keys = list(keys)
    rows = conn.execute(select(throttle.c.blocked_until).where(throttle.c.key.in_(keys),
                                                               throttle.c.blocked_until.is_not(None))).scalars().all()
    until = max((utc(u) for u in rows if utc(u) > now), default=None)  # type: ignore[operator,type-var]
    if until is None:
        return None
    return max(1, math.ceil((until - now).total_seconds()))


def _upsert(conn: Connection):  # the dialect's INSERT with ON CONFLICT
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def record_failure(conn: Connection, key: str, now: dt.datetime) -> dt.datetime | None:
    """Count one failure for ``key`` (atomically); if that reaches the rule's limit, block
    the key and return until when."""
    rule = _rule(key)
    insert = _upsert(conn)
    stale = now - rule.window
    t = throttle
    stmt = insert(t).values(key=key, failures=1, window_start=now, blocked_until=None, blocks=0)
    restart = t.c.window_start < stale
    stmt = stmt.on_conflict_do_update(index_elements=[t.c.key], set_={
        "failures": case((restart, 1), else_=t.c.failures + 1),
        "blocks": case((restart, 0), else_=t.c.blocks),
        "window_start": case((restart, now), else_=t.c.window_start),
    }).returning(t.c.failures, t.c.blocks)
    failures, blocks = conn.execute(stmt).one()
    if failures < rule.limit:
        return None
    until = now + rule.block_for(int(blocks))
    # Only the failure that reached the limit starts the block (the row is locked by the upsert).
    res = conn.execute(update(t).where(t.c.key == key, t.c.failures >= rule.limit)
                       .values(failures=0, blocks=t.c.blocks + 1, blocked_until=until, window_start=now))
    return until if res.rowcount == 1 else None


def clear(conn: Connection, key: str) -> None:
    conn.execute(update(throttle).where(throttle.c.key == key).values(failures=0, blocked_until=None, blocks=0))


class TooManyAttempts(ApiError):
    """429 with ``Retry-After``: this source (or account) failed too often; wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(429, "too_many_attempts", f"too many failed attempts; try again in {retry_after} s",
                         retry_after=retry_after)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


__all__ = ["RULES", "Rule", "login_keys", "enroll_keys", "retry_after", "record_failure", "clear",
           "TooManyAttempts"]
