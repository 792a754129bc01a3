"""macOS screen lock: sysadminctl, managed profiles."""
from __future__ import annotations

from conftest import OWN_FIXTURES

from auditagent.host import ReplayHost
from auditagent.probes import ProbeContext
from auditagent.probes.screen_lock.macos import evaluate, parse_sysadminctl_screenlock
from auditagent.probes.screen_lock.macos import probe as lock_macos


def test_screen_lock_rules():
    assert evaluate(300, None, True, 5) == (True, 305)
    assert evaluate(1200, 600, True, 0) == (True, 600)  # the display sleeps first
    assert evaluate(0, 0, True, 0) == (False, None)
    assert evaluate(300, None, False, 0) == (False, None)
    assert evaluate(300, None, None, None) == (None, None)


def test_sysadminctl_only_plain_forms():
    assert parse_sysadminctl_screenlock("screenLock delay is 300 seconds") == 300
    assert parse_sysadminctl_screenlock("screenLock is immediate") == 0
    assert parse_sysadminctl_screenlock("screenLock is off") is False
    assert parse_sysadminctl_screenlock("Skärmlås är av") is None


def test_screen_lock_from_profile():
    host = ReplayHost(platform="macos", homes=["/Users/anna"])
    host.add_file("/Library/Managed Preferences/com.apple.screensaver.plist",
                  OWN_FIXTURES / "synthetic/macos/synthetic-managed-com.apple.screensaver.plist")
    s = lock_macos(ProbeContext(host))
    assert (s["enabled"], s["idle_seconds"], s["status"]) == (True, 305, "ok")
    s = lock_macos(ProbeContext(ReplayHost(platform="macos", homes=["/Users/anna"])))
    assert s["enabled"] is None and s["status"] == "unknown"

