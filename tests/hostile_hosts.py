"""Replayed laptops whose facts carry hostile text: synthetic variants of the fixture
hosts (tests/fixtures/hosts), written to a test's tmp folder, never into the fixtures."""
from __future__ import annotations

from pathlib import Path

import yaml

from conftest import OWN_FIXTURES

LINUX_E2E = OWN_FIXTURES / "hosts" / "linux-e2e"
WINDOWS_COMPLIANT = OWN_FIXTURES / "hosts" / "windows-win11-compliant"

# A right-to-left override, a screen clear, a window-title escape and a bell.
TERMINAL_ATTACK = "\u202egpj.exe\x1b[2J\x1b]0;pwned\x07"


def linux_with_os_name(tmp_path: Path, pretty_name: str) -> Path:
    """linux-e2e with ``pretty_name`` as the OS's PRETTY_NAME (os-release)."""
    host = yaml.safe_load((LINUX_E2E / "host.yaml").read_text(encoding="utf-8"))
    release = host["files"]["/etc/os-release"]["text"]
    host["files"]["/etc/os-release"]["text"] = release.replace('PRETTY_NAME="Ubuntu 22.04.4 LTS"',
                                                               f'PRETTY_NAME="{pretty_name}"')
    out = tmp_path / "synthetic-hostile-linux" / "host.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(host, allow_unicode=True), encoding="utf-8")
    return out


def windows_with_nul(tmp_path: Path) -> Path:
    """windows-win11-compliant where the PowerShell snapshot (a command's output) reports
    BitLocker's encryption method with a NUL in it, as ConvertTo-Json writes one
    (``\\u0000``), and the registry's EditionID carries one too."""
    host = yaml.safe_load((WINDOWS_COMPLIANT / "host.yaml").read_text(encoding="utf-8"))
    command = host["commands"][0]
    snapshot = (WINDOWS_COMPLIANT / command["stdout_file"]).read_text(encoding="utf-8")
    assert '"EncryptionMethod":"XtsAes256"' in snapshot
    out = tmp_path / "synthetic-nul-windows"
    out.mkdir(parents=True, exist_ok=True)
    (out / "synthetic-powershell-snapshot-nul.json").write_text(
        snapshot.replace('"EncryptionMethod":"XtsAes256"', '"EncryptionMethod":"XtsAes256\\u0000"'), encoding="utf-8")
    command["stdout_file"] = "synthetic-powershell-snapshot-nul.json"
    host["registry"]["HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion"]["EditionID"] = "Enterprise\x00"
    (out / "host.yaml").write_text(yaml.safe_dump(host, allow_unicode=True), encoding="utf-8")
    return out / "host.yaml"
