"""Windows ``firewall`` section: Defender Firewall, all three profiles.

A laptop moves between domain, private and public networks, so the firewall counts as
enabled only when all three profiles are on. Sources: Get-NetFirewallProfile
(ActiveStore = what is in force, GPO included) from the snapshot; the registry as the
structured fallback (policy keys win over local ones, as Windows applies them).
Text parsers for Get-NetFirewallProfile (not localised) and netsh (localised: English
only) serve captures and last resorts.
"""
from __future__ import annotations

import re
from typing import Any

from auditagent.probes import ProbeContext
from auditagent.probes import section_status
from auditagent.probes.sources.windows_format_list import parse_format_list, parse_format_table
from auditagent.probes.sources.windows_registry import dword, values
from auditagent.probes.sources.windows_snapshot import snapshot, source_list
from auditagent.reasons import reason

PROFILE_NAMES = {"domain": "domain", "private": "private", "public": "public",
                 "standard": "private"}  # the registry calls the private profile "Standard"
LOCAL_KEY = "HKLM\\SYSTEM\\CurrentControlSet\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\{}Profile"
POLICY_KEY = "HKLM\\SOFTWARE\\Policies\\Microsoft\\WindowsFirewall\\{}Profile"


def _bool(text: Any) -> bool | None:
    """GpoBoolean: False 0, True 1 (NotConfigured 2: not a state of its own here)."""
    t = str(text).strip().lower()
    return {"true": True, "false": False, "1": True, "0": False}.get(t)


# MSFT_NetFirewallProfile.DefaultInboundAction (the Action enum): NotConfigured 0, Allow 2, Block 4.
_ACTION_BY_CODE = {"0": "notconfigured", "2": "allow", "4": "block"}


def _inbound(action: Any, enabled: bool | None) -> str | None:
    a = str(action if action is not None else "").strip().lower()
    a = _ACTION_BY_CODE.get(a, a)
    if a == "block" or (a == "notconfigured" and enabled):
        return "drop"  # NotConfigured = the built-in default, which blocks unsolicited inbound
    if a == "allow":
        return "accept"
    return None


def _field(o: dict[str, Any], name: str) -> Any:
    """The snapshot's integer (``EnabledValue``) first, else the property as given (a name in
    Format-List and the snapshot, a number in a raw ``ConvertTo-Json``)."""
    value = o.get(f"{name}Value")
    return value if value is not None and not isinstance(value, bool) else o.get(name)


def from_profiles(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Get-NetFirewallProfile objects (JSON or Format-List text) → {profile: {enabled, inbound}}."""
    out = {}
    for o in objs:
        name = PROFILE_NAMES.get(str(o.get("Name") or "").strip().lower())
        if name:
            enabled = _bool(_field(o, "Enabled"))
            out[name] = {"enabled": enabled, "inbound": _inbound(_field(o, "DefaultInboundAction"), enabled)}
    return out


def parse_get_netfirewallprofile(text: str) -> dict[str, dict[str, Any]]:
    """Get-NetFirewallProfile as Format-List, or as a Format-Table (``ft Name,Enabled``): the
    property names and True/False are the same in every UI language."""
    objs = [o for o in parse_format_list(text) if "Name" in o and "Enabled" in o]
    if not objs:
        objs = [o for o in parse_format_table(text, "Name") if "Enabled" in o]
    return from_profiles(objs)


def parse_netsh_show(text: str) -> tuple[dict[str, dict[str, Any]], str | None]:
    """``netsh advfirewall show {allprofiles|currentprofile}``: English only, since netsh
    localises both the headings and the ON/OFF values."""
    out: dict[str, dict[str, Any]] = {}
    current: str | None = None
    for line in text.splitlines():
        m = re.match(r"^(Domain|Private|Public) Profile Settings:\s*$", line.strip())
        if m:
            current = m.group(1).lower()
            out[current] = {"enabled": None, "inbound": None}
            continue
        if current is None:
            continue
        m = re.match(r"^State\s+(ON|OFF)\s*$", line.strip())
        if m:
            out[current]["enabled"] = m.group(1) == "ON"
        m = re.match(r"^Firewall Policy\s+(\w+),", line.strip())
        if m:
            out[current]["inbound"] = {"blockinbound": "drop", "blockinboundalways": "drop",
                                       "allowinbound": "accept"}.get(m.group(1).lower())
    if not out:
        return {}, reason("output.language", "netsh", "netsh is only read in English")
    return out, None


def from_registry(ctx: ProbeContext) -> dict[str, dict[str, Any]]:
    out = {}
    for reg_name in ("Domain", "Standard", "Public"):
        local = values(ctx.host, LOCAL_KEY.format(reg_name)) or {}
        policy = values(ctx.host, POLICY_KEY.format("Private" if reg_name == "Standard" else reg_name)) or {}
        enabled = dword(policy.get("EnableFirewall", local.get("EnableFirewall")))
        if enabled is None:
            continue
        inbound = dword(policy.get("DefaultInboundAction", local.get("DefaultInboundAction")))
        out[PROFILE_NAMES[reg_name.lower()]] = {
            "enabled": bool(enabled),
            "inbound": None if inbound is None else ("drop" if inbound == 1 else "accept"),
        }
    return out


def section(profiles: dict[str, dict[str, Any]], reasons: list[str]) -> dict[str, Any]:
    """The firewall section from per-profile states (pure)."""
    states = {p: profiles.get(p, {}).get("enabled") for p in ("domain", "private", "public")}
    if any(v is False for v in states.values()):
        enabled: bool | None = False  # one profile off is enough to be exposed on that network
    elif all(v is True for v in states.values()):
        enabled = True
    else:
        enabled = None
    inbound = [profiles[p]["inbound"] for p in profiles if profiles[p].get("enabled")]
    default_inbound = None
    if inbound and "accept" in inbound:
        default_inbound = "accept"
    elif inbound and all(i == "drop" for i in inbound) and enabled:
        default_inbound = "drop"
    elif enabled is False and not inbound:
        default_inbound = "accept"  # every seen profile off: nothing filters
    status = section_status(list(states.values()), reasons)
    return {"status": status, "reasons": reasons, "enabled": enabled, "backend": "windows",
            "default_inbound": default_inbound,
            "profiles": states if any(v is not None for v in states.values()) else None, "rules": None}


def probe(ctx: ProbeContext) -> dict[str, Any]:
    reasons: list[str] = []
    objs, why = source_list(snapshot(ctx.host), "firewall_profiles")
    profiles = from_profiles(objs) if objs else {}
    if not profiles:
        reasons.append(why or reason("value.missing", "firewall_profiles"))
        profiles = from_registry(ctx)
        if not profiles:
            reasons.append(reason("registry.unreadable", "firewall profiles"))
    return section(profiles, reasons)
