"""Subscriptions: one officer, one unit subtree, some events, one channel."""
from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from server import readiness as rd
from server.db import notify_subscriptions as subs
from server.db import units, utc, write_audit
from server.notify.config import NotifyConfig
from server.notify.events import BELOW_TARGET, CHANNELS, EVENTS
from server.notify.messages import LANGS
from server.store import ApiError

_EMAIL = re.compile(r"^[^@\s<>\"'(),;:\\]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")


@dataclass(frozen=True)
class SubscriptionInfo:
    id: int
    unit_id: int
    unit: str
    channel: str
    target: str
    events: list[str]
    exception_days: int
    target_pct: int | None
    lang: str
    created_at: dt.datetime
    last_digest_day: dt.date | None


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "invalid", f"{field}: {message}", field=field)


def check_target(channel: str, target: str, config: NotifyConfig | None) -> str:
    target = (target or "").strip()
    if channel == "email":
        if not _EMAIL.match(target):
            raise _invalid("target", "an e-mail address, e.g. it-sakerhet@kommun.se")
        return target
    if channel != "webhook":
        raise _invalid("channel", " or ".join(CHANNELS))
    parts = urlsplit(target)
    from server.oidc import is_loopback_host

    host = (parts.hostname or "").lower()
    if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback_host(host)):
        raise _invalid("target", "an https:// URL")
    allowed = config.webhook_allowed_hosts if config else ()
    if host not in allowed:
        raise ApiError(422, "webhook_not_allowed", f"target: webhooks go only to hosts the collector's "
                                                   f"configuration allows (webhook_allowed_hosts); {host!r} is not "
                                                   "one", field="target")
    return target


def subscribe(conn: Connection, user: Any, *, unit_id: int, channel: str, target: str, events: list[str],
              exception_days: int = 14, target_pct: int | None = None, lang: str | None = None,
              config: NotifyConfig | None = None, now: dt.datetime | None = None) -> tuple[SubscriptionInfo, str | None]:
    """(the subscription, its webhook secret — shown once); 404 for a unit the user
    cannot see, 422 for anything else wrong. Nothing is stored on refusal."""
    now = utc(now) or dt.datetime.now(dt.timezone.utc)
    rd.visible_unit(conn, rd.Scope.for_user(user), unit_id)
    target = check_target(channel, target, config)
    wanted = sorted(set(events or ()))
    if not wanted or any(e not in EVENTS for e in wanted):
        raise _invalid("events", "one or more of " + ", ".join(EVENTS))
    if not 1 <= int(exception_days) <= 90:
        raise _invalid("exception_days", "1 to 90")
    if BELOW_TARGET in wanted and target_pct is None:
        raise _invalid("target_pct", f"required with {BELOW_TARGET} (1 to 100)")
    if target_pct is not None and not 1 <= int(target_pct) <= 100:
        raise _invalid("target_pct", "1 to 100")
    lang = lang or getattr(user, "lang", None) or "sv"
    if lang not in LANGS:
        raise _invalid("lang", " or ".join(LANGS))
    secret = secrets.token_urlsafe(32) if channel == "webhook" else None
    sid = conn.execute(insert(subs).values(
        user_id=user.id, unit_id=unit_id, channel=channel, target=target, secret=secret, events=",".join(wanted),
        exception_days=int(exception_days), target_pct=target_pct, lang=lang, created_at=now)
        .returning(subs.c.id)).scalar_one()

    write_audit(conn, user.id, "subscription.create", "subscription", sid,
                {"unit_id": unit_id, "channel": channel, "events": wanted}, now)
    info = next(s for s in list_subscriptions(conn, user.id) if s.id == sid)
    return info, secret


def list_subscriptions(conn: Connection, user_id: int) -> list[SubscriptionInfo]:
    rows = conn.execute(select(subs, units.c.path).join(units, units.c.id == subs.c.unit_id)
                        .where(subs.c.user_id == user_id).order_by(subs.c.id)).mappings()
    return [SubscriptionInfo(id=r["id"], unit_id=r["unit_id"], unit=r["path"], channel=r["channel"],
                             target=r["target"], events=r["events"].split(","), exception_days=r["exception_days"],
                             target_pct=r["target_pct"], lang=r["lang"], created_at=utc(r["created_at"]),  # type: ignore[arg-type]
                             last_digest_day=r["last_digest_day"]) for r in rows]


def unsubscribe(conn: Connection, user: Any, subscription_id: int, now: dt.datetime | None = None) -> None:
    """Delete the user's own subscription (and its undelivered digests); 404 otherwise."""
    from server.db import notify_outbox

    owned = conn.execute(select(subs.c.id).where(subs.c.id == subscription_id, subs.c.user_id == user.id)).first()
    if owned is None:
        raise ApiError(404, "not_found", f"subscription {subscription_id}: not found")
    conn.execute(delete(notify_outbox).where(notify_outbox.c.subscription_id == subscription_id))
    conn.execute(delete(subs).where(subs.c.id == subscription_id))
    write_audit(conn, user.id, "subscription.delete", "subscription", subscription_id, {},
                utc(now) or dt.datetime.now(dt.timezone.utc))
