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

