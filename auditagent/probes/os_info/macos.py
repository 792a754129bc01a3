"""macOS ``os`` section.

SystemVersion.plist is read first (a file, structured). A program built against an old
SDK is shown the compatibility copy ("10.16" for every macOS 11+), so that answer is not
trusted: ``sw_vers`` is asked then, with SYSTEM_VERSION_COMPAT=0.
"""
from __future__ import annotations

import plistlib
import re
from typing import Any

from auditagent.host import Host
from auditagent.probes import ProbeContext
from auditagent.probes import section_status
from auditagent.reasons import reason

SYSTEM_VERSION = "/System/Library/CoreServices/SystemVersion.plist"
RELEASES = {"10.12": "Sierra", "10.13": "High Sierra", "10.14": "Mojave", "10.15": "Catalina", "11": "Big Sur",
            "12": "Monterey", "13": "Ventura", "14": "Sonoma", "15": "Sequoia", "26": "Tahoe"}


def parse_sw_vers(text: str) -> dict[str, str]:
    """``sw_vers`` (``ProductName:<tab>macOS`` lines; a pasted prompt line is ignored)."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\s*(ProductName|ProductVersion|ProductVersionExtra|BuildVersion):\s*(.+?)\s*$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def parse_system_version_plist(data: bytes) -> dict[str, str]:
    doc = plistlib.loads(data)
    return {"ProductName": doc.get("ProductName"), "ProductVersion": doc.get("ProductVersion"),
            "BuildVersion": doc.get("ProductBuildVersion")}


def release_name(version: str | None) -> str | None:
    if not version:
        return None
    parts = version.split(".")
    return RELEASES.get(".".join(parts[:2]) if parts[0] == "10" else parts[0])


def os_fields(info: dict[str, Any], kernel: str | None = None, arch: str | None = None) -> dict[str, Any]:
    version = info.get("ProductVersion")
    return {"id": "macos", "id_like": None, "name": info.get("ProductName"), "version": version,
            "build": info.get("BuildVersion"), "release": release_name(version), "edition": None,
            "kernel": kernel, "arch": arch}


def version_info(host: Host) -> tuple[dict[str, Any], list[str]]:
    """ProductName/ProductVersion/BuildVersion, memoised: the firewall and patches probes need it too."""

    def compute() -> tuple[dict[str, Any], list[str]]:
        reasons: list[str] = []
        info: dict[str, Any] = {}
        try:
            info = parse_system_version_plist(host.read_bytes(SYSTEM_VERSION))
        except FileNotFoundError:
            reasons.append(reason("file.missing", SYSTEM_VERSION))
        except Exception as exc:  # noqa: BLE001 - plistlib raises several types
            reasons.append(reason("file.unreadable", SYSTEM_VERSION, type(exc).__name__))
        if not info.get("ProductVersion") or info.get("ProductVersion") == "10.16":
            res = host.run(["sw_vers"], timeout=10, env={"SYSTEM_VERSION_COMPAT": "0"})
            if res.ok:
                info = parse_sw_vers(res.text()) or info
                reasons = []
            else:
                reasons.append(res.why_not())
                if info.get("ProductVersion") == "10.16":
                    info = {}  # the compatibility copy's answer: the real version is not known
        return info, reasons

    return host.memo("macos_version", compute)


def version_tuple(host: Host) -> tuple[int, ...] | None:
    """(14, 4, 1) for 14.4.1; (10, 15, 5) for Catalina."""
    info, _ = version_info(host)
    nums = re.findall(r"\d+", str(info.get("ProductVersion") or ""))
    return tuple(int(n) for n in nums) if nums else None


def _uname(host: Host, flag: str) -> str | None:
    res = host.run(["uname", flag], timeout=5)
    return res.text().strip() or None if res.ok else None


def probe(ctx: ProbeContext) -> dict[str, Any]:
    info, reasons = version_info(ctx.host)
    section = os_fields(info, _uname(ctx.host, "-r"), _uname(ctx.host, "-m"))
    section["status"] = section_status([section[k] for k in ("name", "version", "build")], reasons)
    section["reasons"] = list(reasons)
    return section
