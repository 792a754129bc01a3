"""Windows firewall (both captures), screen lock, Defender, dsregcmd."""
from __future__ import annotations

import datetime as dt

from conftest import shared
from _winhelpers import windows_host

from auditagent.probes import ProbeContext
from auditagent.probes._windows_antimalware import defender_facts
from auditagent.probes._windows_antimalware import windows as av_windows
from auditagent.probes._windows_dsregcmd import join_state, parse_dsregcmd
from auditagent.probes._windows_firewall import parse_get_netfirewallprofile, parse_netsh_show, section
from auditagent.probes._windows_firewall import windows as fw_windows
from auditagent.probes._windows_screen_lock import evaluate, screensaver_lock
from auditagent.probes._windows_screen_lock import windows as lock_windows

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


def test_screen_lock_rules():
    desk = {"ScreenSaveActive": "1", "ScreenSaverIsSecure": "1", "ScreenSaveTimeOut": "600", "SCRNSAVE.EXE": "x.scr"}
    assert screensaver_lock(desk, None) == 600
    assert screensaver_lock(desk, {"ScreenSaveTimeOut": "300"}) == 300  # policy overrides
    assert screensaver_lock({**desk, "SCRNSAVE.EXE": ""}, None) is False  # no screen saver program runs
    assert evaluate(900, [600, False]) == (True, 900)  # machine limit covers the second user
    assert evaluate(None, [600, False]) == (False, None)
    assert evaluate(None, [None]) == (None, None)


def test_screen_lock_unreadable_user_hive_is_unknown():
    s = lock_windows(ProbeContext(windows_host(None, env={"USERNAME": "anna"})))
    assert s["enabled"] is None and s["status"] == "unknown" and s["reasons"]


def test_defender_facts_and_passive_mode():
    now = dt.datetime(2024, 6, 5, 8, 6, 27, tzinfo=dt.timezone.utc)
    on = {"AMServiceEnabled": True, "RealTimeProtectionEnabled": True, "AMRunningMode": "Normal",
          "AntivirusSignatureAge": 1, "AntivirusSignatureLastUpdated": "2024-06-04T08:06:27.0000000Z"}
    assert defender_facts(on, now) == {"product": "Microsoft Defender", "realtime": True, "signature_age_days": 1.0}
    assert defender_facts({**on, "AMRunningMode": "Passive Mode"}, now)["realtime"] is False
    assert defender_facts({"AntivirusSignatureAge": 65535}, now)["signature_age_days"] is None


def test_third_party_antivirus_is_named_not_judged():
    host = windows_host({"schema": 1, "defender": {"error": "0x800106ba"},
                         "av_products": [{"displayName": "Windows Defender"}, {"displayName": "ESET Security"}]})
    s = av_windows(ProbeContext(host))
    assert s["product"] == "ESET Security" and s["realtime"] is None and s["status"] == "partial"


def test_dsregcmd_not_joined():
    parsed = parse_dsregcmd(shared("windows/identity/dsregcmd-status-not-joined.txt").read_text())
    assert parsed["Device State"]["Device Name"] == "lenovo-thinkpad"
    assert join_state(parsed) == {"entra_joined": False, "domain_joined": False, "enterprise_joined": False}
    assert parsed["Ngc Prerequisite Check"]["PreReqResult"] == "WillNotProvision"
