"""Windows version from the registry and CIM."""
from __future__ import annotations

from _winhelpers import windows_host

from auditagent.probes import ProbeContext
from auditagent.probes.os_info.windows import os_from_registry
from auditagent.probes.os_info.windows import probe as os_windows


def test_registry_windows_11_still_named_windows_10():
    facts = os_from_registry({"ProductName": "Windows 10 Pro", "CurrentBuild": "22631", "UBR": 3447,
                              "DisplayVersion": "23H2", "EditionID": "Professional"}, "AMD64")
    assert facts["name"] == "Microsoft Windows 11 Pro"
    assert (facts["version"], facts["build"], facts["release"], facts["edition"]) == \
        ("10.0.22631", "22631.3447", "23H2", "Pro")
    assert os_from_registry({"ProductName": "Windows 10 Enterprise", "CurrentBuild": "19045",
                             "EditionID": "EnterpriseS"})["name"] == "Microsoft Windows 10 Enterprise"


def test_os_probe_without_registry_uses_cim_and_says_so():
    host = windows_host({"schema": 1, "os": {"Caption": "Microsoft Windows 11 Enterprise", "BuildNumber": "22631"}})
    section = os_windows(ProbeContext(host))
    assert section["name"] == "Microsoft Windows 11 Enterprise" and section["build"] == "22631"
    assert section["status"] == "partial" and section["release"] is None
    assert any(r.startswith("registry.unreadable") for r in section["reasons"])

