"""`auditagent capture`: what the probes read, recorded through the Host seam, replays to
the same facts; personal data is replaced everywhere and listed."""
from __future__ import annotations

import re
from pathlib import Path

from conftest import OWN_FIXTURES

from auditagent.capture import FAKE_TENANT, RecordingHost, capture, write_capture
from auditagent.cli import main
from auditagent.host import RealHost, load_replay_host
from auditagent.probes import ProbeContext, collect

WIN = OWN_FIXTURES / "hosts" / "windows-win11-compliant" / "host.yaml"


def _replay(folder: Path) -> dict:
    return collect(ProbeContext(load_replay_host(folder / "host.yaml")))


def _survivors(folder: Path, originals: list[str]) -> list[str]:
    """Originals still anywhere in the folder: file contents (UTF-8 or UTF-16) or names."""
    found = []
    for path in folder.rglob("*"):
        rel = str(path.relative_to(folder))
        data = b"" if path.is_dir() or path.is_symlink() else path.read_bytes()
        for o in originals:
            word = re.compile(rb"(?<![A-Za-z0-9])" + re.escape(o.encode()) + rb"(?![A-Za-z0-9])", re.I)
            if word.search(data) or re.escape(o.encode("utf-16-le")) and o.encode("utf-16-le").lower() in data.lower() \
                    or word.search(rel.encode()):
                found.append(f"{o!r} in {rel}")
    return found


def test_capture_then_replay_gives_the_same_facts_on_this_machine(tmp_path):
    facts, red = capture(RealHost(), tmp_path / "cap")
    assert _replay(tmp_path / "cap") == facts
    assert not _survivors(tmp_path / "cap", list(red.pairs))
    listing = (tmp_path / "cap" / "REDACTED.md").read_text()
    assert all(f"`{ph}`" in listing for ph in red.kinds)
    assert not any(original in listing for original in red.pairs)


def test_personal_data_of_a_windows_laptop_is_replaced_consistently(tmp_path):
    original = collect(ProbeContext(load_replay_host(WIN)))
    rec = RecordingHost(load_replay_host(WIN))
    assert collect(ProbeContext(rec)) == original
    red = write_capture(rec, tmp_path / "cap")
    assert {"anna", "anna.berg"} <= set(red.pairs)  # the user and the e-mail local part
    assert _replay(tmp_path / "cap") == original  # email_domain and tenant are facts, kept
    assert not _survivors(tmp_path / "cap", ["anna", "anna.berg"])
    host_yaml = (tmp_path / "cap" / "host.yaml").read_text()
    assert "C:\\Users\\user1" in host_yaml and "person1@contoso.example" in host_yaml
    # Tenant ids only when asked: then they are gone too, and the fact says the fake one.
    tenant = "72f988bf-0000-4000-8000-2d7cd011db47"
    rec = RecordingHost(load_replay_host(WIN))
    collect(ProbeContext(rec))
    red = write_capture(rec, tmp_path / "cap2", redact_tenants=True)
    assert red.pairs[tenant] == FAKE_TENANT and not _survivors(tmp_path / "cap2", [tenant])
    (onedrive,) = [c for c in _replay(tmp_path / "cap2")["cloud"]["clients"] if c["name"] == "onedrive"]
    assert onedrive["accounts"][0]["tenant"] == FAKE_TENANT
    listing = (tmp_path / "cap2" / "REDACTED.md").read_text()
    assert "| tenant |" in listing and "| email |" in listing and "| user |" in listing and tenant not in listing


def test_capture_command_writes_a_folder_check_can_replay(tmp_path, capsys):
    out = tmp_path / "laptop"
    assert main(["capture", "--replay-host", str(WIN), "--out", str(out), "--personal", "Contoso"]) == 0
    printed = capsys.readouterr().out
    assert "REDACTED.md" in printed and "--replay-host" in printed
    assert not _survivors(out, ["anna", "Contoso"])
    assert main(["check", "--replay-host", str(out / "host.yaml"), "--json"]) in (0, 1)
    assert main(["capture", "--replay-host", str(WIN), "--out", str(out)]) == 2  # never over an old capture
