"""``dsregcmd /status`` (pure parser): the device's Entra ID / domain join state.

Not part of the fact contract yet (docs/facts.md has no identity section); kept so a
future ``identity`` probe, or the OneDrive tenant check, can use the device's tenant.
The labels are English identifiers (``AzureAdJoined``), the values YES/NO.
"""
from __future__ import annotations

import re


def parse_dsregcmd(text: str) -> dict[str, dict[str, str]]:
    """→ {section title: {key: value}}, e.g. out["Device State"]["AzureAdJoined"] == "NO"."""
    out: dict[str, dict[str, str]] = {}
    section = "General"
    for line in text.splitlines():
        m = re.match(r"^\|\s*(.+?)\s*\|\s*$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^\s*([A-Za-z][\w -]*?)\s+:\s?(.*?)\s*$", line)
        if m:
            out.setdefault(section, {})[m.group(1).strip()] = m.group(2)
    return out


def join_state(parsed: dict[str, dict[str, str]]) -> dict[str, bool | None]:
    dev = parsed.get("Device State", {})

    def yes(key: str) -> bool | None:
        v = dev.get(key, "").upper()
        return True if v == "YES" else False if v == "NO" else None

    return {"entra_joined": yes("AzureAdJoined"), "domain_joined": yes("DomainJoined"),
            "enterprise_joined": yes("EnterpriseJoined")}
