"""``/usr/libexec/mdmclient QuerySecurityInfo`` (pure parser).

The output is an old-style (OpenStep) property list dump: ``Key = value;`` lines inside
nested braces, after a ``Daemon response:`` label. Only the daemon's scalar keys are
needed (FDE_Enabled, FirewallEnabled, BlockAllIncoming, StealthMode …), so the first
occurrence of each ``Name = scalar;`` in the daemon block is taken.
"""
from __future__ import annotations

import re
from typing import Any


def parse_security_info(text: str) -> dict[str, Any]:
    daemon = text.split("Agent response:", 1)[0]
    if "SecurityInfo" not in daemon:
        return {}
    out: dict[str, Any] = {}
    for m in re.finditer(r'^\s*"?([A-Za-z_][\w]*)"?\s*=\s*("?)([^;{(]*?)\2;\s*$', daemon, re.M):
        key, value = m.group(1), m.group(3)
        if key in out:
            continue
        out[key] = int(value) if re.fullmatch(r"-?\d+", value) else value
    return out


def fde_enabled(info: dict[str, Any]) -> bool | None:
    v = info.get("FDE_Enabled")
    return None if v is None else bool(v)


def firewall(info: dict[str, Any]) -> dict[str, Any] | None:
    if "FirewallEnabled" not in info:
        return None
    return {"enabled": bool(info["FirewallEnabled"]),
            "block_all": bool(info["BlockAllIncoming"]) if "BlockAllIncoming" in info else None,
            "stealth": bool(info["StealthMode"]) if "StealthMode" in info else None}
