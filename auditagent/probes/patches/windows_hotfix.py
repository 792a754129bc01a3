"""Win32_QuickFixEngineering.InstalledOn in every form it reaches us (pure).

The WMI property is a *string* (Microsoft Learn, "Win32_QuickFixEngineering class"),
usually ``M/d/yyyy`` in the invariant culture, on some machines a hex FILETIME or
``yyyyMMdd``. PowerShell's type data wraps it in a ``DateTime`` ScriptProperty, so what a
script sees depends on how it serialises that:

* our snapshot (schema 2): ``yyyy-MM-dd`` written with the invariant culture, and the
  raw WMI string beside it (``InstalledOnRaw``);
* ``[string]$_.InstalledOn`` (schema 1): invariant ``MM/dd/yyyy HH:mm:ss``;
* Windows PowerShell 5.1 ``ConvertTo-Json``: ``{"value": "/Date(ms)/", "DateTime": "<localised>"}``
  or a bare ``"/Date(ms)/"``; PowerShell 7: ISO 8601 with or without an offset.

A localised ``DateTime`` text ("den 11 oktober 2023 00:00:00") is never parsed: the
``value`` beside it says the same thing culture-free. (A pasted Get-HotFix *table* shows that
text; its reader turns it into a date only where the table proves the order.)
"""
from __future__ import annotations

import datetime as _dt
import re
from typing import Any, Iterable

from auditagent.probes.sources.powershell_dates import MS_DATE as _MS_DATE

_MDY = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T]\d{1,2}:\d{2}(?::\d{2})?(?:\s*[AP]M)?)?", re.I)
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?")
_YMD = re.compile(r"(\d{4})(\d{2})(\d{2})")
_FILETIME = re.compile(r"(?:0x)?([0-9a-fA-F]{15,16})")
_DAY_MS = 86_400_000


def _date(y: int, m: int, d: int) -> _dt.date | None:
    try:
        return _dt.date(y, m, d)
    except ValueError:
        return None


def parse_qfe_installed_on(value: Any) -> _dt.date | None:
    """The local calendar day the hot fix was installed, or None when it cannot be read."""
    if value is None:
        return None
    if isinstance(value, dict):  # PowerShell 5.1 ConvertTo-Json of a DateTime
        for key in ("value", "Value"):
            if key in value:
                return parse_qfe_installed_on(value[key])
        text = value.get("DateTime")
        return parse_qfe_installed_on(text) if isinstance(text, str) and not re.search(r"[^\d/:\- .TZAPM+]", text) \
            else None
    text = str(value).strip()
    if not text:
        return None
    if m := _MS_DATE.fullmatch(text):
        # Milliseconds of the UTC moment of *local* midnight: the nearest midnight is the
        # day meant in every time zone within ±12 h (Swedish and Danish ones included).
        days = round(int(m.group(1)) / _DAY_MS)
        return _dt.date(1970, 1, 1) + _dt.timedelta(days=days)
    if m := _ISO.fullmatch(text):
        return _date(*map(int, m.groups()))
    if m := _MDY.fullmatch(text):
        mo, d, y = map(int, m.groups())
        return _date(y, mo, d)
    if m := _YMD.fullmatch(text):
        return _date(*map(int, m.groups()))
    if m := _FILETIME.fullmatch(text):
        ticks = int(m.group(1), 16)  # 100 ns since 1601-01-01 UTC
        try:
            return (_dt.datetime(1601, 1, 1) + _dt.timedelta(microseconds=ticks // 10)).date()
        except OverflowError:
            return None
    return None


def hotfix_date(hotfix: dict[str, Any]) -> _dt.date | None:
    """Our typed field first, then the raw WMI string, then whatever an older script wrote."""
    for key in ("InstalledOn", "InstalledOnRaw"):
        day = parse_qfe_installed_on(hotfix.get(key))
        if day is not None:
            return day
    return None


def dated(hotfixes: Iterable[dict[str, Any]]) -> tuple[list[_dt.date], int]:
    """(the dates that could be read, how many entries had none): one unreadable entry
    leaves the others standing."""
    days, undated = [], 0
    for h in hotfixes:
        day = hotfix_date(h)
        if day is None:
            undated += 1
        else:
            days.append(day)
    return days, undated
