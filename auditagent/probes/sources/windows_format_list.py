"""PowerShell ``Format-List`` text, as pasted in forum threads and older transcripts
(manage-bde, Get-BitLockerVolume, Get-NetFirewallProfile): pure parser."""
from __future__ import annotations

import re


def parse_format_list(text: str) -> list[dict[str, str]]:
    """PowerShell ``Format-List`` text (``Name : value`` blocks separated by blank lines)
    → one dict per object. Prompt lines are ignored; continuation lines are joined."""
    objects: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last: str | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.startswith("PS ") or line.startswith("PS>"):
            continue
        if not line.strip():
            if current:
                objects.append(current)
                current, last = {}, None
            continue
        m = re.match(r"^(\w[\w .-]*?)\s+:\s?(.*)$", line)
        if m:
            last = m.group(1).strip()
            current[last] = m.group(2).strip()
        elif last is not None and line.startswith(" "):
            current[last] += " " + line.strip()
    if current:
        objects.append(current)
    return objects
