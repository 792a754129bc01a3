"""Linux os probe: os-release captures and this machine."""
from __future__ import annotations

import os

import pytest

from auditagent.host import RealHost, ReplayHost
from auditagent.probes import ProbeContext
from auditagent.probes.os_info.linux import probe as linux, os_facts, parse_os_release
from conftest import OWN_FIXTURES, shared


def facts_of(rel: str) -> dict:
    return os_facts(parse_os_release(shared(rel).read_text()))


def test_fedora_31_workstation():
    f = facts_of("linux/os-release/fedora-31-workstation.os-release")
    assert f == {"id": "fedora", "name": "Fedora 31 (Workstation Edition)", "version": "31", "build": None,
                 "release": None, "edition": "Workstation"}  # empty VERSION_CODENAME is not a codename


def test_linux_mint_uses_own_codename():
    f = facts_of("linux/os-release/linuxmint-19.1.os-release")
    assert (f["id"], f["version"], f["release"], f["name"]) == ("linuxmint", "19.1", "tessa", "Linux Mint 19.1")


def test_pop_os():
    f = facts_of("linux/os-release/pop-os-20.04.os-release")
    assert (f["id"], f["version"], f["release"], f["name"]) == ("pop", "20.04", "focal", "Pop!_OS 20.04")


def test_ubuntu_point_release_keeps_version_id():
    f = facts_of("linux/os-release/ubuntu-18.04.3.os-release")
    assert (f["id"], f["version"], f["release"], f["name"]) == ("ubuntu", "18.04", "bionic", "Ubuntu 18.04.3 LTS")


def test_probe_on_replayed_debian_capture():
    cap = OWN_FIXTURES / "captures" / "linux-debian12-vm-virtio-ext4"
    host = ReplayHost().add_file("/usr/lib/os-release", cap / "os-release") \
        .add_file("/proc/sys/kernel/osrelease", cap / "proc-sys-kernel-osrelease.txt")
    host.add_command(["uname", "-m"], "x86_64\n")
    s = linux(ProbeContext(host))
    assert s["status"] == "ok"
    assert (s["id"], s["version"], s["release"], s["kernel"], s["arch"]) == (
        "debian", "12", "bookworm", "6.18.44-fc-v769", "x86_64")
    assert s["name"] == "Debian GNU/Linux 12 (bookworm)"


def test_missing_os_release_is_partial_with_reason():
    host = ReplayHost().add_file("/proc/sys/kernel/osrelease", "6.1.0\n")
    s = linux(ProbeContext(host))
    assert s["status"] == "partial" and s["id"] is None and s["arch"] is None
    assert "file.missing: os-release" in s["reasons"]


@pytest.mark.skipif(not os.path.exists("/proc/sys/kernel/osrelease"), reason="needs Linux /proc")
def test_live_this_machine():
    s = linux(ProbeContext(RealHost("linux")))
    assert s["status"] == "ok"
    assert s["kernel"] == open("/proc/sys/kernel/osrelease").read().strip()
    assert s["arch"] == os.uname().machine
