"""Windows ``disk`` section: BitLocker per fixed volume.

Sources, best first: Get-BitLockerVolume and Win32_EncryptableVolume (both from the one
PowerShell snapshot), then ``manage-bde -status`` text (English/German only).
"""
from __future__ import annotations

from typing import Any

from auditagent.probes import ProbeContext
from auditagent.probes import section_status
from auditagent.probes.disk_encryption.windows_bitlocker import (Record, from_bitlocker_volume, from_encryptable_volume,
                                                   parse_manage_bde, volume_fact)
from auditagent.probes.sources.windows_snapshot import snapshot, source_list
from auditagent.reasons import reason


def _records(ctx: ProbeContext, snap: dict[str, Any], reasons: list[str]) -> list[Record]:
    vols, why = source_list(snap, "bitlocker")
    if vols is not None:
        return [from_bitlocker_volume(v) for v in vols]
    reasons.append(why or reason("value.missing", "bitlocker"))
    vols, why = source_list(snap, "encryptable_volumes")
    if vols is not None:
        return [from_encryptable_volume(v) for v in vols]
    reasons.append(why or reason("value.missing", "encryptable_volumes"))
    result = ctx.host.run(["manage-bde", "-status"], timeout=60)
    if not result.ok:
        reasons.append(result.why_not())
        return []
    # manage-bde writes in the console's OEM code page; German umlauts in labels survive
    # only if decoded right. UTF-8 first (PowerShell 7 / chcp 65001), else cp850 (German OEM).
    text = result.text()
    if "\ufffd" in text:
        text = result.stdout.decode("cp850", errors="replace")
    records, why = parse_manage_bde(text)
    if why:
        reasons.append(why)
    return records


def _fixed_drives(snap: dict[str, Any]) -> dict[str, bool] | None:
    """Drive letter → fixed? from Win32_LogicalDisk (DriveType 3 fixed, 2 removable)."""
    disks, _why = source_list(snap, "logical_disks")
    if disks is None:
        return None
    return {str(d.get("DeviceID") or "").upper(): d.get("DriveType") == 3 for d in disks if d.get("DeviceID")}


def probe(ctx: ProbeContext) -> dict[str, Any]:
    snap = snapshot(ctx.host)
    reasons: list[str] = []
    system_drive = (ctx.host.getenv("SystemDrive") or "C:").upper()
    records = _records(ctx, snap, reasons)
    fixed_map = _fixed_drives(snap)
    volumes: list[dict[str, Any]] = []
    for rec in records:
        mount = (rec.get("mount") or "").upper()
        # Volumes without a drive letter (recovery, EFI) hold no user data.
        if mount.startswith("\\\\?\\") and rec.get("volume_type") != "os":
            continue
        fixed = fixed_map.get(mount) if fixed_map and mount in fixed_map else None
        if fixed is False or rec.get("volume_type") == "portable":
            continue  # removable media is not a volume of this machine (facts: fixed data)
        volumes.append(volume_fact(rec, system_drive, fixed))
    seen = {(v["mount"] or "").upper() for v in volumes}
    for letter, fixed in sorted((fixed_map or {}).items()):
        if fixed and letter not in seen and records:
            # A fixed NTFS/ReFS drive BitLocker did not list cannot be BitLocker-protected,
            # but we did not *see* its state: leave it unknown, with the reason.
            volumes.append({"mount": letter, "device": None, "role": "system" if letter == system_drive else "data",
                            "fixed": True, "encrypted": None, "method": None, "state": None, "percent": None,
                            "stack": [], "detail": {}})
            reasons.append(reason("volume.not_listed", letter))
    if not volumes:
        return {"status": "unknown", "reasons": reasons or ["no BitLocker volume information"], "volumes": []}
    status = section_status([v["encrypted"] for v in volumes], reasons)
    return {"status": status, "reasons": reasons, "volumes": volumes}
