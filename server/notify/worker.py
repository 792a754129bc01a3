"""The notification loop: make the day's digests once the digest hour has come, then
deliver what is due from the outbox. ``run_once`` is the whole of one pass (tests call
it with a fixed ``now``); :class:`Worker` runs it every minute in a thread of ``serve``.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from server import auth
from server import readiness as rd
from server.db import notify_subscriptions as subs
from server.notify import channels, digest, outbox
from server.notify.config import NotifyConfig
from server.periodic import Periodic

log = structlog.get_logger("auditagent.notify")
INTERVAL_SECONDS = 60


@dataclass(frozen=True)
class Pass:
    digests: int
    delivered: int
    failed: int


def make_digests(engine: Engine, config: NotifyConfig, now: dt.datetime, *,
                 default_max_age_hours: int = rd.DEFAULT_MAX_REPORT_AGE_HOURS) -> int:
    """One digest per subscription and UTC day, from the digest hour on; each
    subscription in its own transaction (one that fails does not stop the rest)."""
    if now.hour < config.digest_hour_utc:
        return 0
    today = now.date()
    with engine.connect() as conn:
        ids = [r.id for r in conn.execute(select(subs.c.id).where(
            (subs.c.last_digest_day.is_(None)) | (subs.c.last_digest_day < today)))]
    made = 0
    for sid in ids:
        with engine.begin() as conn:
            sub = conn.execute(select(subs).where(subs.c.id == sid)).mappings().first()
            if sub is None or (sub["last_digest_day"] is not None and sub["last_digest_day"] >= today):
                continue  # another process got there first
            user = auth.get_user(conn, sub["user_id"])
            snapshot: dict[str, str] | None = sub["snapshot"]
            payload = None
            if user is not None:
                try:
                    payload, snapshot = digest.build(conn, sub, user, now, default_max_age_hours=default_max_age_hours)
                except rd.NotFound:
                    log.info("subscription_out_of_scope", subscription_id=sid)
            if payload is not None and outbox.enqueue(conn, sid, today, payload, now):
                made += 1
            conn.execute(update(subs).where(subs.c.id == sid).values(last_digest_day=today, snapshot=snapshot))
    return made


def deliver_due(engine: Engine, config: NotifyConfig, now: dt.datetime) -> tuple[int, int]:
    """(delivered, failed attempts) for what is due; each claim is committed before
    sending, so a crash midway leaves the row to be retried when its lease ends."""
    with engine.begin() as conn:
        claimed = outbox.claim_due(conn, now)
    ok = bad = 0
    for item in claimed:
        with engine.connect() as conn:
            sub = conn.execute(select(subs).where(subs.c.id == item.subscription_id)).mappings().first()
        try:
            if sub is None:
                raise channels.DeliveryError("subscription deleted")
            if sub["channel"] == "email":
                channels.send_email(config, sub["target"], item.payload)
            else:
                channels.send_webhook(config, sub["target"], sub["secret"], item.payload)
        except channels.DeliveryError as exc:
            bad += 1
            log.warning("notification_failed", outbox_id=item.id, attempt=item.attempts + 1, error=str(exc))
            with engine.begin() as conn:
                outbox.failed(conn, item.id, item.attempts + 1, str(exc), now, config.max_attempts)
            continue
        ok += 1
        with engine.begin() as conn:
            outbox.delivered(conn, item.id, now)
    return ok, bad


def run_once(engine: Engine, config: NotifyConfig, now: dt.datetime | None = None, **kw: Any) -> Pass:
    now = now or dt.datetime.now(dt.timezone.utc)
    made = make_digests(engine, config, now, **kw)
    ok, bad = deliver_due(engine, config, now)
    return Pass(made, ok, bad)


class Worker(Periodic):
    """``run_once`` every minute in a daemon thread until ``stop()``."""

    def __init__(self, engine: Engine, config: NotifyConfig, **kw: Any) -> None:
        self.engine, self.config, self.kw = engine, config, kw
        super().__init__("notify-worker", lambda: run_once(engine, config, **kw), INTERVAL_SECONDS,
                         log_event="notify_pass_failed", logger="auditagent.notify")
