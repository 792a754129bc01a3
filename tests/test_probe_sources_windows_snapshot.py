"""The one PowerShell snapshot: shape of the call, error isolation, once per run."""
from __future__ import annotations

from conftest import OWN_FIXTURES
from _winhelpers import windows_host

from auditagent.host import load_replay_host
from auditagent.probes import ProbeContext, collect
from auditagent.probes.sources.windows_snapshot import ARGV, SCRIPT, SOURCES, parse_snapshot, snapshot, source, source_list


def test_script_shape():
    assert ARGV[:6] == ("powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-Command")
    assert '"' not in SCRIPT  # powershell.exe strips double quotes from -Command arguments
    assert "ConvertTo-Json" in SCRIPT and "-Depth 6" in SCRIPT
    for key in SOURCES:  # every source has its own try/catch that reports {error: ...}
        assert f"$r['{key}'] = @{{ error = $_.Exception.Message }}" in SCRIPT


def test_one_failing_source_does_not_hide_the_others():
    snap = parse_snapshot('{"schema":1,"defender":{"error":"Get-MpComputerStatus: 0x800106ba"},'
                          '"hotfixes":{"HotFixID":"KB1","InstalledOn":"1/2/2024"}}')
    data, why = source(snap, "defender")
    assert data is None and "0x800106ba" in why
    rows, why = source_list(snap, "hotfixes")  # one element written bare by ConvertTo-Json
    assert why is None and rows == [{"HotFixID": "KB1", "InstalledOn": "1/2/2024"}]
    assert source(snap, "bitlocker")[1] == "value.missing: powershell bitlocker"


def test_not_json_and_not_run():
    assert "error" in parse_snapshot("Get-CimInstance : Access denied")
    host = windows_host(None)  # powershell.exe absent
    data, why = source(snapshot(host), "os")
    assert data is None and why == "tool.not_found: powershell.exe"


def test_powershell_runs_once_per_check():
    host = load_replay_host(OWN_FIXTURES / "hosts/windows-win11-compliant/host.yaml")
    collect(ProbeContext(host))
    assert sum(1 for c in host.calls if c and c[0] == "powershell.exe") == 1


def test_every_field_the_script_writes_is_in_the_typed_contract():
    import re
    from pathlib import Path
    contract = (Path(__file__).resolve().parents[1] / "docs" / "snapshot-contract.md").read_text(encoding="utf-8")
    # Output fields: the keys of the ordered hashtables (a method's -Arguments @{…} are inputs).
    script = re.sub(r"-Arguments @\{[^}]*\}", "", SCRIPT)
    fields = set(re.findall(r"(?:[{;]\s*|\n\s+)([A-Z]\w*) = ", script))
    keys = set(re.findall(r"\$r\['(\w+)'\]", SCRIPT))
    assert keys == set(SOURCES) and len(fields) > 30
    missing = sorted(f for f in fields if not re.search(rf"\b{f}\b", contract))
    assert not missing, missing
    assert all(f"`{k}" in contract for k in keys)
    # Typed: no value is cast to a culture-dependent string, dates are written invariant.
    assert "[string]$_.InstalledOn" not in SCRIPT and "ToString('o')" in SCRIPT
