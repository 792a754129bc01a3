"""PowerShell ``Format-List`` and ``Format-Table`` text (and wmic's tables), as pasted in
forum threads and older transcripts (manage-bde, Get-BitLockerVolume, Get-NetFirewallProfile,
Get-HotFix): pure parsers."""
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


def _cells(line: str, names: list[str], starts: list[int]) -> dict[str, str]:
    """Cut ``line`` at the header's column starts. A row whose cut would fall inside a word
    is shifted (a pasted row whose computer name was replaced by a longer placeholder): from
    that column on, the cuts move right by as much as the overflowing word pushed the next
    value, so "KB5032005" and "Security Update" stay whole."""
    bounds = list(starts)
    for i in range(1, len(bounds)):
        b = bounds[i]
        if 0 < b < len(line) and not line[b - 1].isspace() and not line[b].isspace():
            n = b
            while n < len(line) and not line[n].isspace():
                n += 1  # to the end of the word the cut fell into
            while n < len(line) and line[n].isspace():
                n += 1  # and on to where the next value starts
            for k in range(i, len(bounds)):
                bounds[k] += n - b
    bounds.append(max(len(line), bounds[-1] if bounds else 0))
    return {name: line[bounds[i]:bounds[i + 1]].strip() for i, name in enumerate(names)}


def parse_format_table(text: str, key: str) -> list[dict[str, str]]:
    """A fixed-width table whose header names ``key`` as a word of its own (a prompt or echoed
    command above it, "ft Name,Enabled", does not) → one dict per row with a ``key`` value.
    Columns are cut at the header's start positions (values can hold spaces: "Security
    Update"); the underline row is skipped."""
    lines = [ln.rstrip("\r") for ln in text.splitlines() if ln.strip()]
    at = next((i for i, ln in enumerate(lines) if key in ln.split()), None)
    if at is None:
        return []
    header = lines[at]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    rows = []
    for ln in lines[at + 1:]:
        if not ln.strip(" -"):
            continue  # the underline row: not a row
        cells = _cells(ln, names, starts)
        if cells.get(key):
            rows.append(cells)
    return rows
