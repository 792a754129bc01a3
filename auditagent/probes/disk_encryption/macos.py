"""macOS ``disk`` section: FileVault on the APFS system/data pair and other user volumes.

Sources, best first: ``diskutil apfs list -plist`` (structured: FileVault, Encryption,
CryptoMigrationOn per volume) with ``fdesetup status`` for the direction and percentage
of a conversion; the text ``diskutil apfs list`` of old releases; then ``fdesetup
status`` alone; then mdmclient's FDE_Enabled.
"""
from __future__ import annotations

import plistlib
import re
from typing import Any

from auditagent.probes import ProbeContext
from auditagent.probes.sources.macos_mdmclient import fde_enabled, parse_security_info
from auditagent.probes import section_status
from auditagent.reasons import reason

# APFS roles that hold no user data (boot helpers, recovery, swap files, firmware).
HELPER_ROLES = {"Preboot", "Recovery", "VM", "Update", "xART", "Hardware", "Baseband", "iSCPreboot", "Backup",
                "Prelogin"}


def parse_fdesetup_status(text: str) -> dict[str, Any]:
    """``fdesetup status`` → {filevault, state, percent}. Lines other than fdesetup's own
    (a pasted transcript) are ignored; nothing recognised → all None.

    fdesetup's lines (Apple's wording, English on every Mac): "FileVault is On." / "Off.";
    "FileVault is On, but needs to be restarted to finish." (enabled, conversion not begun);
    "FileVault is Off, but will be enabled after the next restart." (enabled by `fdesetup
    enable` or System Settings, nothing encrypted until the restart); "FileVault is Off, but
    needs to be restarted to finish." (turned off, not yet finished); "Deferred enablement
    appears to be active for user 'x'." (`fdesetup enable -defer`: at that user's next
    login); "Encryption|Decryption in progress: Percent completed = N" or ": Pending"
    (paused, e.g. on battery)."""
    out: dict[str, Any] = {"filevault": None, "state": None, "percent": None}
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"^(Encryption|Decryption) in progress\b(.*)$", line)
        if m:
            out["state"] = "encrypting" if m.group(1) == "Encryption" else "decrypting"
            pct = re.search(r"(\d+(?:\.\d+)?)", m.group(2))
            out["percent"] = float(pct.group(1)) if pct else None  # "Pending": paused, no figure
            out["filevault"] = m.group(1) == "Encryption"
        elif line.startswith("FileVault is On"):
            out["filevault"] = True
            # "FileVault is On, but needs to be restarted to finish." – not yet encrypting
            out["state"] = out["state"] or ("encrypted" if line in ("FileVault is On.", "FileVault is On") else "encrypting")
        elif line.startswith("FileVault is Off"):
            out["filevault"] = False
            if "will be enabled after the next restart" in line:
                out["state"] = out["state"] or "pending_restart"
            elif "needs to be restarted to finish" in line:
                out["state"] = out["state"] or "decrypting"
            else:
                out["state"] = out["state"] or "decrypted"
        elif line.startswith("Deferred enablement appears to be active"):
            # `fdesetup enable -defer`: FileVault turns on when the named user next logs
            # in (the name is personal data and is not kept). Not encrypted yet, but will be.
            out["filevault"] = False
            out["state"] = "deferred"
    return out


def parse_apfs_list_plist(data: bytes) -> list[dict[str, Any]]:
    doc = plistlib.loads(data)
    vols = []
    for container in doc.get("Containers", []):
        for v in container.get("Volumes", []):
            vols.append({
                "device": v.get("DeviceIdentifier"), "name": v.get("Name"), "roles": list(v.get("Roles") or []),
                "filevault": v.get("FileVault"), "encryption": v.get("Encryption"),
                "migrating": v.get("CryptoMigrationOn"), "locked": v.get("Locked"),
                "container": container.get("ContainerReference"), "mount": None, "percent": None,
            })
    return vols


def parse_apfs_list_text(text: str) -> list[dict[str, Any]]:
    """Text ``diskutil apfs list`` (High Sierra/Mojave era). The FileVault line is read
    only in its known forms ("Yes …", "No"); a volume whose FileVault line is missing (a
    cut capture) keeps ``filevault`` None."""
    vols: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    for line in text.splitlines():
        body = re.sub(r"^[\s|+<>-]*", "", line).strip()
        m = re.match(r"^Volume (disk\d+s\d+)\b", body)
        if m:
            cur = {"device": m.group(1), "name": None, "roles": [], "filevault": None, "encryption": None,
                   "migrating": None, "locked": None, "container": None, "mount": None, "percent": None}
            vols.append(cur)
            continue
        if cur is None:
            continue
        m = re.match(r"^APFS Volume Disk \(Role\):\s+\S+\s+\((.+)\)$", body)
        if m:
            cur["roles"] = [] if m.group(1) == "No specific role" else [r.strip() for r in m.group(1).split(",")]
        m = re.match(r"^Name:\s+(.+?)(?:\s+\(Case-(?:in)?sensitive\))?$", body)
        if m:
            cur["name"] = m.group(1)
        m = re.match(r"^Mount Point:\s+(.+)$", body)
        if m:
            cur["mount"] = None if m.group(1) == "Not Mounted" else m.group(1)
        m = re.match(r"^FileVault:\s+(Yes|No)\b(.*)$", body)
        if m:
            cur["filevault"] = m.group(1) == "Yes"
            pct = re.search(r"(\d+(?:\.\d+)?)%", m.group(2))
            if pct or "progress" in m.group(2).lower():
                cur["migrating"] = True
                cur["percent"] = float(pct.group(1)) if pct else None
            if "Locked" in m.group(2) and "Unlocked" not in m.group(2):
                cur["locked"] = True
    return vols


def volume_facts(vols: list[dict[str, Any]], fde: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Volumes → docs/facts.md disk.volumes[] (pure)."""
    fde = fde or {}
    out = []
    for v in vols:
        roles = set(v["roles"])
        if roles & HELPER_ROLES:
            continue
        is_system = bool(roles & {"System", "Data"}) or v.get("mount") == "/"
        mount = v.get("mount") or ("/" if "System" in roles else "/System/Volumes/Data" if "Data" in roles else None)
        fv, enc = v.get("filevault"), v.get("encryption")
        state: str | None = None
        percent = v.get("percent")
        if v.get("locked"):
            encrypted, state = True, "locked"
        elif v.get("migrating"):
            encrypted = False
            state = "encrypting" if fv else "decrypting"
            if is_system and fde.get("state") in ("encrypting", "decrypting"):
                state, percent = fde["state"], fde.get("percent")
        elif is_system:
            # The system/data pair counts only with FileVault: on Apple silicon and T2 Macs
            # the disk is always hardware-encrypted, but without FileVault it unlocks itself.
            encrypted = fv
            state = None if fv is None else ("encrypted" if fv else "decrypted")
            if fv and fde.get("state") == "encrypting":
                encrypted, state, percent = False, "encrypting", fde.get("percent")
            elif not fv and fde.get("state") in ("deferred", "pending_restart"):
                encrypted, state = False, fde["state"]
        else:
            encrypted = bool(fv or enc) if (fv is not None or enc is not None) else None
            state = None if encrypted is None else ("encrypted" if encrypted else "decrypted")
        method = None
        if encrypted or state in ("encrypting", "decrypting", "locked"):
            method = "filevault" if (fv or is_system) else "apfs"
        out.append({"mount": mount, "device": v.get("device"), "role": "system" if is_system else "data",
                    "fixed": True, "encrypted": encrypted, "method": method, "state": state, "percent": percent,
                    "stack": [], "detail": {k: v[k] for k in ("name", "roles", "container") if v.get(k)}})
    return out


def _mounts(ctx: ProbeContext) -> dict[str, str]:
    """device → mount point from ``mount`` ("/dev/disk3s7 on /nix (apfs, …)")."""
    res = ctx.host.run(["mount"], timeout=10)
    if not res.ok:
        return {}
    out = {}
    for line in res.text().splitlines():
        m = re.match(r"^/dev/(disk\d+s\d+)\s+on\s+(.+?)\s+\(", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def probe(ctx: ProbeContext) -> dict[str, Any]:
    reasons: list[str] = []
    fde: dict[str, Any] = {}
    res = ctx.host.run(["fdesetup", "status"], timeout=20)
    if res.ok:
        fde = parse_fdesetup_status(res.text())
        if fde["filevault"] is None:
            reasons.append(reason("output.unrecognised", "fdesetup"))
    else:
        reasons.append(res.why_not())
    vols: list[dict[str, Any]] = []
    res = ctx.host.run(["diskutil", "apfs", "list", "-plist"], timeout=30)
    if res.ok:
        try:
            vols = parse_apfs_list_plist(res.stdout)
        except Exception as exc:  # noqa: BLE001 - plistlib raises several types
            reasons.append(reason("output.unrecognised", "diskutil apfs list -plist", type(exc).__name__))
    else:
        reasons.append(res.why_not())
        res = ctx.host.run(["diskutil", "apfs", "list"], timeout=30)
        if res.ok:
            vols = parse_apfs_list_text(res.text())
    if vols:
        mounts = _mounts(ctx)
        for v in vols:
            v["mount"] = v.get("mount") or mounts.get(v["device"] or "")
        volumes = volume_facts(vols, fde)
    else:
        enabled = fde.get("filevault")
        state, percent = fde.get("state"), fde.get("percent")
        if enabled is None:
            res = ctx.host.run(["/usr/libexec/mdmclient", "QuerySecurityInfo"], timeout=30)
            if res.ok:
                enabled = fde_enabled(parse_security_info(res.text()))
                state = None if enabled is None else ("encrypted" if enabled else "decrypted")
            else:
                reasons.append(res.why_not())
        if enabled is None and state is None:
            return {"status": "unknown", "reasons": reasons or [reason("value.missing", "FileVault")], "volumes": []}
        encrypted = bool(enabled) and state == "encrypted"
        volumes = [{"mount": "/", "device": None, "role": "system", "fixed": True,
                    "encrypted": encrypted if state is not None else None,
                    "method": "filevault" if enabled or state in ("encrypting", "decrypting", "deferred", "pending_restart") else None,
                    "state": state, "percent": percent, "stack": [], "detail": {"source": "fdesetup/mdmclient"}}]
    status = section_status([v["encrypted"] for v in volumes], reasons)
    if status != "ok" and not any("FileVault" in r for r in reasons):
        reasons.append(reason("volume.not_every", "FileVault"))
    return {"status": status, "reasons": reasons, "volumes": volumes}
