"""``systeminfo`` and ``wmic qfe`` text (pure parsers).

systeminfo's labels are localised (and so is part of its values: the Chinese capture
says ``10.0.17763 暂缺 Build 17763``), and it is written in the console's OEM code page
(cp850 Spanish, GBK Chinese). So it is read by *structure*, never by label:

* the OS version is the value matching ``10.0.NNNNN`` (the only such line);
* hot fixes are the ``[NN]: KBnnnnnnn`` lines; their declared count is the first
  number on the line just before the first of them;
* the OS name is the ``Microsoft Windows …`` value — only when it is plain ASCII
  (a localised edition name is not something we can read safely);
* dates are read only when unambiguous (day > 12, or year first): ``7/2/2023`` could be
  either July or February, so it stays unknown.
"""
from __future__ import annotations

import datetime as _dt
import re
from typing import Any

from auditagent.probes.sources.windows_format_list import parse_format_table
from auditagent.reasons import reason


def decode_systeminfo(data: bytes) -> str:
    """Bytes as captured: UTF-16 with BOM, UTF-8, else an OEM code page. GBK is tried
    before cp850 because every byte string decodes as cp850 (it cannot fail)."""
    from auditagent.host import decode_bytes

    if data.startswith((b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf")):
        return decode_bytes(data)
    for enc in ("utf-8", "gbk", "cp850"):
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        if enc == "gbk" and not re.search(r"[\u4e00-\u9fff]", text):
            continue  # decoded, but not Chinese: a Latin OEM page is the better guess
        return text
    return data.decode("cp850", errors="replace")


def _value(line: str) -> str:
    """The value column of ``Label:   value`` (labels may hold ':' too, e.g. 'Virtual Memory: Max Size:')."""
    m = re.match(r"^\S.*?:\s{2,}(.*)$", line) or re.match(r"^\S.*?:\s(.*)$", line)
    return (m.group(1) if m else line).strip()


_DAY_MONTH_YEAR = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})")


def date_order(texts: list[str]) -> str | None:
    """The day/month order that localised date texts from one console prove: "dmy" when some
    text has a first number above 12 (27-10-2022), "mdy" when some has a second one above 12
    (6/15/2017), None when none does or they disagree."""
    seen = set()
    for text in texts:
        m = _DAY_MONTH_YEAR.match(text.strip())
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            if a > 12 >= b:
                seen.add("dmy")
            elif b > 12 >= a:
                seen.add("mdy")
    return seen.pop() if len(seen) == 1 else None


def parse_date(text: str, order: str | None = None) -> _dt.date | None:
    """An unambiguous date out of a localised date string, or None. ``order`` ("dmy"/"mdy"),
    when other dates of the same output proved it, settles 9/4/2021."""
    text = text.strip()
    m = re.match(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})", text)  # 2019/1/24, 1999-01-01
    if m:
        y, mo, d = map(int, m.groups())
    else:
        m = _DAY_MONTH_YEAR.match(text)
        if not m:
            return None
        a, b, y = map(int, m.groups())
        if a > 12 >= b:
            d, mo = a, b
        elif b > 12 >= a:
            mo, d = a, b
        elif a == b:
            d = mo = a
        elif order == "dmy":
            d, mo = a, b
        elif order == "mdy":
            mo, d = a, b
        else:
            return None  # 7/2/2023: month/day order is a locale setting we cannot see
    try:
        return _dt.date(y, mo, d)
    except ValueError:
        return None


def parse_systeminfo(text: str) -> dict[str, Any]:
    lines = [ln.rstrip("\r") for ln in text.splitlines()]
    out: dict[str, Any] = {"name": None, "version": None, "build": None, "hotfixes": [], "hotfix_count": None,
                           "install_date": None, "language": None, "reasons": []}
    for line in lines:
        m = re.search(r"\b(10\.0\.(\d{5}))\b", line)
        if m and re.match(r"^\S", line) and out["version"] is None:
            out["version"], out["build"] = m.group(1), m.group(2)
    names = [_value(ln) for ln in lines if re.match(r"^\S", ln) and "Microsoft Windows" in _value(ln)
             and _value(ln).startswith("Microsoft Windows")]
    if names:
        out["name"] = names[0] if names[0].isascii() else None
        if out["name"] is None:
            out["reasons"].append(reason("output.language", "systeminfo", "OS name is localised"))
    kb_idx = [i for i, ln in enumerate(lines) if re.match(r"^\s+\[\d+\]:\s+KB\d+\s*$", ln)]
    out["hotfixes"] = [re.search(r"KB\d+", lines[i]).group(0) for i in kb_idx]  # type: ignore[union-attr]
    if kb_idx and kb_idx[0] > 0:
        count = re.search(r"\d+", _value(lines[kb_idx[0] - 1]))
        out["hotfix_count"] = int(count.group(0)) if count else None
    if out["hotfix_count"] is not None and out["hotfix_count"] != len(out["hotfixes"]):
        out["reasons"].append(reason("output.unrecognised", "systeminfo", "hotfix count does not match the list"))
    # English labels are recognised for what structure cannot give (the install date).
    if any(ln.startswith("OS Name:") for ln in lines):
        out["language"] = "en"
        for ln in lines:
            if ln.startswith("Original Install Date:"):
                out["install_date"] = parse_date(_value(ln))
    return out


def decode_wmic(data: bytes) -> str:
    from auditagent.host import decode_bytes

    return decode_bytes(data)


_TIME = re.compile(r"\d{1,2}:\d{2}")


def parse_wmic_qfe(text: str) -> list[dict[str, Any]]:
    """``wmic qfe`` fixed-width table (or PowerShell's Format-Table of the same class, as
    ``Get-HotFix`` prints it) → [{HotFixID, Description, InstalledOn}]. The header is the first
    line naming the HotFixID column as a word of its own: a transcript's prompt or echoed
    command line above it ("...>wmic qfe get Caption,...,HotFixID") is skipped.

    wmic's InstalledOn is the WMI string (M/d/yyyy in every locale) and is kept as it is.
    PowerShell's has a time part: it is the DateTime shown in the console's culture, so it
    becomes ``yyyy-MM-dd`` only where it is unambiguous or the table's other rows prove the
    day/month order (one table, one culture); the text stays in ``InstalledOnText``."""
    rows = [{"HotFixID": r["HotFixID"], "Description": r.get("Description") or None,
             "InstalledOn": r.get("InstalledOn") or None}
            for r in parse_format_table(text, "HotFixID")]
    shown = [r["InstalledOn"] for r in rows if r["InstalledOn"] and _TIME.search(r["InstalledOn"])]
    order = date_order(shown)
    for r in rows:
        if r["InstalledOn"] in shown:
            day = parse_date(r["InstalledOn"], order)
            r["InstalledOnText"], r["InstalledOn"] = r["InstalledOn"], day.isoformat() if day else None
    return rows

