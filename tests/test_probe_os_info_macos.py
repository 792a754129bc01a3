"""macOS version: sw_vers and SystemVersion.plist."""
from __future__ import annotations

import plistlib

import pytest

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



def _pub(name: str):
    from conftest import OWN_FIXTURES
    return OWN_FIXTURES / "public/macos/os_info" / name


def test_public_sw_vers_big_sur_tabs():
    text = _pub("sw_vers-big-sur-11.0.1-tabs.txt").read_text()
    assert parse_sw_vers(text) == {"ProductName": "macOS", "ProductVersion": "11.0.1", "BuildVersion": "20B29"}
    host = ReplayHost(platform="macos")  # no SystemVersion.plist: sw_vers answers
    host.add_command(["sw_vers"], text.encode())
    s = os_macos(ProbeContext(host))
    assert (s["name"], s["version"], s["build"], s["release"], s["status"]) == \
        ("macOS", "11.0.1", "20B29", "Big Sur", "ok")


def test_public_sw_vers_rapid_security_response_extra():
    # `sw_vers | grep ProductVersion` on 13.3.1 (a): two tabs after ProductVersion, the RSR letter apart.
    assert parse_sw_vers(_pub("sw_vers-grep-productversion-ventura-13.3.1-rsr-a.txt").read_text()) == \
        {"ProductVersion": "13.3.1", "ProductVersionExtra": "(a)"}


@pytest.mark.parametrize("name,fields", [
    ("SystemVersion.plist-macos-14.7.4-sonoma.xml", ("macOS", "14.7.4", "23H420", "Sonoma")),
    ("SystemVersion.plist-macos-15.4-beta-24E5238a.xml", ("macOS", "15.4", "24E5238a", "Sequoia")),
    ("SystemVersion.plist-mac-os-x-10.7.5-lion.xml", ("Mac OS X", "10.7.5", "11G63", None)),
])
def test_public_system_version_plists(name, fields):
    host = ReplayHost(platform="macos")
    host.add_file("/System/Library/CoreServices/SystemVersion.plist", _pub(name).read_bytes())
    s = os_macos(ProbeContext(host))
    assert (s["name"], s["version"], s["build"], s["release"]) == fields
    assert s["status"] == "ok" and not any(c[0] == "sw_vers" for c in host.calls)


def test_public_compat_plist_10_16_without_sw_vers_is_unknown_not_10_16():
    # What a program built against an old SDK reads on 14.7.4; sw_vers is not there to correct it.
    host = ReplayHost(platform="macos")
    host.add_file("/System/Library/CoreServices/SystemVersion.plist",
                  _pub("SystemVersionCompat.plist-macos-14.7.4-reports-10.16.xml").read_bytes())
    s = os_macos(ProbeContext(host))
    assert any(c[0] == "sw_vers" for c in host.calls)
    assert s["version"] is None and s["status"] == "unknown"
    assert s["reasons"] and s["reasons"][0].startswith("tool.")


@pytest.mark.parametrize("name,fields", [
    ("sw_vers-mojave-10.14.4-18E226.txt", ("Mac OS X", "10.14.4", "18E226", "Mojave")),
    ("sw_vers-monterey-12.7.6-21G816-report-excerpt.txt", ("macOS", "12.7.6", "21G816", "Monterey")),
    # a beta build ends in a letter; the version is still 26.3
    ("sw_vers-tahoe-26.3-beta-build-25D5087f.txt", ("macOS", "26.3", "25D5087f", "Tahoe")),
    ("sw_vers-tahoe-26.5.2-25F84.txt", ("macOS", "26.5.2", "25F84", "Tahoe")),
])
def test_public_sw_vers_mojave_to_tahoe(name, fields):
    # one tab up to Catalina, two from Big Sur on; the pasted prompt or report heading is not a field
    text = _pub(name).read_text()
    assert parse_sw_vers(text) == dict(zip(("ProductName", "ProductVersion", "BuildVersion"), fields[:3]))
    host = ReplayHost(platform="macos")  # no SystemVersion.plist: sw_vers answers
    host.add_command(["sw_vers"], text.encode())
    s = os_macos(ProbeContext(host))
    assert (s["name"], s["version"], s["build"], s["release"], s["status"]) == fields + ("ok",)
