"""macOS ``screen_lock`` section.

An idle Mac locks when the screen saver starts (``idleTime``) or the display sleeps
(``pmset displaysleep``), whichever comes first, plus the password delay
(``askForPasswordDelay``), provided a password is asked for at all (``askForPassword`` /
``sysadminctl -screenLock``). Sources, structured first:

* configuration profiles: /Library/Managed Preferences[/<user>]/com.apple.screensaver.plist
  (keys idleTime, askForPassword, askForPasswordDelay) — they override the user;
* the user's ~/Library/Preferences/ByHost/com.apple.screensaver.<uuid>.plist idleTime
  (what ``defaults -currentHost read com.apple.screensaver idleTime`` reads);
* ``sysadminctl -screenLock status`` (it prints to stderr) and ``pmset -g``.

``pmset -g`` is read from real captures (``displaysleep N`` in minutes, 0 = never).
``sysadminctl -screenLock status`` logs through NSLog (``2026-… sysadminctl[pid:tid]
screenLock delay is immediate``); real captures from macOS 14.8.7 to 27 show the three forms
read — ``screenLock delay is N seconds``, ``screenLock delay is immediate``, ``screenLock is
off``; anything else (a setter's "Unknown state for screenLock (0)") leaves it unknown.
"""
from __future__ import annotations

import plistlib
import re
from typing import Any

from auditagent.probes import ProbeContext
from auditagent.reasons import reason
from auditagent.probes import section_status

MANAGED = "/Library/Managed Preferences"


def parse_sysadminctl_screenlock(text: str) -> int | None | bool:
    """Password delay in seconds, False when off, None when not recognised."""
    m = re.search(r"screenLock delay is (\d+) seconds?", text)
    if m:
        return int(m.group(1))
    if re.search(r"screenLock delay is immediate", text):
        return 0
    if re.search(r"screenLock is off", text):
        return False
    return None


def parse_pmset_displaysleep(text: str) -> int | None:
    """Display sleep in seconds (0 = never) from ``pmset -g``."""
    m = re.search(r"^\s*displaysleep\s+(\d+)", text, re.M)
    return int(m.group(1)) * 60 if m else None


def _plist(ctx: ProbeContext, path: str) -> dict[str, Any] | None:
    try:
        doc = plistlib.loads(ctx.host.read_bytes(path))
    except Exception:  # noqa: BLE001 - missing or unreadable: not seen
        return None
    return doc if isinstance(doc, dict) else None


def evaluate(idle_time: int | None, display_sleep: int | None, ask: bool | None,
             delay: int | None) -> tuple[bool | None, int | None]:
    """(enabled, idle_seconds) for one user (pure). 0 idle/display values mean "never"."""
    if ask is False:
        return False, None
    triggers = [t for t in (idle_time, display_sleep) if t]
    if idle_time is None and display_sleep is None:
        return None, None
    if not triggers:
        # Both seen and both "never" → never locks by itself; one unseen → cannot say.
        return (False, None) if idle_time == 0 and display_sleep == 0 else (None, None)
    if ask is None or delay is None:
        return None, None
    return True, min(triggers) + delay


def probe(ctx: ProbeContext) -> dict[str, Any]:
    reasons: list[str] = []
    machine = _plist(ctx, f"{MANAGED}/com.apple.screensaver.plist") or {}
    res = ctx.host.run(["pmset", "-g"], timeout=10)
    display = parse_pmset_displaysleep(res.text()) if res.ok else None
    if display is None:
        reasons.append(reason("value.missing", "pmset displaysleep") if res.ok else res.why_not())
    res = ctx.host.run(["sysadminctl", "-screenLock", "status"], timeout=10)
    lock = parse_sysadminctl_screenlock(res.stdout.decode(errors="replace") + res.stderr.decode(errors="replace")) \
        if not res.error else None
    if lock is None:
        reasons.append(reason("value.missing", "sysadminctl screenLock") if not res.error else res.why_not())
    results = []
    homes = ctx.host.home_dirs()
    for home in homes or [None]:
        user = home.rstrip("/").rsplit("/", 1)[-1] if home else None
        managed = dict(machine)
        if user:
            managed.update(_plist(ctx, f"{MANAGED}/{user}/com.apple.screensaver.plist") or {})
        idle = managed.get("idleTime")
        if idle is None and home:
            for path in ctx.host.glob(f"{home.rstrip('/')}/Library/Preferences/ByHost/com.apple.screensaver.*.plist"):
                idle = (_plist(ctx, path) or {}).get("idleTime", idle)
        ask = managed.get("askForPassword")
        ask = bool(ask) if ask is not None else (lock is not False if lock is not None else None)
        delay = managed.get("askForPasswordDelay")
        if delay is None and isinstance(lock, int) and not isinstance(lock, bool):
            delay = lock
        results.append(evaluate(int(idle) if idle is not None else None, display, ask,
                                int(delay) if delay is not None else None))
    if any(r[0] is False for r in results):
        enabled, idle_s = False, None
    elif results and all(r[0] is True for r in results):
        enabled, idle_s = True, max(r[1] for r in results if r[1] is not None)
    else:
        enabled, idle_s = None, None
    status = section_status([enabled] + ([idle_s] if enabled else []), reasons)
    return {"status": status, "reasons": reasons if status != "ok" else [], "enabled": enabled,
            "idle_seconds": idle_s, "desktop": "macos"}
