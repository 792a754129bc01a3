"""macOS application firewall: every capture under macos/firewall."""
from __future__ import annotations

from conftest import shared

from auditagent.host import ReplayHost
from auditagent.probes import ProbeContext
from auditagent.probes.firewall.macos import SOCKETFILTERFW, parse_listapps, parse_socketfilterfw
from auditagent.probes.firewall.macos import probe as fw_macos
from auditagent.probes.sources.macos_mdmclient import firewall

ENC = "macos/encryption/"


def test_socketfilterfw_multi_flags_enabled_stealth():
    state = parse_socketfilterfw(shared("macos/firewall/socketfilterfw-multi-flags-enabled-stealth.txt").read_text())
    assert state == {"enabled": True, "block_all": False, "stealth": True}
    assert parse_socketfilterfw("Firewall is disabled. (State = 0)")["enabled"] is False
    assert parse_socketfilterfw("Brandväggen är på.") is None


def test_socketfilterfw_listapps():
    apps = parse_listapps(shared("macos/firewall/socketfilterfw-listapps.txt").read_text())
    assert len(apps) == 6 and apps[1] == {"name": "Pop Helper.app", "state": 4}


def test_firewall_probe_falls_back_to_mdmclient():
    host = ReplayHost(platform="macos")
    host.add_command(["/usr/libexec/mdmclient", "QuerySecurityInfo"],
                     shared(ENC + "mdmclient-QuerySecurityInfo-fde-enabled.txt"))
    s = fw_macos(ProbeContext(host))
    assert s["enabled"] is True and s["default_inbound"] is None and s["status"] == "ok"
    host = ReplayHost(platform="macos")
    host.add_command([SOCKETFILTERFW, "--getglobalstate", "--getblockall", "--getstealthmode"], "garbled")
    s = fw_macos(ProbeContext(host))
    assert s["enabled"] is None and s["status"] == "unknown"

