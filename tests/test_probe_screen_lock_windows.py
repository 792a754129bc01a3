"""Windows screen lock from the registry."""
from __future__ import annotations

from _winhelpers import windows_host

from auditagent.probes import ProbeContext
from auditagent.probes.screen_lock.windows import evaluate, screensaver_lock
from auditagent.probes.screen_lock.windows import probe as lock_windows


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



# --------------------------------------------------------------------------- public captures (reg query)

import pytest  # noqa: E402

from conftest import OWN_FIXTURES  # noqa: E402

from auditagent.probes.screen_lock.windows import MACHINE_POLICY  # noqa: E402
from auditagent.probes.sources.windows_registry import RegistryValues, dword, parse_reg_query  # noqa: E402

SL = OWN_FIXTURES / "public/windows/screen_lock"
DESKTOP = "HKCU\\Control Panel\\Desktop"


def _reg(name: str) -> dict:
    return parse_reg_query((SL / name).read_text(encoding="utf-8"))


def test_public_reg_query_value_names_keep_the_case_they_were_written_in():
    timeout = _reg("reg-query-screensavetimeout-lowercase-after-reg-add.txt")
    secure = _reg("reg-query-screensaverissecure-0-after-reg-add.txt")
    assert list(timeout) == [DESKTOP] and list(secure) == [DESKTOP]  # the ERROR lines are no values
    # `reg add ... /v ScreenSaveTimeout` wrote that spelling; Windows finds it as ScreenSaveTimeOut.
    assert timeout[DESKTOP]["ScreenSaveTimeOut"] == "0" and secure[DESKTOP]["ScreenSaverIsSecure"] == "0"
    same_machine = RegistryValues({**timeout[DESKTOP], **secure[DESKTOP]})
    assert screensaver_lock(same_machine, None) is False  # not secure, no delay: never locks by itself
    s = lock_windows(ProbeContext(windows_host(None, env={"USERNAME": "Administrator"},
                                               registry={DESKTOP: dict(same_machine), MACHINE_POLICY: {}})))
    assert (s["enabled"], s["idle_seconds"], s["status"]) == (False, None, "ok")


def test_value_spelled_as_in_the_capture_is_found_by_the_probe():
    # The rest of a secure screen saver around the capture's own spelling "ScreenSaveTimeout"
    # (these other values are ours): before, the probe asked for "ScreenSaveTimeOut" only and
    # reported a locking machine as "does not lock".
    assert "    ScreenSaveTimeout    REG_SZ" in (SL / "reg-query-screensavetimeout-lowercase-after-reg-add.txt").read_text()
    desktop = {"ScreenSaveActive": "1", "ScreenSaverIsSecure": "1", "SCRNSAVE.EXE": "scrnsave.scr",
               "ScreenSaveTimeout": "600"}
    s = lock_windows(ProbeContext(windows_host(None, env={"USERNAME": "anna"},
                                               registry={DESKTOP: desktop, MACHINE_POLICY: {}})))
    assert (s["enabled"], s["idle_seconds"]) == (True, 600)


def test_public_reg_query_user_hive_by_sid():
    parsed = _reg("reg-query-hku-sid-screensavetimeout-300-it.txt")
    key = "HKU\\S-1-5-21-00000000-1518580609-3671465160-1630\\Control Panel\\Desktop"
    assert list(parsed) == [key] and dword(parsed[key]["ScreenSaveTimeOut"]) == 300


def test_public_reg_query_whole_desktop_key_without_timeout_does_not_lock():
    parsed = _reg("reg-query-control-panel-desktop-all-values-no-timeout.txt")
    vals = parsed[""]  # the poster kept the values and dropped the key line above them
    assert len(vals) == 46 and vals["ScreenSaveActive"] == "1" and vals["WallPaper"] == ""
    assert vals["CaretTimeout"] == 5000 and vals["LastUpdated"] == 0xFFFFFFFF
    assert vals["UserPreferencesMask"] == "9E1E078012000000"
    assert [k for k in parsed if k] == [f"{DESKTOP}\\{sub}" for sub in
                                        ("Colors", "LanguageConfiguration", "PerMonitorSettings", "WindowMetrics",
                                         "MuiCached")]
    assert screensaver_lock(vals, None) is False  # active, but no delay, not secure, no program


@pytest.mark.parametrize("name, seconds", [("reg-query-inactivitytimeoutsecs-0x258-gpo-baseline.txt", 600),
                                           ("reg-query-inactivitytimeoutsecs-0x69-local-pt.txt", 105),
                                           ("reg-query-inactivitytimeoutsecs-0x12c-intune.txt", 300)])
def test_public_machine_inactivity_limit_locks_every_user(name, seconds):
    vals = _reg(name)[""]
    assert vals["InactivityTimeoutSecs"] == seconds
    s = lock_windows(ProbeContext(windows_host(None, env={"USERNAME": "anna"},
                                               registry={MACHINE_POLICY: dict(vals), DESKTOP: {}})))
    assert (s["enabled"], s["idle_seconds"], s["status"]) == (True, seconds, "ok")
