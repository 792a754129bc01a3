"""macOS application firewall: every capture under macos/firewall."""
from __future__ import annotations

from conftest import shared

from auditagent.host import ReplayHost
from auditagent.probes import ProbeContext
from auditagent.probes.firewall.macos import (SOCKETFILTERFW, SYSTEM_PROFILER_FIREWALL, parse_listapps,
                                              parse_socketfilterfw, parse_system_profiler_firewall, section)
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



def _pub_fw(name: str) -> str:
    from conftest import OWN_FIXTURES
    return (OWN_FIXTURES / "public/macos/firewall" / name).read_text()


def _outputs(transcript: str) -> list[tuple[str, str]]:
    """A pasted shell transcript → [(command, its output)], split at the "$ " prompt lines."""
    out: list[tuple[str, list[str]]] = []
    for line in transcript.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        elif out and line.strip():
            out[-1][1].append(line)
    return [(cmd, "\n".join(lines)) for cmd, lines in out]


def test_public_block_all_DISABLED_wording():
    # "Block all DISABLED!" is --getblockall's other wording; the ALF error line about stealth is not a state.
    text = _pub_fw("socketfilterfw-four-flags-block-all-DISABLED-stealth-error.txt")
    assert parse_socketfilterfw(text) == {"enabled": True, "block_all": False, "stealth": None}
    host = ReplayHost(platform="macos")
    host.add_command([SOCKETFILTERFW, "--getglobalstate", "--getblockall", "--getstealthmode"], text.encode())
    s = fw_macos(ProbeContext(host))
    # On, filtering per application: whether inbound is dropped by default is not a yes/no here.
    assert (s["enabled"], s["default_inbound"], s["status"]) == (True, None, "ok")


def test_public_m_cli_states_0_1_2():
    seen = [(cmd, parse_socketfilterfw(out)) for cmd, out in
            _outputs(_pub_fw("m-cli-firewall-status-state-2-disable-enable.txt"))
            + _outputs(_pub_fw("m-cli-firewall-disable-blockall-on-status-state-2.txt"))]
    assert seen == [
        ("m firewall status", {"enabled": True, "block_all": None, "stealth": None}),
        # two commands' outputs after one prompt: the last state printed is the one in force
        ("m firewall disable && m firewall enable", {"enabled": True, "block_all": None, "stealth": None}),
        ("./m firewall disable", {"enabled": False, "block_all": None, "stealth": None}),
        ("./m firewall blockall on", None),  # a setter's confirmation is not a state
        ("./m firewall status", {"enabled": True, "block_all": None, "stealth": None}),
    ]
    assert section(parse_socketfilterfw("Firewall is disabled. (State = 0)"), [])["default_inbound"] == "accept"


def test_public_blocking_all_state_2_wording():
    line = _pub_fw("socketfilterfw-getglobalstate-blocking-all-state-2-inline.txt")
    # The PR text gives the output inline after the command: take exactly that sentence.
    output = line[line.index("Firewall is"):line.index("(State = 2)") + len("(State = 2)")]
    state = parse_socketfilterfw(output)
    assert state == {"enabled": True, "block_all": True, "stealth": None}
    assert section(state, [])["default_inbound"] == "drop"


def test_public_tahoe_stealth_wording():
    # A test report's table quotes each output in backticks; the two outputs are taken from it.
    rows = _pub_fw("socketfilterfw-tahoe-26.3-table-state-0-stealth-is-off.md")
    output = "\n".join(line.split("`")[1] for line in rows.splitlines())
    assert parse_socketfilterfw(output) == {"enabled": False, "block_all": None, "stealth": False}
    # the report names "Firewall stealth mode is on" as the other state seen on 26.3
    assert parse_socketfilterfw("Firewall is enabled. (State = 1)\nFirewall stealth mode is on")["stealth"] is True


GLOBALSTATE = [SOCKETFILTERFW, "--getglobalstate", "--getblockall", "--getstealthmode"]


def _sequoia_host(profiler: bytes | str) -> ReplayHost:
    """macOS 15 (no ALF plist to read) answering system_profiler's firewall query with ``profiler``."""
    host = ReplayHost(platform="macos")
    host.add_file("/System/Library/CoreServices/SystemVersion.plist",
                  b'<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict>'
                  b'<key>ProductVersion</key><string>15.3</string></dict></plist>')
    host.add_command(SYSTEM_PROFILER_FIREWALL, profiler.encode() if isinstance(profiler, str) else profiler)
    return host


def test_public_system_profiler_json_firewall_off_vm():
    # The Swift raw literal keeps the source file's four-space indentation; JSON does not mind.
    text = _pub_fw("system_profiler-json-SPFirewallDataType-macos-27-vm-allow-all-services.json")
    state = parse_system_profiler_firewall(text)
    assert state == {"enabled": False, "block_all": None, "stealth": False, "apps": 8}
    host = _sequoia_host(text)
    # socketfilterfw would say "on": the structured source is asked first and stands
    host.add_command(GLOBALSTATE, b"Firewall is enabled. (State = 1)\n")
    s = fw_macos(ProbeContext(host))
    assert (s["enabled"], s["default_inbound"], s["rules"], s["status"]) == (False, "accept", 8, "ok")
    assert tuple(SYSTEM_PROFILER_FIREWALL) in host.calls and tuple(GLOBALSTATE) not in host.calls


def test_public_system_profiler_json_limit_connections_stealth():
    text = _pub_fw("system_profiler-json-SPFirewallDataType-laptop-limit-connections-stealth-anonymised-upstream.json")
    state = parse_system_profiler_firewall(text)
    # one app blocked and one local-only are per-app rules, not "block all incoming"
    assert state == {"enabled": True, "block_all": False, "stealth": True, "apps": 5}
    s = fw_macos(ProbeContext(_sequoia_host(text)))
    assert (s["enabled"], s["default_inbound"], s["rules"], s["status"]) == (True, None, 5, "ok")
    # block all is its own key value: drop by default
    blocking = text.replace("spfirewall_globalstate_limit_connections", "spfirewall_globalstate_block_all")
    assert parse_system_profiler_firewall(blocking)["block_all"] is True


def test_system_profiler_json_unknown_shapes_fall_back_to_socketfilterfw():
    tool = _pub_fw("socketfilterfw-four-flags-tahoe-wording-state-1-allowsigned.txt")
    for answer in (b"", b"not json", b'{"SPFirewallDataType": []}', b'{"SPUSBDataType": []}',
                   b'{"SPFirewallDataType": [{"spfirewall_globalstate": "spfirewall_globalstate_new"}]}', b"[1]"):
        assert parse_system_profiler_firewall(answer.decode()) is None, answer
        host = _sequoia_host(answer)
        host.add_command(GLOBALSTATE, tool.encode())
        s = fw_macos(ProbeContext(host))
        assert (s["enabled"], s["default_inbound"], s["status"]) == (True, None, "ok"), answer


def test_public_socketfilterfw_four_flags_state_1_tahoe_wording():
    # The same test file's socketfilterfw answer (indented as the Swift literal stands)
    text = _pub_fw("socketfilterfw-four-flags-tahoe-wording-state-1-allowsigned.txt")
    assert parse_socketfilterfw(text) == {"enabled": True, "block_all": False, "stealth": False}
