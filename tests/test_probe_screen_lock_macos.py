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


@pytest.mark.parametrize("name,answer", [
    ("sysadminctl-screenLock-status-macos-26.6.2-delay-5-seconds.txt", 5),
    ("sysadminctl-screenLock-status-macos-26.6.2-off.txt", False),
    ("sysadminctl-screenLock-status-macos-14.8.7-delay-300-seconds-as-quoted.txt", 300),
    ("sysadminctl-screenLock-status-macos-14.8.7-immediate-transcript.txt", 0),
    ("sysadminctl-screenLock-status-macos-27.0-immediate.txt", 0),
])
def test_public_sysadminctl_screenlock_status(name, answer):
    # NSLog's "date time sysadminctl[pid:tid] " prefix (or none, as quoted) is not part of the answer
    got = parse_sysadminctl_screenlock(_pub_lock(name))
    assert got == answer and type(got) is type(answer)


def test_public_sysadminctl_off_and_300_seconds_in_the_probe():
    def host(lock: str) -> ReplayHost:
        h = ReplayHost(platform="macos", homes=["/Users/anna"])
        h.add_command(["pmset", "-g"], _pub_lock("pmset-g-displaysleep-10-destroyfvkey.txt").encode())
        h.add_command(["sysadminctl", "-screenLock", "status"], b"", stderr=_pub_lock(lock).encode())
        return h
    # macOS 26.6.2 with the lock off: the display sleeps, nothing asks for a password
    s = lock_macos(ProbeContext(host("sysadminctl-screenLock-status-macos-26.6.2-off.txt")))
    assert (s["enabled"], s["idle_seconds"], s["status"]) == (False, None, "ok")
    # 14.8.7 with a 300 s grace: locked 10 min (display sleep) + 5 min after idle starts
    s = lock_macos(ProbeContext(host("sysadminctl-screenLock-status-macos-14.8.7-delay-300-seconds-as-quoted.txt")))
    assert (s["enabled"], s["idle_seconds"], s["status"]) == (True, 900, "ok")
