"""Small helpers the Windows and macOS probes share (the Linux probes keep their own).

Pure functions only: section status, cloud client records, "first seen" ages of pending
updates, home-folder shortening for evidence strings.
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Callable, Iterable

from auditagent.probes import Cache, ProbeContext


def section_status(values: Iterable[Any], reasons: list[str]) -> str:
    """``ok`` when every core value was seen, ``unknown`` when none was, else ``partial``.
    A reason alone (e.g. a fallback that was needed) does not lower ``ok``: the values decide."""
    seen = [v is not None for v in values]
    if seen and all(seen):
        return "ok"
    if any(seen):
        return "partial"
    return "unknown"


def new_client(name: str) -> dict[str, Any]:
    return {"name": name, "installed": False, "running": False, "accounts": [], "evidence": []}


def add_account(client: dict[str, Any], account: dict[str, Any]) -> None:
    """Accounts are deduplicated: the same account is often seen in two places (HKCU and
    HKU\\<sid>, a CloudStorage folder and the app's config)."""
    if account not in client["accounts"]:
        client["accounts"].append(account)


def add_evidence(client: dict[str, Any], evidence: str) -> None:
    if evidence not in client["evidence"]:
        client["evidence"].append(evidence)


def shorten_home(path: str, homes: Iterable[str]) -> str:
    """``C:\\Users\\anna\\AppData\\…`` → ``~\\AppData\\…`` (facts.md: evidence never names people)."""
    for home in sorted(homes, key=len, reverse=True):
        if home and path.lower().startswith(home.lower().rstrip("\\/")):
            rest = path[len(home.rstrip("\\/")):]
            if not rest or rest[0] in "\\/":
                return "~" + rest
    return path


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


ConfigParser = Callable[[str], Iterable[dict[str, Any]]]


def read_client_configs(ctx: ProbeContext, clients: dict[str, dict[str, Any]],
                        files: Iterable[tuple[str, str, ConfigParser]], homes: list[str],
                        reasons: list[str]) -> None:
    """Sync clients' own config files (Dropbox info.json, Nextcloud/ownCloud .cfg): a file
    that exists marks the client installed; its accounts are added; an unreadable one is a reason."""
    for name, path, parser in files:
        try:
            text = ctx.host.read_text(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            reasons.append(f"{shorten_home(path, homes)}: {exc.__class__.__name__}")
            continue
        c = clients.setdefault(name, new_client(name))
        c["installed"] = True
        add_evidence(c, f"file:{shorten_home(path, homes)}")
        try:
            for acc in parser(text):
                add_account(c, acc)
        except ValueError:
            reasons.append(f"{shorten_home(path, homes)}: not readable as {name} config")


def patches_section(*, manager: str, last_update: str | None, pending: int | None, pending_security: int | None,
                    oldest_days: float | None, names: list[str], reboot: bool | None, reasons: list[str],
                    cached_at: str | None = None, cache_ttl_seconds: int | None = None,
                    max_names: int = 20) -> dict[str, Any]:
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
        "cached_at": cached_at,
        "cache_ttl_seconds": cache_ttl_seconds,
    }
