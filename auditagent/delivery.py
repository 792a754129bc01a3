"""The agent's delivery pipeline — what ``auditagent run`` does, step by step:

    fetch the signed policy → check → build the report → sign → spool → send

Each step's state is on disk before the next begins: the sequence number is
persisted before the report that carries it is built, the report is in the spool
(durably) before it is sent, and it leaves the spool only after the collector has
acknowledged it. So a crash anywhere loses no report and stores none twice.
"""
from __future__ import annotations

import base64
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditagent.durable import SequenceCounter, atomic_write
from auditagent.spool import Spool

DELIVERY_STATE = "delivery.json"
SEQUENCE_FILE = "sequence"


@dataclass
class BuiltReport:
    """A signed report ready for the outbox, with what it says."""

    envelope: dict[str, Any]
    data: bytes  # the bytes spooled and sent
    statement: dict[str, Any]
    sequence: int
    report_id: str
    verdict: str


def sequence_counter(state: Path) -> SequenceCounter:
    return SequenceCounter(Path(state) / SEQUENCE_FILE)


def make_spool(paths: Any, config: Any, log: Any = None) -> Spool:
    return Spool(paths.spool, config.spool_max_reports, config.spool_max_bytes, log)


def build_report(*, policy: Any, facts: dict[str, Any], evaluation: Any, enrollment: Any, private_key: Any,
                 sequence: int, spool_note: dict[str, Any] | None, integrity: dict[str, Any] | None) -> BuiltReport:
    from auditagent.report import envelope_bytes, sign_envelope

    statement = report_statement(policy=policy, facts=facts, evaluation=evaluation, enrollment=enrollment,
                                 public_key=private_key.public_key(), sequence=sequence, spool_note=spool_note,
                                 integrity=integrity)
    envelope = sign_envelope(statement, private_key)
    return BuiltReport(envelope, envelope_bytes(envelope), statement, sequence, statement["predicate"]["report_id"],
                       evaluation.verdict)


def report_statement(*, policy: Any, facts: dict[str, Any], evaluation: Any, enrollment: Any, public_key: Any,
                     sequence: int, spool_note: dict[str, Any] | None = None,
                     integrity: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Statement a report carries, before signing: what `run` sends, `run --dry-run`
    prints and the self-check page shows. ``public_key``: the key or its keyid."""
    from auditagent import __version__
    from auditagent.report import build_predicate, build_statement

    os_name = (facts.get("os") or {}).get("name") if isinstance(facts.get("os"), dict) else None
    device = {"id": enrollment.device_id, "hostname": socket.gethostname(), "serial": enrollment.serial,
              "os": os_name or enrollment.os, "platform": facts.get("platform") or enrollment.platform}
    predicate = build_predicate(
        device=device, agent_version=__version__,
        policy={"id": policy.id, "version": policy.version, "sha256": policy.digest},
        facts=facts, results=evaluation.to_dict(with_remediation=False)["results"], verdict=evaluation.verdict,
        sequence=sequence, spool=spool_note, integrity=integrity)
    return build_statement(device_id=enrollment.device_id, public_key=public_key, predicate=predicate)


def resign_spooled(spool: Spool, private_key: Any, device_id: str, log: Any = None) -> int:
    """Re-sign waiting reports made with an older key (after re-enrolment); returns how many."""
    from auditagent.report import build_statement, envelope_bytes, keyid, sign_envelope

    kid = keyid(private_key.public_key())
    n = 0
    for entry in spool.entries():
        try:
            envelope = json.loads(spool.read(entry))
            if all(s.get("keyid") == kid for s in envelope.get("signatures") or []):
                continue
            statement = json.loads(base64.b64decode(envelope["payload"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # the collector will refuse it and it will be kept under rejected/
        predicate = statement["predicate"]
        predicate["device"]["id"] = device_id
        new = sign_envelope(build_statement(device_id=device_id, public_key=private_key.public_key(),
                                            predicate=predicate), private_key)
        atomic_write(entry.path, envelope_bytes(new), mode=0o600)
        n += 1
    if n and log is not None:
        log.info("spool_resigned", count=n, keyid=kid[:16])
    return n


# ------------------------------------------------------------------ delivery state (for `status`)


def load_delivery_state(state: Path) -> dict[str, Any]:
    try:
        data = json.loads((Path(state) / DELIVERY_STATE).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def save_delivery_state(state: Path, update: dict[str, Any]) -> None:
    data = load_delivery_state(state)
    data.update(update)
    atomic_write(Path(state) / DELIVERY_STATE, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))
