"""macOS ``patches`` section.

* last_update: /Library/Receipts/InstallHistory.plist (a plist: structured), newest entry
  installed by Software Update or the macOS installer; background configuration data
  (XProtect, Gatekeeper lists: contentType "config-data") does not count as patching.
* pending: ``softwareupdate --list --no-scan`` (answers from the last background scan, no
  long network wait), cached for a few hours through ctx.cache.
* reboot_required: a pending item with ``Action: restart`` — macOS stages updates in the
  background and finishes them at a restart, so such an item means the machine is
  waiting for a restart to be patched.
"""
from __future__ import annotations

import datetime as _dt
import plistlib
import re
from typing import Any

from auditagent.probes import ProbeContext
from auditagent.probes.os_info.macos import version_tuple
from auditagent.probes.patches.section import iso_date, patches_section, pending_oldest_days

INSTALL_HISTORY = "/Library/Receipts/InstallHistory.plist"
OS_INSTALLERS = {"softwareupdated", "software update", "macos installer", "os x installer"}
CACHE_TTL = 6 * 3600
MAX_NAMES = 20
_SECURITY_TITLE = re.compile(r"^(macOS|Mac OS X|OS X|Security Update|Safari|Background Security|Rapid Security)"
                             r"|Security Response", re.I)


def parse_softwareupdate_list(text: str) -> dict[str, Any]:
    """→ {updates: [{label, title, version, recommended, restart}], error: str|None}."""
    updates: list[dict[str, Any]] = []
    error = None
    for line in text.splitlines():
        m = re.match(r"^\s*\*\s*Label:\s*(.+?)\s*$", line)
        if m:
            updates.append({"label": m.group(1), "title": None, "version": None, "recommended": None,
                            "restart": False})
            continue
        if updates and line.strip().startswith("Title:"):
            fields = dict(re.findall(r"(\w+):\s*([^,]*),", line.strip() + ","))
            u = updates[-1]
            u["title"] = fields.get("Title", "").strip() or None
            u["version"] = fields.get("Version", "").strip() or None
            u["recommended"] = fields.get("Recommended", "").strip().upper() == "YES"
            u["restart"] = fields.get("Action", "").strip().lower() in ("restart", "shut down")
        if error is None and re.search(r"\berror\b", line, re.I):
            error = "softwareupdate: " + line.strip()[:200]
    if "found the following new or updated software" in text or "No new software available" in text:
        return {"updates": updates, "error": None}
    return {"updates": [], "error": error or "softwareupdate: output not recognised"}


def is_security(update: dict[str, Any], current: tuple[int, ...] | None) -> bool:
    """Apple ships security fixes in OS point releases, Security Updates, Safari and
    Background Security Improvements / Rapid Security Responses. A beta, or an upgrade to
    a newer major release, is an offer, not a missing patch."""
    title = update.get("title") or update.get("label") or ""
    if "beta" in title.lower() or not _SECURITY_TITLE.search(title):
        return False
    if current and re.match(r"^(macOS|Mac OS X|OS X)", title) and update.get("version"):
        offered = tuple(int(n) for n in re.findall(r"\d+", update["version"]))
        major = current[:2] if current[0] == 10 else current[:1]
        if offered and offered[:len(major)] > major:
            return False
    return True


def parse_install_history(data: bytes) -> dict[str, Any]:
    """→ {last_os_update: datetime|None, last_any: datetime|None, entries: n}."""
    items = plistlib.loads(data)
    if not isinstance(items, list):
        raise ValueError("InstallHistory.plist: not an array")
    os_dates, any_dates = [], []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("date"), _dt.datetime):
            continue
        any_dates.append(item["date"])
        if str(item.get("contentType") or "") == "config-data":
            continue
        if str(item.get("processName") or "").lower() in OS_INSTALLERS:
            os_dates.append(item["date"])
    return {"last_os_update": max(os_dates) if os_dates else None,
            "last_any": max(any_dates) if any_dates else None, "entries": len(items)}


def _pending(ctx: ProbeContext) -> tuple[dict[str, Any], dict[str, Any]]:
    def compute() -> dict[str, Any]:
        res = ctx.host.run(["softwareupdate", "--list", "--no-scan"], timeout=60)
        if res.error or (not res.stdout and not res.stderr):
            return {"updates": [], "error": res.why_not()}
        # softwareupdate prints its progress and errors on stderr and the list on stdout.
        text = res.text() + "\n" + res.stderr.decode("utf-8", errors="replace")
        return parse_softwareupdate_list(text)

    return ctx.cache.get_or_compute("macos_softwareupdate_list", CACHE_TTL, compute)


def probe(ctx: ProbeContext) -> dict[str, Any]:
    reasons: list[str] = []
    last_update = None
    try:
        hist = parse_install_history(ctx.host.read_bytes(INSTALL_HISTORY))
        last_update = iso_date(hist["last_os_update"])
        if last_update is None:
            reasons.append("InstallHistory.plist: no Software Update installation recorded")
    except FileNotFoundError:
        reasons.append(f"{INSTALL_HISTORY}: missing")
    except Exception as exc:  # noqa: BLE001 - plistlib raises several types
        reasons.append(f"{INSTALL_HISTORY}: unreadable ({type(exc).__name__})")
    listing, meta = _pending(ctx)
    pending = pending_security = oldest = reboot = None
    names: list[str] = []
    if listing.get("error"):
        reasons.append(str(listing["error"]))
    else:
        current = version_tuple(ctx.host)
        updates = listing["updates"]
        security = [u for u in updates if is_security(u, current)]
        pending, pending_security = len(updates), len(security)
        names = sorted({u["title"] or u["label"] for u in security})
        oldest = pending_oldest_days(ctx.cache, "macos_pending_security_seen", names, ctx.host.now())
        # A beta on offer is not something the machine is waiting to install.
        reboot = any(u["restart"] and "beta" not in (u["title"] or u["label"]).lower() for u in updates)
    return patches_section(manager="softwareupdate", last_update=last_update, pending=pending,
                           pending_security=pending_security, oldest_days=oldest, names=names, reboot=reboot,
                           reasons=reasons, cached_at=meta.get("cached_at"),
                           cache_ttl_seconds=meta.get("cache_ttl_seconds"), max_names=MAX_NAMES)
