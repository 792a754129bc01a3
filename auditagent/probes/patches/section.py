"""The ``patches`` section as Windows and macOS build it: one definition of its shape,
ISO dates, and how long pending updates have been seen."""
from __future__ import annotations

import datetime as _dt
from typing import Any

from auditagent.probes import Cache, section_status


def pending_oldest_days(cache: Cache, key: str, names: list[str], now: _dt.datetime) -> float | None:
    """How long the oldest of ``names`` has been seen pending *by this agent*.

    The update tools do not say when an update became available, so the agent remembers
    when it first saw each one (a small JSON in the agent's cache). Names no longer pending
    are forgotten, so an update that comes back later starts from zero again."""
    if not names:
        return None
    seen = cache.load(key)
    if not isinstance(seen, dict):
        seen = {}
    kept: dict[str, str] = {}
    for name in names:
        kept[name] = seen.get(name) or now.isoformat(timespec="seconds")
    cache.store(key, kept)
    oldest = min(_dt.datetime.fromisoformat(v) for v in kept.values())
    return round(max((now - oldest).total_seconds(), 0.0) / 86400.0, 2)


def iso_date(value: _dt.datetime | _dt.date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.astimezone(_dt.timezone.utc).isoformat(timespec="seconds")
    return _dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc).isoformat(timespec="seconds")


def patches_section(*, manager: str, last_update: str | None, pending: int | None, pending_security: int | None,
                    oldest_days: float | None, names: list[str], reboot: bool | None, reasons: list[str],
                    cached_at: str | None = None, cache_ttl_seconds: int | None = None,
                    max_names: int = 20, offered_upgrades: list[str] | None = None) -> dict[str, Any]:
    """The ``patches`` section (docs/facts.md), one definition for Windows and macOS."""
    return {
        "status": section_status([last_update, pending, reboot], reasons),
        "reasons": reasons,
        "manager": manager,
        "last_update": last_update,
        "pending": pending,
        "pending_security": pending_security,
        "pending_security_oldest_days": oldest_days,
        "pending_names": names[:max_names],
        "reboot_required": reboot,
        "offered_upgrades": (offered_upgrades or [])[:max_names],
        "cached_at": cached_at,
        "cache_ttl_seconds": cache_ttl_seconds,
    }
