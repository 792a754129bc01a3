"""macOS updates: every softwareupdate capture; InstallHistory.plist."""
from __future__ import annotations

import datetime as dt

import pytest
from conftest import OWN_FIXTURES, shared

from auditagent.host import ReplayHost
from auditagent.probes import ProbeContext
from auditagent.probes.patches.macos import is_security, parse_install_history, parse_softwareupdate_list
from auditagent.probes.patches.macos import probe as patches_macos

UPD = "macos/updates/"


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
    s = patches_macos(ProbeContext(host))
    assert (s["pending"], s["pending_security"], s["reboot_required"]) == (0, 0, False)
    assert s["last_update"] == "2024-03-12T20:41:05+00:00" and s["status"] == "ok"

