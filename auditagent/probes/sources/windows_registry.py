"""Registry glue shared by the Windows probes (reads only through the Host)."""
from __future__ import annotations

import re
from typing import Any

from auditagent.host import Host, RegistryError

# Interactive users' SIDs (local and domain accounts): S-1-5-21-…; the *_Classes hives are skipped.
_USER_SID = re.compile(r"^S-1-5-21-[\d-]+$", re.I)


def values(host: Host, key: str) -> dict[str, Any] | None:
    try:
        return host.registry_values(key)
    except (RegistryError, OSError):
        return None


def subkeys(host: Host, key: str) -> list[str] | None:
    try:
        return host.registry_subkeys(key)
    except (RegistryError, OSError):
        return None


def running_as_system(host: Host) -> bool:
    """A scheduled task as SYSTEM sees SYSTEM's own HKCU, not the users'."""
    user = (host.getenv("USERNAME") or "").upper()
    profile = (host.getenv("USERPROFILE") or "").lower()
    return user == "SYSTEM" or user.endswith("$") or profile.endswith("\\systemprofile")


def user_roots(host: Host) -> list[str]:
    """Registry roots of the people who use this machine: HKCU for an interactive run; as
    SYSTEM, every loaded user hive HKU\\<SID> (users signed in at the time of the check)."""
    roots = [] if running_as_system(host) else ["HKCU"]
    for sid in subkeys(host, "HKU") or []:
        if _USER_SID.match(sid):
            roots.append(f"HKU\\{sid}")
    return roots or ["HKCU"]


def dword(value: Any) -> int | None:
    """REG_DWORD comes as int; policy tools sometimes write numbers as REG_SZ."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None
