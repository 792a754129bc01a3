"""Real-size report payloads for tests: what the agent signs on the Windows and macOS
replay hosts (tests/fixtures/hosts), built by the agent's own code path, as
bench/real_reports.py builds them (without this machine's, whose probes are slow)."""
from __future__ import annotations

import json
import uuid
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOSTS = ("windows-win11-compliant", "macos-filevault-google-drive")


@lru_cache(maxsize=1)
def replayed_payloads() -> tuple[bytes, ...]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from auditagent import report as wire
    from auditagent.audit import run_check
    from auditagent.delivery import build_report
    from auditagent.host import load_replay_host
    from auditagent.policy import default_policy_path, load_policy

    class Enrolment:  # what build_report reads of an enrolment record
        device_id, serial, os, platform = str(uuid.uuid4()), "SN-1", None, None

    policy = load_policy(default_policy_path())
    out = []
    for name in HOSTS:
        host = load_replay_host(REPO / f"tests/fixtures/hosts/{name}/host.yaml")
        facts, evaluation = run_check(policy, host, None)
        Enrolment.platform = host.platform
        built = build_report(policy=policy, facts=facts, evaluation=evaluation, enrollment=Enrolment,
                             private_key=Ed25519PrivateKey.generate(), sequence=1, spool_note=None, integrity=None)
        out.append(wire.b64decode(json.loads(built.data)["payload"], "payload"))
    return tuple(out)
