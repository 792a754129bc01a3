"""macOS ``patches`` section.

* last_update: /Library/Receipts/InstallHistory.plist (a plist: structured), newest entry
  installed by Software Update or the macOS installer; background configuration data
  (XProtect, Gatekeeper lists: contentType "config-data") does not count as patching.
* pending: ``softwareupdate --list --no-scan`` (answers from the last background scan, no
  long network wait), cached for a few hours through ctx.cache.
* reboot_required: something *installed* awaits a restart — an OS or security update in
  InstallHistory.plist newer than the last boot (``sysctl -n kern.boottime``). An update
  merely on offer whose action would be a restart does not count: until it is installed
  it is a pending update (and counted as such), not a pending restart.
* offered_upgrades: a newer major macOS, or a beta, on offer. An upgrade is a choice, not
  a missing patch: it counts neither as pending nor as pending security.
"""
from __future__ import annotations

import datetime as _dt
import plistlib
import re
from typing import Any

from auditagent.probes import ProbeContext
from auditagent.probes.os_info.macos import version_tuple
from auditagent.probes.patches.section import iso_date, patches_section, pending_oldest_days
from auditagent.reasons import reason

INSTALL_HISTORY = "/Library/Receipts/InstallHistory.plist"
OS_INSTALLERS = {"softwareupdated", "software update", "macos installer", "os x installer"}
CACHE_TTL = 6 * 3600
MAX_NAMES = 20
_SECURITY_TITLE = re.compile(r"^(macOS|Mac OS X|OS X|Security Update|Safari|Background Security|Rapid Security)"
                             r"|Security Response", re.I)


# Catalina and later: "* Label: <label>" then "\tTitle: <t>, Version: <v>, Size: <n>KiB, Recommended: YES,
# Action: restart,". Mojave and earlier: "   * <label>" then "\t<title> (<version>), <n>K [recommended]
# [restart]". "-" in place of "*" marks an update that is not recommended.
_LABEL_NEW = re.compile(r"^\s*[*-]\s*Label:\s*(.+?)\s*$")
_LABEL_OLD = re.compile(r"^\s*[*-]\s+(\S.*?)\s*$")
_DETAIL_OLD = re.compile(r"^\s*(?P<title>.+?),?\s+\((?P<version>[^()]*)\),\s*\d+K,?\s*(?P<flags>.*)$")


def parse_old_detail(line: str) -> dict[str, Any] | None:
    """A pre-Catalina detail line: "Security Update 2020-005 (10.14.6), 1633218K [recommended] [restart]"."""
    d = _DETAIL_OLD.match(line)
    if not d:
        return None
    flags = d.group("flags").lower()
    return {"title": d.group("title").strip(), "version": d.group("version").strip() or None,
            "recommended": "[recommended]" in flags, "restart": "[restart]" in flags or "[shut down]" in flags}


def _update(label: str) -> dict[str, Any]:
    return {"label": label, "title": None, "version": None, "recommended": None, "restart": False}


def parse_softwareupdate_list(text: str) -> dict[str, Any]:
    """→ {updates: [{label, title, version, recommended, restart}], error: str|None}."""
    updates: list[dict[str, Any]] = []
    error = None
    old_label = False  # the last line was a pre-Catalina label: its detail line follows
    for line in text.splitlines():
        m = _LABEL_NEW.match(line)
        if m:
            updates.append(_update(m.group(1)))
            old_label = False
            continue
        if updates and line.strip().startswith("Title:"):
            fields = dict(re.findall(r"(\w+):\s*([^,]*),", line.strip() + ","))
            u = updates[-1]
            u["title"] = fields.get("Title", "").strip() or None
            u["version"] = fields.get("Version", "").strip() or None
            u["recommended"] = fields.get("Recommended", "").strip().upper() == "YES"
            u["restart"] = fields.get("Action", "").strip().lower() in ("restart", "shut down")
            continue
        detail = parse_old_detail(line) if old_label else None
        if detail:
            updates[-1].update(detail)
            old_label = False
            continue
        m = _LABEL_OLD.match(line) if "found the following" in text else None
        if m:
            updates.append(_update(m.group(1)))
            old_label = True
            continue
        old_label = False
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
    return bool(_SECURITY_TITLE.search(title)) and not is_offer_only(update, current)


# Installs that take effect only at a restart: macOS itself (point releases, supplemental
# updates), Security Updates, Background Security Improvements / Rapid Security Responses.
_RESTART_TITLE = re.compile(r"^(macOS|Mac OS X|OS X|Security Update|Background Security|Rapid Security)"
                            r"|Security Response|Supplemental", re.I)


def is_major_upgrade(update: dict[str, Any], current: tuple[int, ...] | None) -> bool:
    """A newer major macOS on offer (Sonoma → Sequoia; 10.14 → 10.15 in the 10.x era)."""
    title = update.get("title") or update.get("label") or ""
    if not current or not re.match(r"^(macOS|Mac OS X|OS X)", title) or not update.get("version"):
        return False
    offered = tuple(int(n) for n in re.findall(r"\d+", update["version"]))
    major = current[:2] if current[0] == 10 else current[:1]
    return bool(offered) and offered[:len(major)] > major


def is_offer_only(update: dict[str, Any], current: tuple[int, ...] | None) -> bool:
    """A beta or a major upgrade: on offer, never missing."""
    title = update.get("title") or update.get("label") or ""
    return "beta" in title.lower() or is_major_upgrade(update, current)


def parse_boottime(text: str) -> _dt.datetime | None:
    """``sysctl -n kern.boottime`` → ``{ sec = 1700000000, usec = 0 } Tue Nov 14 …`` (a C
    struct timeval; the date text after it is localised and ignored)."""
    m = re.search(r"\bsec\s*=\s*(\d+)", text)
    return _dt.datetime.fromtimestamp(int(m.group(1)), _dt.timezone.utc) if m else None


def restart_awaited(history: dict[str, Any], booted: _dt.datetime) -> bool:
    """Something installed since the last boot that only takes effect at a restart."""
    for when, title in history.get("restart_installs", []):
        when = when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)  # plist dates are UTC
        if when > booted:
            return True
    return False


def parse_install_history(data: bytes) -> dict[str, Any]:
    """→ {last_os_update: datetime|None, last_any: datetime|None, entries: n,
    restart_installs: [(datetime, title)] of OS/security installs}."""
    items = plistlib.loads(data)
    if not isinstance(items, list):
        raise ValueError("InstallHistory.plist: not an array")
    os_dates, any_dates, restart_installs = [], [], []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("date"), _dt.datetime):
            continue
        any_dates.append(item["date"])
        if str(item.get("contentType") or "") == "config-data":
            continue
        if str(item.get("processName") or "").lower() in OS_INSTALLERS:
            os_dates.append(item["date"])
            title = str(item.get("displayName") or "")
            if _RESTART_TITLE.search(title):
                restart_installs.append((item["date"], title))
    return {"last_os_update": max(os_dates) if os_dates else None,
            "last_any": max(any_dates) if any_dates else None, "entries": len(items),
            "restart_installs": restart_installs}


def _pending(ctx: ProbeContext) -> tuple[dict[str, Any], dict[str, Any]]:
    def compute() -> dict[str, Any]:
        res = ctx.host.run(["softwareupdate", "--list", "--no-scan"], timeout=60)
        if res.error or (not res.stdout and not res.stderr):
            return {"updates": [], "error": res.why_not()}
        # softwareupdate prints its progress and errors on stderr and the list on stdout.
        text = res.text() + "\n" + res.stderr.decode("utf-8", errors="replace")
        return parse_softwareupdate_list(text)

    return ctx.cache.get_or_compute("macos_softwareupdate_list", CACHE_TTL, compute,
                                    now=ctx.host.now().timestamp())


def probe(ctx: ProbeContext) -> dict[str, Any]:
    reasons: list[str] = []
    last_update = hist = None
    try:
        hist = parse_install_history(ctx.host.read_bytes(INSTALL_HISTORY))
        last_update = iso_date(hist["last_os_update"])
        if last_update is None:
            reasons.append(reason("history.no_os_update"))
    except FileNotFoundError:
        reasons.append(reason("file.missing", INSTALL_HISTORY))
    except Exception as exc:  # noqa: BLE001 - plistlib raises several types
        reasons.append(reason("file.unreadable", INSTALL_HISTORY, type(exc).__name__))
    listing, meta = _pending(ctx)
    pending = pending_security = oldest = None
    names: list[str] = []
    offered: list[str] = []
    if listing.get("error"):
        reasons.append(str(listing["error"]))
    else:
        current = version_tuple(ctx.host)
        updates = [u for u in listing["updates"] if not is_offer_only(u, current)]
        offered = sorted({u["title"] or u["label"] for u in listing["updates"] if is_offer_only(u, current)})
        security = [u for u in updates if is_security(u, current)]
        pending, pending_security = len(updates), len(security)
        names = sorted({u["title"] or u["label"] for u in security})
        oldest = pending_oldest_days(ctx.cache, "macos_pending_security_seen", names, ctx.host.now())
    section = patches_section(manager="softwareupdate", last_update=last_update, pending=pending,
                              pending_security=pending_security, oldest_days=oldest, names=names,
                              reboot=_reboot(ctx, hist, reasons), reasons=reasons, cached_at=meta.get("cached_at"),
                              cache_ttl_seconds=meta.get("cache_ttl_seconds"), max_names=MAX_NAMES,
                              offered_upgrades=offered)
    return section


def _reboot(ctx: ProbeContext, hist: dict[str, Any] | None, reasons: list[str]) -> bool | None:
    if hist is None:
        return None  # the reason is already given
    res = ctx.host.run(["sysctl", "-n", "kern.boottime"], timeout=10)
    booted = parse_boottime(res.text()) if res.ok else None
    if booted is None:
        reasons.append(res.why_not() if not res.ok else reason("output.unrecognised", "sysctl kern.boottime"))
        return None
    return restart_awaited(hist, booted)
