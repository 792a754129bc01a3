"""macOS updates: every softwareupdate capture; InstallHistory.plist."""
from __future__ import annotations

import datetime as dt
import plistlib

import pytest
from conftest import OWN_FIXTURES, shared

from auditagent.host import ReplayHost
from auditagent.probes import ProbeContext
from auditagent.probes.patches.macos import (is_security, parse_boottime, parse_install_history, parse_old_detail,
                                            parse_softwareupdate_list)
from auditagent.probes.patches.macos import probe as patches_macos

UPD = "macos/updates/"
# `sysctl -n kern.boottime` (struct timeval, then a localised date that is not read).
BOOTED_AFTER_14_4 = b"{ sec = 1710400000, usec = 117342 } Thu Mar 14 07:06:40 2024\n"  # 2024-03-14
BOOTED_BEFORE_14_4 = b"{ sec = 1710100000, usec = 5 } Sun Mar 10 19:46:40 2024\n"  # 2024-03-10


@pytest.mark.parametrize("name,labels,restart,security_on_13_3,error", [
    ("softwareupdate-list-none.txt", [], [], [], None),
    ("softwareupdate-list-one-restart.txt", ["macOS Ventura 13.3.1-22E261"], [True], [True], None),
    ("softwareupdate-list-multiple-clt-beta.txt",
     ["Command Line Tools for Xcode-14.3", "macOS Ventura 13.4 Beta-22F5027f"], [False, True], [False, False], None),
    ("softwareupdate-list-network-error.txt", [], [], [], "NSURLErrorDomain"),
])
def test_softwareupdate_captures(name, labels, restart, security_on_13_3, error):
    res = parse_softwareupdate_list(shared(UPD + name).read_text())
    assert [u["label"] for u in res["updates"]] == labels
    assert [u["restart"] for u in res["updates"]] == restart
    assert [is_security(u, (13, 3)) for u in res["updates"]] == security_on_13_3
    if error:
        assert error in res["error"]
    else:
        assert res["error"] is None


def test_major_upgrade_is_not_a_missing_security_patch():
    u = {"label": "macOS Ventura 13.3.1-22E261", "title": "macOS Ventura 13.3.1", "version": "13.3.1"}
    assert is_security(u, (13, 3)) and not is_security(u, (12, 6, 5))


def test_install_history_synthetic():
    hist = parse_install_history((OWN_FIXTURES / "synthetic/macos/synthetic-InstallHistory.plist").read_bytes())
    assert hist["last_os_update"] == dt.datetime(2024, 3, 12, 20, 41, 5)  # config-data and App Store skipped
    assert hist["entries"] == 4


def test_patches_network_error_is_unknown_not_zero():
    host = ReplayHost(platform="macos")
    host.add_command(["softwareupdate", "--list", "--no-scan"], shared(UPD + "softwareupdate-list-network-error.txt"))
    s = patches_macos(ProbeContext(host))
    assert s["pending"] is None and s["reboot_required"] is None and s["status"] == "unknown"
    assert any("NSURLErrorDomain" in r for r in s["reasons"])


def test_patches_none_pending():
    host = ReplayHost(platform="macos")
    host.add_command(["softwareupdate", "--list", "--no-scan"], shared(UPD + "softwareupdate-list-none.txt"))
    host.add_file("/Library/Receipts/InstallHistory.plist",
                  OWN_FIXTURES / "synthetic/macos/synthetic-InstallHistory.plist")
    host.add_command(["sysctl", "-n", "kern.boottime"], BOOTED_AFTER_14_4)
    s = patches_macos(ProbeContext(host))
    assert (s["pending"], s["pending_security"], s["reboot_required"]) == (0, 0, False)
    assert s["last_update"] == "2024-03-12T20:41:05+00:00" and s["status"] == "ok"



def _mac(listing: str, boot: bytes | None, version: str = "14.3") -> ReplayHost:
    host = ReplayHost(platform="macos")
    host.add_file("/System/Library/CoreServices/SystemVersion.plist", plistlib.dumps(
        {"ProductName": "macOS", "ProductVersion": version, "ProductBuildVersion": "23D56"}))
    host.add_command(["softwareupdate", "--list", "--no-scan"], shared(UPD + listing))
    host.add_file("/Library/Receipts/InstallHistory.plist",
                  OWN_FIXTURES / "synthetic/macos/synthetic-InstallHistory.plist")
    if boot is not None:
        host.add_command(["sysctl", "-n", "kern.boottime"], boot)
    return host


def test_restart_pending_only_when_an_installed_update_awaits_it():
    # An offered point release whose action is a restart: pending, but no restart pending.
    s = patches_macos(ProbeContext(_mac("softwareupdate-list-one-restart.txt", BOOTED_AFTER_14_4, "13.3")))
    assert (s["pending"], s["pending_security"], s["reboot_required"]) == (1, 1, False)
    # macOS 14.4 installed (2024-03-12) after the last boot (2024-03-10): it awaits a restart.
    s = patches_macos(ProbeContext(_mac("softwareupdate-list-none.txt", BOOTED_BEFORE_14_4)))
    assert s["reboot_required"] is True
    s = patches_macos(ProbeContext(_mac("softwareupdate-list-none.txt", None)))
    assert s["reboot_required"] is None and "tool.not_found: sysctl" in s["reasons"]


def test_major_upgrade_and_beta_on_offer_are_not_pending_patches():
    # Ventura 13.3.1 offered to a Mac on Monterey 12.6.5 is an upgrade, a 13.4 beta an offer.
    s = patches_macos(ProbeContext(_mac("softwareupdate-list-one-restart.txt", BOOTED_AFTER_14_4, "12.6.5")))
    assert (s["pending"], s["pending_security"], s["reboot_required"]) == (0, 0, False)
    assert s["offered_upgrades"] == ["macOS Ventura 13.3.1"] and s["status"] == "ok"
    s = patches_macos(ProbeContext(_mac("softwareupdate-list-multiple-clt-beta.txt", BOOTED_AFTER_14_4, "13.3")))
    assert s["pending"] == 1 and s["offered_upgrades"] == ["macOS Ventura 13.4 Beta"]


def test_parse_boottime_forms():
    assert parse_boottime("kern.boottime: { sec = 1232765114, usec = 823118 } Fri Jan 23 18:45:14 2009") == \
        dt.datetime(2009, 1, 24, 2, 45, 14, tzinfo=dt.timezone.utc)
    assert parse_boottime("{ sec = 1710400000, usec = 0 } tors 14 mars 2024") is not None
    assert parse_boottime("sysctl: unknown oid") is None


def test_public_softwareupdate_upgrade_and_beta_are_offers():
    pub = OWN_FIXTURES / "public/macos"
    res = parse_softwareupdate_list((pub / "softwareupdate-list-ventura-point-safari-and-sequoia-upgrade.txt").read_text())
    assert [u["title"] for u in res["updates"]] == ["Safari", "macOS Ventura 13.7.4", "macOS Sequoia 15.3.1"]
    assert [u["restart"] for u in res["updates"]] == [False, True, True] and res["error"] is None
    on_ventura = (13, 7, 2)
    assert [is_security(u, on_ventura) for u in res["updates"]] == [True, True, False]
    host = ReplayHost(platform="macos")
    host.add_file("/System/Library/CoreServices/SystemVersion.plist", plistlib.dumps(
        {"ProductName": "macOS", "ProductVersion": "13.7.2", "ProductBuildVersion": "22H313"}))
    host.add_command(["softwareupdate", "--list", "--no-scan"],
                     pub / "softwareupdate-list-ventura-point-safari-and-sequoia-upgrade.txt")
    host.add_file("/Library/Receipts/InstallHistory.plist",
                  OWN_FIXTURES / "synthetic/macos/synthetic-InstallHistory.plist")
    host.add_command(["sysctl", "-n", "kern.boottime"], BOOTED_AFTER_14_4)
    s = patches_macos(ProbeContext(host))
    assert (s["pending"], s["pending_security"], s["reboot_required"]) == (2, 2, False)
    assert s["offered_upgrades"] == ["macOS Sequoia 15.3.1"]
    beta = parse_softwareupdate_list((pub / "softwareupdate-list-big-sur-beta-restart.txt").read_text())
    (u,) = beta["updates"]
    assert u["restart"] and not is_security(u, (11, 0, 1))


def _pub_patches(name: str) -> str:
    return (OWN_FIXTURES / "public/macos/patches" / name).read_text()


def _unquote_markdown(text: str) -> str:
    """The issue quoted the output as Markdown ("> " before each line, ** for bold): undone here,
    the file stays as posted."""
    return "\n".join(line[2:] if line.startswith("> ") else line.lstrip(">") for line in text.splitlines()) \
        .replace("**", "")


@pytest.mark.parametrize("name,label,current", [
    # Mojave (10.14.6) and earlier: "   * <label>" then "\t<title> (<version>), <size>K [recommended]".
    ("softwareupdate-list-mojave-10.14.6-old-format-safari-markdown-quoted.txt", "Safari14.0MojaveAuto-14.0", (10, 14, 6)),
    # Catalina: "* Label: <label>" then "\tTitle: …, Version: …, Size: …, Recommended: YES,"
    ("softwareupdate-list-catalina-10.15.6-safari-markdown-quoted.txt", "Safari14.0CatalinaAuto-14.0", (10, 15, 6)),
])
def test_public_safari_14_in_both_formats(name, label, current):
    res = parse_softwareupdate_list(_unquote_markdown(_pub_patches(name)))
    assert res["error"] is None
    assert res["updates"] == [{"label": label, "title": "Safari", "version": "14.0", "recommended": True,
                               "restart": False}]
    assert is_security(res["updates"][0], current)


def test_public_mojave_old_format_counts_as_pending():
    host = ReplayHost(platform="macos")
    host.add_file("/System/Library/CoreServices/SystemVersion.plist", plistlib.dumps(
        {"ProductName": "Mac OS X", "ProductVersion": "10.14.6", "ProductBuildVersion": "18G6032"}))
    host.add_command(["softwareupdate", "--list", "--no-scan"], _unquote_markdown(
        _pub_patches("softwareupdate-list-mojave-10.14.6-old-format-safari-markdown-quoted.txt")).encode())
    s = patches_macos(ProbeContext(host))
    assert (s["pending"], s["pending_security"], s["pending_names"]) == (1, 1, ["Safari"])


def test_public_ventura_point_release_and_sonoma_upgrade():
    text = _pub_patches("softwareupdate-list-ventura-safari-17-ventura-13.6-and-sonoma-14.0-upgrade.txt")
    res = parse_softwareupdate_list(text)
    assert [(u["title"], u["version"], u["restart"]) for u in res["updates"]] == [
        ("Safari", "17.0", False), ("macOS Ventura 13.6", "13.6", True), ("macOS Sonoma 14.0", "14.0", True)]
    host = ReplayHost(platform="macos")
    host.add_file("/System/Library/CoreServices/SystemVersion.plist", plistlib.dumps(
        {"ProductName": "macOS", "ProductVersion": "13.5.2", "ProductBuildVersion": "22G91"}))
    host.add_command(["softwareupdate", "--list", "--no-scan"], text.encode())
    host.add_file("/Library/Receipts/InstallHistory.plist",
                  OWN_FIXTURES / "synthetic/macos/synthetic-InstallHistory.plist")
    host.add_command(["sysctl", "-n", "kern.boottime"], BOOTED_AFTER_14_4)
    s = patches_macos(ProbeContext(host))
    # Safari and 13.6 are missing patches; Sonoma is an offer; nothing installed awaits a restart.
    assert (s["pending"], s["pending_security"], s["reboot_required"]) == (2, 2, False)
    assert s["pending_names"] == ["Safari", "macOS Ventura 13.6"]
    assert s["offered_upgrades"] == ["macOS Sonoma 14.0"]


def test_public_catalina_command_line_tools_are_not_security():
    res = parse_softwareupdate_list(_pub_patches("softwareupdate-list-catalina-two-command-line-tools.txt"))
    assert [(u["label"], u["version"], u["recommended"], u["restart"]) for u in res["updates"]] == [
        ("Command Line Tools for Xcode-11.2", "11.2", True, False),
        ("Command Line Tools for Xcode-11.3", "11.3", True, False)]
    assert not any(is_security(u, (10, 15, 2)) for u in res["updates"])


def test_public_mojave_detail_lines():
    # Only the detail lines were posted (no "   * <label>" lines): each is read on its own.
    lines = _pub_patches("softwareupdate-detail-lines-mojave-10.14.6-safari-and-security-update-2020-005.txt")
    safari, secupd = (parse_old_detail(line) for line in lines.splitlines())
    assert safari == {"title": "Safari", "version": "14.0", "recommended": True, "restart": False}
    assert secupd == {"title": "Security Update 2020-005", "version": "10.14.6", "recommended": True, "restart": True}
    assert is_security(secupd, (10, 14, 6)) and is_security(safari, (10, 14, 6))


@pytest.mark.parametrize("name,current,build,pending,pending_names,upgrades", [
    # Sonoma 14.7.1: Safari, the tools and 14.7.2 are updates (the tools not a security one);
    # Sequoia 15.2 is the major upgrade on offer
    ("softwareupdate-list-sonoma-safari-clt-14.7.2-and-sequoia-15.2-upgrade.txt", "14.7.1", "23H222",
     3, ["Safari", "macOS Sonoma 14.7.2"], ["macOS Sequoia 15.2"]),
    # Monterey 12.7.5: softwareupdate's own XType log lines among the listing are not items
    ("softwareupdate-list-monterey-xtype-log-lines-12.7.6-and-sonoma-14.6.1-upgrade.txt", "12.7.5", "21H1222",
     2, ["Safari", "macOS Monterey 12.7.6"], ["macOS Sonoma 14.6.1"]),
])
def test_public_point_release_restart_items_and_major_upgrades(name, current, build, pending, pending_names,
                                                               upgrades):
    text = _pub_patches(name)
    host = ReplayHost(platform="macos")
    host.add_file("/System/Library/CoreServices/SystemVersion.plist", plistlib.dumps(
        {"ProductName": "macOS", "ProductVersion": current, "ProductBuildVersion": build}))
    host.add_command(["softwareupdate", "--list", "--no-scan"], text.encode())
    host.add_file("/Library/Receipts/InstallHistory.plist",
                  OWN_FIXTURES / "synthetic/macos/synthetic-InstallHistory.plist")
    host.add_command(["sysctl", "-n", "kern.boottime"], BOOTED_AFTER_14_4)
    s = patches_macos(ProbeContext(host))
    # the point release needs a restart once installed; nothing installed awaits one yet
    assert s["reboot_required"] is False
    assert s["pending"] == pending and s["pending_names"] == pending_names and s["pending_security"] == 2
    assert s["offered_upgrades"] == upgrades
