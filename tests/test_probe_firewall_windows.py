"""Windows firewall profiles: every capture under windows/firewall."""
from __future__ import annotations

from _winhelpers import windows_host

from conftest import shared

from auditagent.probes import ProbeContext
from auditagent.probes.firewall.windows import parse_get_netfirewallprofile, parse_netsh_show, section
from auditagent.probes.firewall.windows import probe as fw_windows

FW = "windows/firewall/"


def test_get_netfirewallprofile_text_all_disabled():
    profiles = parse_get_netfirewallprofile(shared(FW + "get-netfirewallprofile-all-disabled.txt").read_text())
    assert {p: v["enabled"] for p, v in profiles.items()} == {"domain": False, "private": False, "public": False}
    s = section(profiles, [])
    assert s["enabled"] is False and s["default_inbound"] == "accept" and s["status"] == "ok"


def test_netsh_current_profile_domain_off():
    profiles, why = parse_netsh_show(shared(FW + "netsh-advfirewall-show-currentprofile-domain-off.txt").read_text())
    assert why is None and profiles == {"domain": {"enabled": False, "inbound": "drop"}}
    s = section(profiles, [])
    # Only the current profile is shown: one off is enough to say "not enabled"; the others stay unseen.
    assert s["enabled"] is False and s["profiles"] == {"domain": False, "private": None, "public": None}
    assert s["status"] == "partial"


def test_netsh_in_another_language_is_unknown():
    text = shared(FW + "netsh-advfirewall-show-currentprofile-domain-off.txt").read_text()
    text = text.replace("Domain Profile Settings:", "Domänenprofil-Einstellungen:").replace("State ", "Status ")
    profiles, why = parse_netsh_show(text)
    assert profiles == {} and "only read in English" in why
    assert section(profiles, [why])["status"] == "unknown"


def test_registry_fallback_policy_wins():
    host = windows_host({"schema": 1, "firewall_profiles": {"error": "CIM failure"}}, registry={
        "HKLM\\SYSTEM\\CurrentControlSet\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\DomainProfile":
            {"EnableFirewall": 1},
        "HKLM\\SYSTEM\\CurrentControlSet\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\StandardProfile":
            {"EnableFirewall": 0},
        "HKLM\\SOFTWARE\\Policies\\Microsoft\\WindowsFirewall\\PrivateProfile": {"EnableFirewall": 1},
        "HKLM\\SYSTEM\\CurrentControlSet\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\PublicProfile":
            {"EnableFirewall": 1, "DefaultInboundAction": 1},
    })
    s = fw_windows(ProbeContext(host))
    assert s["profiles"] == {"domain": True, "private": True, "public": True} and s["enabled"] is True



# --------------------------------------------------------------------------- public captures

from conftest import OWN_FIXTURES  # noqa: E402

PUB_FW = OWN_FIXTURES / "public/windows/firewall"


def _pub(name: str) -> str:
    return (PUB_FW / name).read_text(encoding="utf-8")


def test_public_netsh_allprofiles_all_off_under_gpo():
    profiles, why = parse_netsh_show(_pub("netsh-advfirewall-show-allprofiles-all-off-gpo-store.txt"))
    assert why is None
    assert profiles == {p: {"enabled": False, "inbound": "drop"} for p in ("domain", "private", "public")}
    s = section(profiles, [])
    # BlockInbound is the policy, but every profile is OFF: nothing filters.
    assert (s["enabled"], s["default_inbound"], s["status"]) == (False, "accept", "ok")


def test_public_netsh_firewallpolicy_only_shows_no_state():
    profiles, why = parse_netsh_show(_pub("netsh-advfirewall-show-allprofiles-firewallpolicy-only.txt"))
    assert why is None
    assert profiles == {p: {"enabled": None, "inbound": "drop"} for p in ("domain", "private", "public")}
    s = section(profiles, [])
    assert s["enabled"] is None and s["profiles"] is None and s["status"] == "unknown"


def test_public_get_netfirewallprofile_all_enabled_not_configured_means_block():
    profiles = parse_get_netfirewallprofile(_pub("get-netfirewallprofile-all-enabled-notconfigured-server.txt"))
    assert profiles == {p: {"enabled": True, "inbound": "drop"} for p in ("domain", "private", "public")}
    s = section(profiles, [])
    assert (s["enabled"], s["default_inbound"], s["status"]) == (True, "drop", "ok")


def test_public_get_netfirewallprofile_domain_inbound_allow():
    profiles = parse_get_netfirewallprofile(_pub("get-netfirewallprofile-domain-inbound-allow.txt"))
    assert profiles == {"domain": {"enabled": True, "inbound": "accept"},
                        "private": {"enabled": True, "inbound": "drop"},
                        "public": {"enabled": True, "inbound": "drop"}}
    s = section(profiles, [])
    assert s["enabled"] is True and s["default_inbound"] == "accept"


def test_public_get_netfirewallprofile_single_profiles():
    wrapped = parse_get_netfirewallprofile(_pub("get-netfirewallprofile-private-wrapped-logfilename.txt"))
    assert wrapped == {"private": {"enabled": True, "inbound": "drop"}}
    assert section(wrapped, [])["enabled"] is None and section(wrapped, [])["status"] == "partial"
    off = parse_get_netfirewallprofile(_pub("get-netfirewallprofile-evil-winrm-domain-off-snip.txt"))
    assert off == {"domain": {"enabled": False, "inbound": None}}
    assert section(off, [])["enabled"] is False


def test_public_raw_convertto_json_profiles_with_enum_numbers():
    """A raw Get-NetFirewallProfile | ConvertTo-Json (a stock Windows Server 2022): Enabled 1 and
    DefaultInboundAction 0 (NotConfigured: the built-in default, which blocks) as numbers."""
    import json
    from auditagent.probes.firewall.windows import from_profiles
    objs = json.loads((PUB_FW / "get-netfirewallprofile-convertto-json-server-2022-cnquery-live.json").read_text())
    profiles = from_profiles(objs)
    assert profiles == {p: {"enabled": True, "inbound": "drop"} for p in ("domain", "private", "public")}
    out = section(profiles, [])
    assert (out["enabled"], out["default_inbound"]) == (True, "drop")


def test_numeric_inbound_action_is_the_action_enum_allow_2_block_4():
    """MSFT_NetFirewallProfile.DefaultInboundAction: NotConfigured 0, Allow 2, Block 4. The
    numbers were read as 1 allow / 2 block before, so an Allow (2) read as a number was "drop"."""
    from auditagent.probes.firewall.windows import from_profiles
    got = from_profiles([{"Name": "Domain", "Enabled": 1, "DefaultInboundAction": 4},
                         {"Name": "Private", "Enabled": 1, "DefaultInboundAction": 2},
                         {"Name": "Public", "Enabled": 0, "DefaultInboundAction": 0}])
    assert got == {"domain": {"enabled": True, "inbound": "drop"}, "private": {"enabled": True, "inbound": "accept"},
                   "public": {"enabled": False, "inbound": None}}
    # The snapshot's integer wins over the name beside it.
    snap = from_profiles([{"Name": "Public", "Enabled": "True", "EnabledValue": 1,
                           "DefaultInboundAction": "Allow", "DefaultInboundActionValue": 2}])
    assert snap["public"] == {"enabled": True, "inbound": "accept"}


# ------------------------------------------ French client laptops (third pass)

def test_public_french_netsh_is_unknown_with_a_reason_never_off():
    # netsh localises headings and values ("Paramètres Profil de domaine :", "État  Actif"):
    # on these French Wi-Fi laptops every profile is on, and the English-only reader must
    # not turn "Actif" into anything; it says which language it could not read.
    from auditagent.i18n import reason_text
    for name in ("netsh-advfirewall-show-allprofiles-fr-fr-wifi-laptop-all-actif.txt",
                 "netsh-advfirewall-show-currentprofile-fr-fr-public-indented.txt"):
        text = _pub(name)
        assert "Actif" in text and "BlockInbound" in text
        profiles, why = parse_netsh_show(text)
        assert profiles == {} and why.startswith("output.language: netsh"), name
        s = section(profiles, [why])
        assert (s["enabled"], s["default_inbound"], s["profiles"], s["status"]) == (None, None, None, "unknown")
        assert reason_text(why, "sv").startswith("netsh svarade på ett språk")
        assert reason_text(why, "da").startswith("netsh svarede på et sprog")


def test_public_get_netfirewallprofile_format_table_from_french_laptops():
    # `Get-NetFirewallProfile | ft Name,Enabled` on three students' Wi-Fi laptops: a table, whose
    # property names and True/False are never localised, unlike netsh's text.
    for name in ("get-netfirewallprofile-ft-name-enabled-fr-wifi-laptop-lucve.txt",
                 "get-netfirewallprofile-ft-name-enabled-fr-wifi-laptop-hugos.txt",
                 "get-netfirewallprofile-ft-name-enabled-fr-wifi-laptop-vicky-no-ps-prefix.txt"):
        profiles = parse_get_netfirewallprofile(_pub(name))
        assert profiles == {p: {"enabled": True, "inbound": None} for p in ("domain", "private", "public")}, name
        s = section(profiles, [])
        # All three on; the table has no DefaultInboundAction column, so inbound stays unseen.
        assert (s["enabled"], s["default_inbound"]) == (True, None), name
        assert s["profiles"] == {"domain": True, "private": True, "public": True}
