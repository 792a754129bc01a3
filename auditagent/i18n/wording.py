"""Message arguments as a person reads them: product names instead of internal ids,
"5 minuter" instead of "305 sekunder", "i går" instead of "1 dagar sedan", the OS
name once. (Probe reasons are codes, translated by :func:`auditagent.i18n.reason_text`.)

Pure functions of (code, args, lang); :func:`auditagent.i18n.translate` applies them,
so the self-check and the dashboard say the same thing. The words live in the
catalogs (``product.*``, ``firewall_product.*``, ``platform.*``, ``section_name.*``, ``time.*``)."""
from __future__ import annotations

from typing import Any, Callable

from auditagent.i18n.plural import plural_key

# Arguments holding a number of days / seconds, per message code.
_DAYS_AGO = {"patches.last_update_ok": "days", "patches.last_update_old": "days"}
_DAY_COUNTS = {"patches.last_update_old": ("max",), "patches.pending_security_old": ("days", "max"),
               "av.signatures_old": ("days", "max")}
_SECONDS = {"screen.ok": ("seconds",), "screen.too_long": ("seconds", "max")}


def days_ago(days: Any, lang: str, lookup: Callable[[str], str]) -> str:
    try:
        n = int(days)
    except (TypeError, ValueError):
        return str(days)
    if n <= 0:
        return lookup("time.today")
    if n == 1:
        return lookup("time.yesterday")
    return lookup(plural_key("time.days_ago", n)).format(n=n)


def count_days(days: Any, lookup: Callable[[str], str]) -> str:
    try:
        n = int(days)
    except (TypeError, ValueError):
        return str(days)
    return lookup(plural_key("time.day", n)).format(n=n)


def duration(seconds: Any, lookup: Callable[[str], str]) -> str:
    """Seconds as people say them: 45 sekunder, 5 minuter, 90 minuter, 1 timme, 2 timmar."""
    try:
        s = int(round(float(seconds)))
    except (TypeError, ValueError):
        return str(seconds)
    if s < 60 or s % 60 and s < 600:
        # Under ten minutes, odd seconds matter ("305 s" is 5 minutes and 5 seconds).
        if s >= 60:
            m, rest = divmod(s, 60)
            return lookup("time.minutes_seconds").format(m=m, s=rest)
        return lookup(plural_key("time.second", s)).format(n=s)
    minutes = round(s / 60)
    if minutes < 60 or minutes % 60:
        return lookup(plural_key("time.minute", minutes)).format(n=minutes)
    hours = minutes // 60
    return lookup(plural_key("time.hour", hours)).format(n=hours)


def os_label(name: Any, version: Any) -> str:
    """ "Debian GNU/Linux 12 (bookworm)" and "12" → the name alone; "macOS" and "14.4" → "macOS 14.4"."""
    name, version = str(name or "").strip(), str(version or "").strip()
    if not version or version == "?" or version in name:
        return name or version
    return f"{name} {version}"


def _names(value: Any, prefix: str, lookup: Callable[[str], str | None]) -> Any:
    if isinstance(value, (list, tuple)):
        return [_names(v, prefix, lookup) for v in value]
    if isinstance(value, str):
        return lookup(prefix + value) or value
    return value


def prepare(code: str, args: dict[str, Any], lang: str, find: Callable[[str], str | None]
            ) -> tuple[str, dict[str, Any]]:
    """(code, args) → (code, args) in words; ``find(key)`` looks a catalog entry up (None if absent)."""
    def lookup(key: str) -> str:
        return find(key) or key

    out = dict(args)
    for key in ("client", "clients"):
        if key in out:
            out[key] = _names(out[key], "product.", find)
    if "backend" in out:
        out["backend"] = _names(out["backend"], "firewall_product.", find)
    if "platform" in out:
        out["platform"] = _names(out["platform"], "platform.", find)
    if "section" in out:
        out["section"] = _names(out["section"], "section_name.", find)
    if code.startswith("os.") and "name" in out:
        out["name"] = os_label(out.get("name"), out.get("version"))
    if code in _DAYS_AGO:
        out[_DAYS_AGO[code]] = days_ago(out.get(_DAYS_AGO[code]), lang, lookup)
    for key in _DAY_COUNTS.get(code, ()):
        if key in out and not (code in _DAYS_AGO and key == _DAYS_AGO[code]):
            out[key] = count_days(out[key], lookup)
    for key in _SECONDS.get(code, ()):
        if key in out:
            out[key] = duration(out[key], lookup)
    return code, out
