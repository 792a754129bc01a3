"""``auditagent check --json`` on captured Windows and macOS machines (the replaying Host)
produces the same shape of facts and results as on this Linux machine."""
from __future__ import annotations

import json

import pytest

from conftest import OWN_FIXTURES
from test_cli_check import agent

HOSTS = sorted(p for p in (OWN_FIXTURES / "hosts").glob("*/host.yaml"))
RESULT_KEYS = {"check_id", "kind", "severity", "status", "messages", "evidence", "remediation", "title", "reason"}


def shape(data: dict) -> dict:
    return {"top": set(data), "policy": set(data["policy"]), "results": [set(r) for r in data["results"]],
            "sections": sorted(k for k, v in data["facts"].items() if isinstance(v, dict))}


@pytest.fixture(scope="module")
def linux_here(tmp_path_factory) -> dict:
    r = agent("check", "--json", home=tmp_path_factory.mktemp("home"))
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout)


def test_there_are_windows_and_macos_hosts():
    names = [p.parent.name for p in HOSTS]
    assert any(n.startswith("windows-") for n in names) and any(n.startswith("macos-") for n in names)


@pytest.mark.parametrize("manifest", HOSTS, ids=lambda p: p.parent.name)
def test_same_shape_as_linux(manifest, linux_here, tmp_path):
    r = agent("check", "--json", "--replay-host", str(manifest), home=tmp_path)
    assert r.returncode in (0, 1), r.stderr
    data = json.loads(r.stdout)
    expected_platform = manifest.parent.name.split("-")[0]
    assert data["platform"] == expected_platform
    here, there = shape(linux_here), shape(data)
    assert there["top"] == here["top"] and there["policy"] == here["policy"]
    assert there["sections"] == here["sections"]
    assert all(keys - {"other_remediation"} == RESULT_KEYS for keys in there["results"])  # folded steps: optional
    assert [r["check_id"] for r in data["results"]] == [r["check_id"] for r in linux_here["results"]]
    for name, section in data["facts"].items():
        if isinstance(section, dict):
            assert section["status"] in ("ok", "partial", "unknown", "not_applicable"), name
            assert isinstance(section["reasons"], list), name
    # The Windows-only antimalware check applies exactly on Windows.
    av = next(x for x in data["results"] if x["kind"] == "antimalware")
    assert (av["status"] == "not_applicable") == (expected_platform != "windows")


def test_windows_suspended_bitlocker_and_private_cloud_are_named(tmp_path):
    manifest = OWN_FIXTURES / "hosts" / "windows-bitlocker-suspended-private-cloud" / "host.yaml"
    data = json.loads(agent("check", "--json", "--lang", "sv", "--replay-host", str(manifest), home=tmp_path).stdout)
    by_kind = {r["kind"]: r for r in data["results"]}
    assert by_kind["disk_encryption"]["status"] == "fail"
    assert "pausad" in by_kind["disk_encryption"]["reason"]
    assert by_kind["cloud_storage"]["status"] == "fail"
    assert data["verdict"] == "not_ready"
