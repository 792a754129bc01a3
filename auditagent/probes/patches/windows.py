"""Windows ``patches`` section.

* last_update: newest Win32_QuickFixEngineering.InstalledOn (monthly cumulative updates
  are listed there), from the snapshot; ``wmic qfe`` as a fallback (gone from 24H2 on).
* pending: Windows Update Agent's *offline* search (Online = false: answers from the
  last scan's cache, without a network round trip) from the snapshot.
* reboot_required: the servicing stack's RebootRequired / RebootPending registry keys.
"""
from __future__ import annotations

from typing import Any

from auditagent.probes import ProbeContext
from auditagent.probes.patches.section import iso_date, patches_section, pending_oldest_days
from auditagent.probes.sources.windows_registry import subkeys
from auditagent.probes.sources.windows_snapshot import snapshot, source_list
from auditagent.probes.patches.windows_hotfix import dated
from auditagent.probes.patches.windows_systeminfo import decode_wmic, parse_wmic_qfe
from auditagent.reasons import reason

# WSUS/WUA update classification "Security Updates" (UpdateClassification GUID).
SECURITY_UPDATES_CATEGORY = "0fa1201d-4330-4fa8-8ae9-b877473b6441"
AUTO_UPDATE = "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Auto Update"
CBS = "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Component Based Servicing"
MAX_NAMES = 20


def last_installed(hotfixes: list[dict[str, Any]]) -> tuple[str | None, int]:
    """(ISO date of the newest hot fix, number of hot fixes whose date could be read)."""
    dates, _undated = dated(hotfixes)
    return (iso_date(max(dates)) if dates else None), len(dates)


def is_security(update: dict[str, Any]) -> bool:
    cats = [str(c).lower() for c in (update.get("CategoryIDs") or [])]
    return SECURITY_UPDATES_CATEGORY in cats or bool(str(update.get("MsrcSeverity") or "").strip())


def reboot_required(ctx: ProbeContext) -> bool | None:
    au = subkeys(ctx.host, AUTO_UPDATE)
    cbs = subkeys(ctx.host, CBS)
    if au is None and cbs is None:
        return None
    names = {s.lower() for s in (au or []) + (cbs or [])}
    return "rebootrequired" in names or "rebootpending" in names


def probe(ctx: ProbeContext) -> dict[str, Any]:
    snap = snapshot(ctx.host)
    reasons: list[str] = []
    hotfixes, why = source_list(snap, "hotfixes")
    if hotfixes is None:
        reasons.append(why or reason("value.missing", "hotfixes"))
        result = ctx.host.run(["wmic", "qfe", "get", "Description,HotFixID,InstalledOn"], timeout=60)
        if result.ok:
            hotfixes = parse_wmic_qfe(decode_wmic(result.stdout))
        else:
            reasons.append(result.why_not())
    last_update = None
    if hotfixes:
        last_update, readable = last_installed(hotfixes)
        if last_update is None:
            reasons.append(reason("hotfixes.no_date"))
        elif readable < len(hotfixes):
            # The newest readable date stands; the entries without one are said, not guessed.
            reasons.append(reason("hotfixes.undated", f"{len(hotfixes) - readable}/{len(hotfixes)}"))
    pending = pending_security = oldest = None
    names: list[str] = []
    updates, why = source_list(snap, "wu_pending")
    if updates is None:
        reasons.append(why or reason("value.missing", "wu_pending"))
    else:
        security = [u for u in updates if is_security(u)]
        pending, pending_security = len(updates), len(security)
        names = sorted({str(u.get("Title") or "?") for u in security})
        oldest = pending_oldest_days(ctx.cache, "windows_pending_security_seen", names, ctx.host.now())
    reboot = reboot_required(ctx)
    if reboot is None:
        reasons.append(reason("registry.unreadable", "Windows Update reboot keys"))
    # Queried on every run (an offline search): nothing cached.
    return patches_section(manager="windows_update", last_update=last_update, pending=pending,
                           pending_security=pending_security, oldest_days=oldest, names=names, reboot=reboot,
                           reasons=reasons, max_names=MAX_NAMES)
