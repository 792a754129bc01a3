"""Windows ``screen_lock`` section.

Two things lock an idle Windows session by themselves:

* the machine inactivity limit (Interactive logon: Machine inactivity limit),
  HKLM\\…\\Policies\\System\\InactivityTimeoutSecs — applies to every user;
* a password-protected screen saver: ScreenSaveActive=1, ScreenSaverIsSecure=1,
  ScreenSaveTimeOut=N and a screen saver program (SCRNSAVE.EXE), per user; the policy
  key (HKCU\\Software\\Policies\\…\\Control Panel\\Desktop) overrides the user's own value.

Per-user settings are read for every loaded user hive when running as SYSTEM; the
worst user decides (a longer delay, or no lock at all).
"""
from __future__ import annotations

from typing import Any

from auditagent.probes import ProbeContext
from auditagent.probes import section_status
from auditagent.probes.sources.windows_registry import RegistryValues, dword, user_roots, values
from auditagent.reasons import reason

MACHINE_POLICY = "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\System"
USER_DESKTOP = "{}\\Control Panel\\Desktop"
USER_POLICY = "{}\\Software\\Policies\\Microsoft\\Windows\\Control Panel\\Desktop"


def screensaver_lock(desktop: dict[str, Any] | None, policy: dict[str, Any] | None) -> int | None | bool:
    """Seconds until a secure screen saver locks, False if it does not lock, None if unseen."""
    if desktop is None and not policy:
        return None
    merged = RegistryValues(desktop)  # names without regard to case, as Windows reads them
    merged.update(policy or {})
    active = dword(merged.get("ScreenSaveActive"))
    secure = dword(merged.get("ScreenSaverIsSecure"))
    timeout = dword(merged.get("ScreenSaveTimeOut"))
    program = str(merged.get("SCRNSAVE.EXE") or "").strip()
    if active == 1 and secure == 1 and timeout and timeout > 0 and program:
        return timeout
    return False


def evaluate(machine_limit: int | None, users: list[int | None | bool]) -> tuple[bool | None, int | None]:
    """(enabled, idle_seconds) from the machine limit and each user's screen-saver lock (pure)."""
    per_user: list[int | None] = []
    for user in users:
        candidates = [c for c in (machine_limit, user if user is not False else None) if isinstance(c, int) and c > 0]
        if candidates:
            per_user.append(min(candidates))
        elif user is None and not machine_limit:
            return None, None  # one user's settings not seen: cannot say
        else:
            return False, None  # this user's session never locks by itself
    if not per_user:
        return (True, machine_limit) if machine_limit else (None, None)
    return True, max(x for x in per_user if x is not None)


def probe(ctx: ProbeContext) -> dict[str, Any]:
    reasons: list[str] = []
    machine = values(ctx.host, MACHINE_POLICY)
    limit = dword((machine or {}).get("InactivityTimeoutSecs"))
    if machine is None:
        reasons.append(reason("registry.unreadable", MACHINE_POLICY))
    users = []
    for root in user_roots(ctx.host):
        desktop = values(ctx.host, USER_DESKTOP.format(root))
        policy = values(ctx.host, USER_POLICY.format(root))
        if desktop is None and policy is None:
            reasons.append(reason("registry.unreadable", f"{root}\\Control Panel\\Desktop"))
        users.append(screensaver_lock(desktop, policy))
    enabled, idle = evaluate(limit if limit and limit > 0 else None, users)
    status = section_status([enabled] + ([idle] if enabled else []), reasons)
    return {"status": status, "reasons": reasons, "enabled": enabled, "idle_seconds": idle, "desktop": "windows"}
