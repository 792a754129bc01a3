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
SEEN_KEY = "windows_pending_security_seen"


def last_installed(hotfixes: list[dict[str, Any]]) -> tuple[str | None, int]:
    """(ISO date of the newest hot fix, number of hot fixes whose date could be read)."""
    dates, _undated = dated(hotfixes)
    return (iso_date(max(dates)) if dates else None), len(dates)


def is_security(update: dict[str, Any]) -> bool | None:
    """A security update: classification "Security Updates" among its category ids, or an MSRC
    rating (Critical/Important/Moderate/Low/Unspecified: the token stays English on a German or
    Polish Windows, whose titles and descriptions do not). None when the record carries neither
    field, so nothing can say (an unclassified record is not counted as harmless)."""
    if "CategoryIDs" not in update and "MsrcSeverity" not in update:
        return None
    cats = [str(c).lower() for c in (update.get("CategoryIDs") or [])]
    return SECURITY_UPDATES_CATEGORY in cats or bool(str(update.get("MsrcSeverity") or "").strip())


def update_identity(update: dict[str, Any]) -> str:
    """What the agent remembers a pending update by: its KB number, which is the same in every
    UI language (KB2267602 is "Security Intelligence Update for Microsoft Defender Antivirus"
    in English, "Aktualizacja definicji dla: Windows Defender" in Polish), so a change of display
    language does not restart its clock. Only updates without a KB fall back to the title."""
    kbs = sorted({str(k).strip().upper().removeprefix("KB") for k in (update.get("KBArticleIDs") or [])
                  if str(k).strip()})
    return ",".join(f"KB{k}" for k in kbs) if kbs else str(update.get("Title") or "?")


def _carry_over_title_keys(ctx: ProbeContext, security: list[dict[str, Any]]) -> None:
    """Agents before 2026-12 remembered pending updates by title: keep their first-seen times."""
    seen = ctx.cache.load(SEEN_KEY)
    if not isinstance(seen, dict):
        return
    moved = {update_identity(u): seen[str(u.get("Title") or "?")] for u in security
             if str(u.get("Title") or "?") in seen and update_identity(u) not in seen}
    if moved:
        ctx.cache.store(SEEN_KEY, {**seen, **moved})


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
        verdicts = [is_security(u) for u in updates]
        security = [u for u, v in zip(updates, verdicts) if v]
        pending = len(updates)
        if None in verdicts:
            reasons.append(reason("patches.no_security_info", "Windows Update"))
        else:
            pending_security = len(security)
            names = sorted({str(u.get("Title") or "?") for u in security})
            _carry_over_title_keys(ctx, security)
            oldest = pending_oldest_days(ctx.cache, SEEN_KEY, sorted({update_identity(u) for u in security}),
                                         ctx.host.now())
    reboot = reboot_required(ctx)
    if reboot is None:
        reasons.append(reason("registry.unreadable", "Windows Update reboot keys"))
    # Queried on every run (an offline search): nothing cached.
    return patches_section(manager="windows_update", last_update=last_update, pending=pending,
                           pending_security=pending_security, oldest_days=oldest, names=names, reboot=reboot,
                           reasons=reasons, max_names=MAX_NAMES)
