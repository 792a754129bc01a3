"""A laptop whose facts hold text the strict wire refuses (a NUL in a command's output
and in a registry value) still delivers: the agent neutralises that text when it builds
the report (auditagent.report.wire_safe, the same definition the collector's strict
parser uses), and the real collector, over loopback HTTP on SQLite and PostgreSQL,
stores it. Before, the report was refused as malformed for ever."""
from __future__ import annotations

import json

from hostile_hosts import windows_with_nul
from test_e2e_delivery import AgentHome, assert_exactly_once, predicate_of

from conftest import REPO

CASEWORK = REPO / "policies" / "casework-confidential.yaml"


def test_nul_in_command_output_still_makes_a_deliverable_report(collector, tmp_path):
    host = windows_with_nul(tmp_path)
    agent = AgentHome(tmp_path / "agent", {"policy": str(CASEWORK)})
    agent.enroll(collector)
    run = agent("run", "--json", "--replay-host", str(host), replay=False, expect=(0, 1))
    delivery = json.loads(run.stdout)["delivery"]
    assert delivery["delivered"] == 1 and not delivery["rejected"], run.stdout + run.stderr
    rows = assert_exactly_once(collector, agent)
    assert "\\u0000" not in rows[-1]["envelope"]
    facts = predicate_of(rows[-1]["envelope"])["facts"]
    methods = [v["detail"].get("encryption_method") for v in facts["disk"]["volumes"]]
    assert "XtsAes256<U+0000>" in methods  # shown, not lost: the officer sees there was a NUL
    assert facts["os"]["edition"] == "Enterprise<U+0000>"
