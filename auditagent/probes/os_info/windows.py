"""Windows ``os`` section: product, version, build.UBR, display version, edition.

The registry (HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion) is the source: it is
local, fast and carries UBR (the monthly patch level), which CIM and systeminfo lack.
Whether that build is still supported is the policy's call (os_supported).
"""
from __future__ import annotations

from typing import Any

from auditagent.probes import ProbeContext
from auditagent.probes import section_status
from auditagent.probes.sources.windows_registry import dword, values
from auditagent.probes.sources.windows_snapshot import snapshot, source
from auditagent.reasons import reason

CURRENT_VERSION = "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion"
ENVIRONMENT = "HKLM\\SYSTEM\\CurrentControlSet\\Control\\Session Manager\\Environment"

# EditionID → the edition name Microsoft's lifecycle pages use.
EDITIONS = {
    "core": "Home", "coren": "Home N", "coresinglelanguage": "Home Single Language",
    "corecountryspecific": "Home China", "professional": "Pro", "professionaln": "Pro N",
    "professionaleducation": "Pro Education", "professionalworkstation": "Pro for Workstations",
    "enterprise": "Enterprise", "enterprisen": "Enterprise N", "enterprises": "Enterprise LTSC",
    "enterprisesn": "Enterprise LTSC N", "iotenterprise": "IoT Enterprise", "iotenterprises": "IoT Enterprise LTSC",
    "education": "Education", "educationn": "Education N", "serverstandard": "Server Standard",
    "serverdatacenter": "Server Datacenter",
}

WINDOWS_11_FIRST_BUILD = 22000


def os_from_registry(reg: dict[str, Any], arch: str | None = None) -> dict[str, Any]:
    """Pure: CurrentVersion values → the os section's fields."""
    build = str(reg.get("CurrentBuild") or reg.get("CurrentBuildNumber") or "").strip() or None
    ubr = dword(reg.get("UBR"))
    major = dword(reg.get("CurrentMajorVersionNumber"))
    minor = dword(reg.get("CurrentMinorVersionNumber"))
    if build:
        version = f"{major if major is not None else 10}.{minor if minor is not None else 0}.{build}"
    else:
        version = None
    name = str(reg.get("ProductName") or "").strip() or None
    if name and build and build.isdigit() and int(build) >= WINDOWS_11_FIRST_BUILD:
        # Windows 11 kept ProductName "Windows 10 …" in the registry; the build tells the truth.
        name = name.replace("Windows 10", "Windows 11")
    if name and not name.startswith("Microsoft"):
        name = f"Microsoft {name}"
    edition_id = str(reg.get("EditionID") or "").strip()
    return {
        "id": "windows",
        "name": name,
        "version": version,
        "build": f"{build}.{ubr}" if build and ubr is not None else build,
        "release": str(reg.get("DisplayVersion") or reg.get("ReleaseId") or "").strip() or None,
        "edition": EDITIONS.get(edition_id.lower(), edition_id or None),
        "kernel": f"{version}.{ubr}" if version and ubr is not None else version,
        "arch": arch,
    }


def probe(ctx: ProbeContext) -> dict[str, Any]:
    reasons: list[str] = []
    reg = values(ctx.host, CURRENT_VERSION)
    env = values(ctx.host, ENVIRONMENT) or {}
    arch = env.get("PROCESSOR_ARCHITECTURE") or ctx.host.getenv("PROCESSOR_ARCHITEW6432") \
        or ctx.host.getenv("PROCESSOR_ARCHITECTURE")
    if reg is None:
        reasons.append(reason("registry.unreadable", CURRENT_VERSION))
        reg = {}
        osinfo, why = source(snapshot(ctx.host), "os")
        if isinstance(osinfo, dict):  # CIM fallback: no UBR, no display version
            reg = {"ProductName": str(osinfo.get("Caption") or "").replace("Microsoft ", ""),
                   "CurrentBuild": osinfo.get("BuildNumber")}
            arch = arch or osinfo.get("OSArchitecture")
        elif why:
            reasons.append(why)
    section = os_from_registry(reg, str(arch) if arch else None)
    section["status"] = section_status([section[k] for k in ("name", "version", "build", "release", "edition")],
                                       reasons)
    if section["status"] != "ok" and not reasons:
        reasons.append(reason("value.missing", CURRENT_VERSION))
    section["reasons"] = reasons
    return section
