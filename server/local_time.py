"""The organisation's time zone and its days: one definition for the dashboard, the
exceptions, the trend and the store.

Stored times stay UTC; a date that is a date (an exception's last day, a trend day, the
day a report is filed under) is a day in this zone. Local days are not all 24 hours: in
Europe/Stockholm 2026-03-29 has 23 and 2026-10-25 has 25, so a day's end is always
computed from the local calendar (midnight after it), never as start + 24 h.
"""
from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ZONE = "Europe/Stockholm"  # the `serve --timezone` default (Europe/Copenhagen for Danish installs)

Zone = str | dt.tzinfo


@lru_cache(maxsize=8)
def time_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (ValueError for an unknown one)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Stockholm)") from exc


def as_tz(zone: Zone | None) -> dt.tzinfo:
    """A zone given by name or as a tzinfo (None: the default zone)."""
    if zone is None:
        return time_zone(DEFAULT_ZONE)
    return time_zone(zone) if isinstance(zone, str) else zone


def zone_name(zone: Zone | None) -> str:
    """The zone's IANA name (what caches are keyed by)."""
    tz = as_tz(zone)
    return getattr(tz, "key", None) or str(tz)


def local_midnight_after(day: dt.date, zone: Zone | None) -> dt.datetime:
    """The UTC instant a local date ends: an exception 'valid through 31 May' ends there,
    and so does a trend day."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), as_tz(zone)).astimezone(dt.timezone.utc)


def local_day(instant: dt.datetime, zone: Zone | None) -> dt.date:
    """The local date of an (aware) instant: the day a report is filed under."""
    return instant.astimezone(as_tz(zone)).date()


def local_today(now: dt.datetime, zone: Zone | None) -> dt.date:
    return local_day(now, zone)


def last_local_day(ends_at: dt.datetime, zone: Zone | None) -> dt.date:
    """The last local day a span that stops at ``ends_at`` covers (an exception's expiry)."""
    return (ends_at.astimezone(as_tz(zone)) - dt.timedelta(microseconds=1)).date()
