"""macOS screen lock: sysadminctl, managed profiles."""
from __future__ import annotations

import pytest
from conftest import OWN_FIXTURES

from auditagent.host import ReplayHost
from auditagent.probes import ProbeContext
from auditagent.probes.screen_lock.macos import evaluate, parse_pmset_displaysleep, parse_sysadminctl_screenlock
from auditagent.probes.screen_lock.macos import probe as lock_macos


def test_screen_lock_rules():
    assert evaluate(300, None, True, 5) == (True, 305)
    assert evaluate(1200, 600, True, 0) == (True, 600)  # the display sleeps first
    assert evaluate(0, 0, True, 0) == (False, None)
    assert evaluate(300, None, False, 0) == (False, None)
    assert evaluate(300, None, None, None) == (None, None)


def test_sysadminctl_only_plain_forms():
    assert parse_sysadminctl_screenlock("screenLock delay is 300 seconds") == 300
    assert parse_sysadminctl_screenlock("screenLock delay is immediate") == 0
    assert parse_sysadminctl_screenlock("screenLock is immediate") is None  # a guess of ours: not a real form
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



def _pub_lock(name: str) -> str:
    return (OWN_FIXTURES / "public/macos/screen_lock" / name).read_text()


@pytest.mark.parametrize("name,seconds", [
    ("pmset-g-displaysleep-20-sleep-prevented.txt", 1200),
    ("pmset-g-displaysleep-10-destroyfvkey.txt", 600),
    ("pmset-g-currently-in-use-displaysleep-5.txt", 300),
    ("pmset-g-displaysleep-2-partial.txt", 120),
    ("pmset-g-macbook-lowpowermode-displaysleep-10.txt", 600),
])
def test_public_pmset_displaysleep(name, seconds):
    # "displaysleep" only: "disksleep", "sleep 1 (sleep prevented by …)" and the like are other timers.
    assert parse_pmset_displaysleep(_pub_lock(name)) == seconds


def test_public_pmset_and_sysadminctl_immediate_lock_after_display_sleep():
    host = ReplayHost(platform="macos", homes=["/Users/anna"])
    host.add_command(["pmset", "-g"], _pub_lock("pmset-g-currently-in-use-displaysleep-5.txt").encode())
    # sysadminctl logs to stderr through NSLog (timestamp and pid first)
    host.add_command(["sysadminctl", "-screenLock", "status"], b"", stderr=(
        OWN_FIXTURES / "synthetic/macos/synthetic-sysadminctl-screenLock-status-immediate.txt").read_bytes())
    s = lock_macos(ProbeContext(host))
    # No screen saver timer seen, but the display sleeps after 5 min and the lock is immediate.
    assert (s["enabled"], s["idle_seconds"], s["status"]) == (True, 300, "ok")
