"""Real-size reports for the benchmarks, built by the agent itself: the shipped policy's
probes run on this machine (the real Host) and on two captured machines replayed through
the Host seam (a Windows 11 and a macOS laptop from tests/fixtures/hosts, the same
manifests ``auditagent check --replay-host`` takes), and the report is assembled by
:func:`auditagent.delivery.build_report`, the agent's own code path. Benchmarks sign one
per device and sequence from these predicates, so each byte on the wire is what a laptop
sends.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import uuid
import zlib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
REPLAY_HOSTS = {
    "windows": REPO / "tests/fixtures/hosts/windows-win11-compliant/host.yaml",
    "macos": REPO / "tests/fixtures/hosts/macos-filevault-google-drive/host.yaml",
}


@dataclasses.dataclass(frozen=True)
class _Enrolment:  # what build_report reads of an enrolment record
    device_id: str
    serial: str | None
    os: str | None
    platform: str | None


def agent_predicates() -> dict[str, dict[str, Any]]:
    """{"this-machine" | "windows" | "macos": the predicate the agent builds there}."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from auditagent import report as wire
    from auditagent.audit import run_check
    from auditagent.delivery import build_report
    from auditagent.host import RealHost, load_replay_host
    from auditagent.policy import default_policy_path, load_policy

    policy = load_policy(default_policy_path())
    hosts = {"this-machine": RealHost(), **{k: load_replay_host(v) for k, v in REPLAY_HOSTS.items()}}
    out = {}
    for name, host in hosts.items():
        facts, evaluation = run_check(policy, host, None)
        enrolment = _Enrolment(str(uuid.uuid4()), "SN-0000000", None, host.platform)
        built = build_report(policy=policy, facts=facts, evaluation=evaluation, enrollment=enrolment,
                             private_key=Ed25519PrivateKey.generate(), sequence=1, spool_note=None, integrity=None)
        out[name] = built.statement["predicate"]
    assert all(p["facts"] for p in out.values()), "a replay host produced no facts"
    del wire
    return out


def predicate_for(template: dict[str, Any], device_id: str, sequence: int) -> dict[str, Any]:
    """The template as device ``device_id`` would send it at ``sequence`` (fresh id and time)."""
    from auditagent import report as wire

    p = copy.deepcopy(template)
    p["device"]["id"] = device_id
    p["sequence"] = sequence
    p["report_id"] = str(uuid.uuid4())
    p["generated_at"] = wire.now_iso()
    # The agent stamps its facts with the moment it gathered them, so no two real reports
    # carry identical facts: a benchmark that reused one stamp would credit storage with
    # deduplication real reports never get.
    # Each report gets its own stamp: its device's minute of an earlier hour, one hour per
    # sequence (pre-signed reports are built within the same second).
    if isinstance(p.get("facts"), dict) and "collected_at" in p["facts"]:
        ago = dt.timedelta(hours=sequence, seconds=zlib.crc32(device_id.encode()) % 3600)
        p["facts"]["collected_at"] = (dt.datetime.now(dt.timezone.utc) - ago).isoformat(timespec="seconds")
    return p



def signed_report(template: dict[str, Any], device_id: str, sequence: int, key: Any) -> bytes:
    from auditagent import report as wire

    st = wire.build_statement(device_id=device_id, public_key=key.public_key(),
                              predicate=predicate_for(template, device_id, sequence))
    return wire.envelope_bytes(wire.sign_envelope(st, key))
