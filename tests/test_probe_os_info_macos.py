"""macOS version: sw_vers and SystemVersion.plist."""
from __future__ import annotations

import plistlib

from conftest import shared

from auditagent.host import ReplayHost
from auditagent.probes import ProbeContext
from auditagent.probes.os_info.macos import probe as os_macos
from auditagent.probes.os_info.macos import parse_sw_vers


def test_sw_vers_catalina():
    info = parse_sw_vers(shared("macos/os-version/sw_vers-catalina-10.15.5.txt").read_text())
    assert info == {"ProductName": "Mac OS X", "ProductVersion": "10.15.5", "BuildVersion": "19F101"}


def test_compat_plist_10_16_is_not_trusted():
    host = ReplayHost(platform="macos")
    host.add_file("/System/Library/CoreServices/SystemVersion.plist", plistlib.dumps(
        {"ProductName": "Mac OS X", "ProductVersion": "10.16", "ProductBuildVersion": "20G165"}))
    host.add_command(["sw_vers"], shared("macos/os-version/sw_vers-catalina-10.15.5.txt"))
    s = os_macos(ProbeContext(host))
    assert (s["version"], s["build"], s["release"]) == ("10.15.5", "19F101", "Catalina")


def test_system_version_plist_preferred():
    host = ReplayHost(platform="macos")
    host.add_file("/System/Library/CoreServices/SystemVersion.plist", plistlib.dumps(
        {"ProductName": "macOS", "ProductVersion": "14.4.1", "ProductBuildVersion": "23E224"}))
    s = os_macos(ProbeContext(host))
    assert (s["name"], s["version"], s["build"], s["release"], s["status"]) == \
        ("macOS", "14.4.1", "23E224", "Sonoma", "ok")
    assert not any(c[0] == "sw_vers" for c in host.calls)



def test_sw_vers_high_sierra_first_release():
    from conftest import OWN_FIXTURES
    text = (OWN_FIXTURES / "public/macos/sw_vers-high-sierra-10.13.txt").read_text()
    assert parse_sw_vers(text) == {"ProductName": "Mac OS X", "ProductVersion": "10.13", "BuildVersion": "17A405"}
    host = ReplayHost(platform="macos")
    host.add_command(["sw_vers"], text.encode())
    s = os_macos(ProbeContext(host))
    assert (s["version"], s["build"], s["release"]) == ("10.13", "17A405", "High Sierra")
