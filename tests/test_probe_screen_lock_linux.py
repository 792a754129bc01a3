"""Linux screen-lock probe: gsettings captures, KDE configs, replayed desktops, this machine."""
from __future__ import annotations

import pytest

from auditagent.host import ProcessInfo, RealHost, ReplayHost
from auditagent.probes import ProbeContext
from auditagent.probes.screen_lock.linux import (gnome_lock, kde_lock, probe as linux, parse_gsettings_list,
                                                  parse_gvariant_scalar)
from conftest import OWN_FIXTURES, shared

GSETTINGS = "linux/screenlock/gsettings-list-recursively-lock-enabled-true.txt"
HERE = OWN_FIXTURES / "captures" / "linux-debian12-vm-virtio-ext4"


def test_gvariant_scalars():
    assert parse_gvariant_scalar("uint32 300") == 300
    assert parse_gvariant_scalar("true") is True
    assert parse_gvariant_scalar("'gnome'") == "gnome"
    assert parse_gvariant_scalar("@as []") == "@as []"


def test_shared_capture_gnome_locks_after_300_seconds():
    settings = parse_gsettings_list(shared(GSETTINGS).read_text())
    assert settings["org.gnome.desktop.screensaver"]["lock-enabled"] is True
    assert settings["org.gnome.desktop.screensaver"]["lock-delay"] == 0
    assert settings["org.gnome.desktop.screensaver"]["logout-delay"] == 7200
    assert settings["org.gnome.desktop.session"]["idle-delay"] == 300
    assert settings["org.gnome.desktop.lockdown"]["disable-lock-screen"] is False
    assert gnome_lock(settings) == {"enabled": True, "idle_seconds": 300}


def test_own_capture_schema_defaults():
    text = "".join((HERE / f"gsettings-{n}.txt").read_text() for n in ("screensaver", "session", "lockdown"))
    assert gnome_lock(parse_gsettings_list(text)) == {"enabled": True, "idle_seconds": 300}


def test_gnome_never_idle_or_lockdown_means_off():
    base = parse_gsettings_list(shared(GSETTINGS).read_text())
    never = {**base, "org.gnome.desktop.session": {"idle-delay": 0}}
    assert gnome_lock(never)["enabled"] is False
    locked_down = {**base, "org.gnome.desktop.lockdown": {"disable-lock-screen": True}}
    assert gnome_lock(locked_down) == {"enabled": False, "idle_seconds": None}
    delayed = {**base, "org.gnome.desktop.screensaver": {"lock-enabled": True, "lock-delay": 30}}
    assert gnome_lock(delayed)["idle_seconds"] == 330


def test_kde_defaults_and_settings():
    assert kde_lock("") == {"enabled": True, "idle_seconds": 305, "lock_on_resume": True}
    assert kde_lock("[Daemon]\nTimeout=10\nLockGrace=0\n")["idle_seconds"] == 600
    assert kde_lock("[Daemon]\nAutolock=false\n")["enabled"] is False
    # the user's file overrides the system one
    assert kde_lock("[Daemon]\nTimeout=2\n", "[Daemon]\nTimeout=15\n")["idle_seconds"] == 905


def gnome_host(capture_text: str, returncode: int = 0) -> ReplayHost:
    host = ReplayHost(homes=["/root", "/home/anna"],
                      process_list=[ProcessInfo(1200, "gnome-shell", "/usr/bin/gnome-shell", (), "anna")])
    host.add_command(["gsettings", "list-recursively", "*"], capture_text, returncode=returncode,
                     stderr="" if returncode == 0 else "No such schema\n")
    return host


def test_probe_gnome_session_from_capture():
    host = gnome_host(shared(GSETTINGS).read_text())
    s = linux(ProbeContext(host))
    assert (s["status"], s["enabled"], s["idle_seconds"], s["desktop"]) == ("ok", True, 300, "gnome")
    # only the person running the session is asked about
    assert all(c[:2] == ("gsettings", "list-recursively") for c in host.calls)


def test_probe_gnome_gsettings_failure_is_unknown():
    s = linux(ProbeContext(gnome_host("", returncode=1)))
    assert s["status"] == "unknown" and s["enabled"] is None and s["desktop"] == "gnome" and s["reasons"]


def test_probe_kde_from_user_config():
    host = ReplayHost(homes=["/home/bo"], process_list=[ProcessInfo(900, "plasmashell", None, (), "bo")])
    host.add_file("/home/bo/.config/kscreenlockerrc", "[Daemon]\nAutolock=true\nTimeout=10\n")
    s = linux(ProbeContext(host))
    assert (s["status"], s["enabled"], s["idle_seconds"], s["desktop"]) == ("ok", True, 605, "kde")


def test_probe_installed_but_not_running_desktop_uses_session_files():
    host = ReplayHost(homes=["/home/bo"]).add_file("/usr/share/xsessions/plasma.desktop", "[Desktop Entry]\n")
    s = linux(ProbeContext(host))
    assert s["desktop"] == "kde" and s["enabled"] is True


def test_probe_no_desktop_is_not_applicable():
    s = linux(ProbeContext(ReplayHost(homes=["/root"])))
    assert s == {"status": "not_applicable", "reasons": ["desktop.none"],
                 "enabled": None, "idle_seconds": None, "desktop": None}


def test_live_this_machine():
    host = RealHost("linux")
    s = linux(ProbeContext(host))
    has_desktop = host.which("gnome-shell") or host.which("plasmashell") or host.exists("/usr/share/xsessions") \
        or host.exists("/usr/share/wayland-sessions")
    if has_desktop:
        pytest.skip("this machine has a desktop; the replayed tests cover it")
    assert s["status"] == "not_applicable" and s["desktop"] is None
