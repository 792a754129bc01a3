"""macOS ``firewall`` section: the Application Firewall (ALF).

Sources, best first: /Library/Preferences/com.apple.alf.plist ``globalstate`` (0 off,
1 on, 2 block all incoming) — structured, but macOS 15 moved the setting out of that
file, so there it is skipped; ``system_profiler -json SPFirewallDataType`` (macOS 10.15
on; its values are keys such as ``spfirewall_globalstate_block_all``, never translated,
where the text form's "Mode: …" lines are); ``socketfilterfw --getglobalstate
--getblockall``; then mdmclient QuerySecurityInfo. ALF filters per application, so ``default_inbound`` is
``drop`` only with "block all incoming"; on without it, it is left unknown.
"""
from __future__ import annotations

import json
import plistlib
import re
from typing import Any

from auditagent.probes import ProbeContext
from auditagent.probes.sources.macos_mdmclient import firewall as mdm_firewall
from auditagent.probes.sources.macos_mdmclient import parse_security_info
from auditagent.probes.os_info.macos import version_tuple
from auditagent.probes import section_status
from auditagent.reasons import reason

ALF_PLIST = "/Library/Preferences/com.apple.alf.plist"
SOCKETFILTERFW = "/usr/libexec/ApplicationFirewall/socketfilterfw"
SYSTEM_PROFILER_FIREWALL = ["/usr/sbin/system_profiler", "-json", "SPFirewallDataType"]

# spfirewall_globalstate → (enabled, block_all), as SPFirewallReporter names ALF's globalstate 0/1/2.
_PROFILER_STATES = {"spfirewall_globalstate_allow_all": (False, None),
                    "spfirewall_globalstate_limit_connections": (True, False),
                    "spfirewall_globalstate_block_all": (True, True)}
_PROFILER_YES_NO = {"Yes": True, "No": False}


def parse_alf_plist(data: bytes) -> dict[str, Any] | None:
    state = plistlib.loads(data).get("globalstate")
    if not isinstance(state, int):
        return None
    return {"enabled": state >= 1, "block_all": state == 2, "stealth": None}


def parse_system_profiler_firewall(text: str) -> dict[str, Any] | None:
    """``system_profiler -json SPFirewallDataType``: one ``spfirewall_settings`` item whose
    ``spfirewall_globalstate`` names the mode. None for anything else (not JSON, no item, a
    state this code does not know): unknown, so the next source is asked."""
    try:
        items = json.loads(text).get("SPFirewallDataType")
    except (ValueError, AttributeError):
        return None
    if not isinstance(items, list) or not items or not isinstance(items[-1], dict):
        return None
    item = items[-1]
    state = _PROFILER_STATES.get(item.get("spfirewall_globalstate"))
    if state is None:
        return None
    apps = item.get("spfirewall_applications")
    return {"enabled": state[0], "block_all": state[1],
            "stealth": _PROFILER_YES_NO.get(item.get("spfirewall_stealthenabled")),
            "apps": len(apps) if isinstance(apps, dict) else None}


def parse_socketfilterfw(text: str) -> dict[str, Any] | None:
    """``--getglobalstate`` (+ ``--getblockall`` / ``--getstealthmode``) lines."""
    out: dict[str, Any] = {"enabled": None, "block_all": None, "stealth": None}
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"^Firewall is (enabled|disabled)\.(?:\s*\(State = (\d)\))?", line)
        if m:
            out["enabled"] = m.group(1) == "enabled"
            continue
        if re.match(r"^Firewall is blocking all", line):  # a wording of state 2 (seen up to Sequoia)
            out["enabled"], out["block_all"] = True, True
        # --getblockall: "Firewall has block all state set to disabled." or "Block all DISABLED!".
        # "State = 2" alone does not say block all: Ventura prints it with block all disabled.
        m = re.match(r"^(?:Firewall has block all state set to|Block all) (enabled|disabled)", line, re.I)
        if m:
            out["block_all"] = m.group(1).lower() == "enabled"
        # "Stealth mode enabled" (up to Sonoma) or "Firewall stealth mode is on" (Tahoe)
        m = re.match(r"^(?:Firewall )?[Ss]tealth mode (?:is )?(enabled|disabled|on|off)\b", line)
        if m:
            out["stealth"] = m.group(1) in ("enabled", "on")
    return out if out["enabled"] is not None else None


def parse_listapps(text: str) -> list[dict[str, Any]]:
    """``socketfilterfw --listapps``: ``Name (state: N)`` lines."""
    return [{"name": m.group(1).strip(), "state": int(m.group(2))}
            for m in re.finditer(r"^(.+?) \(state: (\d+)\)\s*$", text, re.M)]


def section(state: dict[str, Any] | None, reasons: list[str], rules: int | None = None) -> dict[str, Any]:
    enabled = state.get("enabled") if state else None
    default_inbound = None
    if enabled is False:
        default_inbound = "accept"
    elif enabled and state and state.get("block_all"):
        default_inbound = "drop"
    return {"status": section_status([enabled], reasons), "reasons": reasons, "enabled": enabled,
            "backend": "macos_alf", "default_inbound": default_inbound, "profiles": None, "rules": rules}


def probe(ctx: ProbeContext) -> dict[str, Any]:
    reasons: list[str] = []
    state = None
    version = version_tuple(ctx.host)
    if version is None or version < (15,):
        try:
            state = parse_alf_plist(ctx.host.read_bytes(ALF_PLIST))
        except FileNotFoundError:
            pass
        except Exception as exc:  # noqa: BLE001 - plistlib raises several types
            reasons.append(reason("file.unreadable", ALF_PLIST, type(exc).__name__))
    rules = None
    if state is None:
        res = ctx.host.run(SYSTEM_PROFILER_FIREWALL, timeout=30, env={"LC_ALL": "C"})
        if res.ok:
            state = parse_system_profiler_firewall(res.text())
            rules = state.pop("apps") if state else None
    if state is None:
        res = ctx.host.run([SOCKETFILTERFW, "--getglobalstate", "--getblockall", "--getstealthmode"], timeout=10)
        if res.ok:
            state = parse_socketfilterfw(res.text())
            if state is None:
                reasons.append(reason("output.unrecognised", "socketfilterfw"))
        else:
            reasons.append(res.why_not())
    if state is None:
        res = ctx.host.run(["/usr/libexec/mdmclient", "QuerySecurityInfo"], timeout=30)
        if res.ok:
            state = mdm_firewall(parse_security_info(res.text()))
        else:
            reasons.append(res.why_not())
    if rules is None:
        res = ctx.host.run([SOCKETFILTERFW, "--listapps"], timeout=10)
        if res.ok and "Total number of apps" in res.text():
            rules = len(parse_listapps(res.text()))
    return section(state, reasons if state is None else [], rules)
