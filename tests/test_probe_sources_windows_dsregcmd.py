"""dsregcmd /status parser."""
from __future__ import annotations

from conftest import shared

from auditagent.probes.sources.windows_dsregcmd import join_state, parse_dsregcmd


def test_dsregcmd_not_joined():
    parsed = parse_dsregcmd(shared("windows/identity/dsregcmd-status-not-joined.txt").read_text())
    assert parsed["Device State"]["Device Name"] == "lenovo-thinkpad"
    assert join_state(parsed) == {"entra_joined": False, "domain_joined": False, "enterprise_joined": False}
    assert parsed["Ngc Prerequisite Check"]["PreReqResult"] == "WillNotProvision"

