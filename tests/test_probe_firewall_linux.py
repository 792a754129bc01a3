"""Linux firewall probe: nft/iptables/ufw captures, replayed hosts, and this machine's nftables."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from auditagent.host import RealHost, ReplayHost
from auditagent.probes import ProbeContext
from auditagent.probes.firewall.linux import (analyse_iptables, analyse_nft_ruleset, probe as linux,
                                               parse_firewalld_state, parse_iptables_save, parse_ufw_status)
from conftest import OWN_FIXTURES, shared

HERE = OWN_FIXTURES / "captures" / "linux-debian12-vm-virtio-ext4"
NFT_ACCEPT = "linux/firewall/nft-json-list-ruleset-accept-policy.json"
UFW = "linux/firewall/ufw-status-verbose-active-with-fwd-rules.txt"

UFW_IPTABLES = """\
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:ufw-before-input - [0:0]
:ufw-user-input - [0:0]
-A INPUT -j ufw-before-input
-A ufw-before-input -i lo -j ACCEPT
-A ufw-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A ufw-before-input -j ufw-user-input
-A ufw-user-input -p tcp --dport 22 -j ACCEPT
COMMIT
"""


def test_nft_accept_policy_with_only_accept_rules_does_not_filter():
    v = analyse_nft_ruleset(json.loads(shared(NFT_ACCEPT).read_text()))
    assert v.filters is False and v.input_chains == 1 and v.rules == 2
    assert v.default_inbound() == "accept"


def test_nft_input_drop_policy_captured_here():
    v = analyse_nft_ruleset(json.loads((HERE / "nft-json-list-ruleset-inet-input-drop.json").read_text()))
    assert v.filters is True and v.default_drop_v4 and v.default_drop_v6 and v.rules == 3
    assert v.default_inbound() == "drop"


def test_nft_empty_ruleset_is_off():
    v = analyse_nft_ruleset(json.loads((HERE / "nft-json-list-ruleset-empty.json").read_text()))
    assert v.filters is False and v.input_chains == 0 and v.rules == 0


def test_nft_final_reject_through_jump_and_ipv4_only_drop():
    data = {"nftables": [
        {"chain": {"family": "inet", "table": "firewalld", "name": "filter_INPUT", "type": "filter",
                   "hook": "input", "prio": 10, "policy": "accept"}},
        {"rule": {"family": "inet", "table": "firewalld", "chain": "filter_INPUT",
                  "expr": [{"jump": {"target": "filter_INPUT_ZONES"}}]}},
        {"rule": {"family": "inet", "table": "firewalld", "chain": "filter_INPUT_ZONES",
                  "expr": [{"reject": {"type": "icmpx", "expr": "admin-prohibited"}}]}},
    ]}
    v = analyse_nft_ruleset(data)
    assert v.filters and v.default_inbound() == "drop"
    only_v4 = {"nftables": [{"chain": {"family": "ip", "table": "f", "name": "in", "type": "filter",
                                       "hook": "input", "policy": "drop"}}]}
    v4 = analyse_nft_ruleset(only_v4)
    assert v4.default_inbound(ipv6_enabled=True) == "accept"  # IPv6 left open
    assert v4.default_inbound(ipv6_enabled=False) == "drop"


def test_iptables_save_ufw_style_and_empty():
    v = analyse_iptables(parse_iptables_save(UFW_IPTABLES), parse_iptables_save(UFW_IPTABLES))
    assert v.filters and v.default_inbound() == "drop" and v.rules == 10  # v4 + v6
    empty = parse_iptables_save((HERE / "iptables-save-empty.txt").read_text())
    assert analyse_iptables(empty, None).filters is False
    conditional = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 23 -j DROP\n-A INPUT -m comment --comment x -j REJECT\nCOMMIT\n"
    c = analyse_iptables(parse_iptables_save(conditional), parse_iptables_save(conditional))
    assert c.filters and c.default_inbound() == "drop"  # the comment is not a match: final reject


def test_ufw_status_verbose_capture():
    st = parse_ufw_status(shared(UFW).read_text())
    assert st == {"active": True, "default_incoming": "drop", "rules": 6, "rules_in": 2}
    assert parse_ufw_status("Status: inactive\n")["active"] is False


def test_firewalld_state():
    assert parse_firewalld_state("running\n") is True
    assert parse_firewalld_state("not running\n") is False
    assert parse_firewalld_state("") is None


def test_probe_nft_capture_with_ufw_frontend():
    host = ReplayHost()
    host.add_command(["nft", "-j", "list", "ruleset"],
                     (HERE / "nft-json-list-ruleset-inet-input-drop.json").read_text())
    host.add_command(["ufw", "status", "verbose"], shared(UFW).read_text())
    s = linux(ProbeContext(host))
    assert s["status"] == "ok"
    assert (s["enabled"], s["backend"], s["default_inbound"], s["rules"]) == (True, "ufw", "drop", 3)


def test_probe_accept_only_ruleset_is_off():
    host = ReplayHost().add_command(["nft", "-j", "list", "ruleset"], shared(NFT_ACCEPT).read_text())
    s = linux(ProbeContext(host))
    assert (s["status"], s["enabled"], s["backend"], s["default_inbound"]) == ("ok", False, "nftables", "accept")


def test_probe_nft_permission_denied_is_unknown():
    host = ReplayHost()
    host.add_command(["nft", "-j", "list", "ruleset"], "", returncode=1,
                     stderr="Error: Could not process rule: Operation not permitted\n")
    host.add_command(["iptables-save"], "", returncode=1,
                     stderr="iptables-save v1.8.9 (nf_tables): Could not fetch rule set generation id: "
                            "Permission denied (you must be root)\n")
    s = linux(ProbeContext(host))
    assert s["status"] == "unknown" and s["enabled"] is None
    assert any(r.startswith("tool.denied: nft") for r in s["reasons"])


def test_probe_without_nft_uses_iptables():
    host = ReplayHost().add_command(["iptables-save"], UFW_IPTABLES).add_command(["ip6tables-save"], UFW_IPTABLES)
    s = linux(ProbeContext(host))
    assert (s["enabled"], s["backend"], s["default_inbound"]) == (True, "iptables", "drop")


def test_probe_no_tools_is_unknown():
    s = linux(ProbeContext(ReplayHost()))
    assert s["status"] == "unknown" and s["enabled"] is None and s["reasons"]


def _nft_usable() -> bool:
    if os.geteuid() != 0 or not shutil.which("nft"):
        return False
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _nft_usable(), reason="needs root and a working nft (nftables package)")
def test_live_nftables_empty_then_drop_policy():
    before = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    table = "auditagent_probe_test"
    if not before.strip():
        s = linux(ProbeContext(RealHost("linux")))
        assert (s["enabled"], s["backend"], s["default_inbound"]) == (False, "nftables", "accept")
    ruleset = (f"table inet {table} {{\n chain input {{\n  type filter hook input priority filter; policy drop;\n"
               "  iif \"lo\" accept\n  ct state established,related accept\n }\n}\n")
    load = subprocess.run(["nft", "-f", "-"], input=ruleset, capture_output=True, text=True)
    if load.returncode:
        pytest.skip(f"nft refused to load a ruleset here: {load.stderr.strip()}")
    try:
        s = linux(ProbeContext(RealHost("linux")))
        assert s["enabled"] is True and s["default_inbound"] == "drop" and s["rules"] >= 2
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], capture_output=True)
    assert table not in subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
