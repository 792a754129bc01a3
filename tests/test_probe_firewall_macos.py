"""macOS application firewall: every capture under macos/firewall."""
from __future__ import annotations

from conftest import shared

from auditagent.host import ReplayHost
from auditagent.probes import ProbeContext
from auditagent.probes.firewall.macos import SOCKETFILTERFW, parse_listapps, parse_socketfilterfw, section
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
