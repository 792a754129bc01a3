"""Plumbing for the attack tests: what is stored, as one comparable value, so each
attack can assert that it changed nothing; a logged-in HTTP client; raw envelopes with
any payload bytes signed by a device key."""
from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any, Iterator

from sqlalchemy import text

from auditagent import report as wire

# Everything the collector keeps, except the throttle counters (an attack is meant to move them).
STORED_TABLES = ("units", "enrolment_tokens", "devices", "device_keys", "reports", "device_state", "unit_policies",
                 "users", "exceptions", "audit_log", "device_checks", "device_days")
PASSWORD = "attack test password 1"


def stored(collector: Any) -> dict[str, str]:
    """sha256 of every row of every stored table, per table."""
    out = {}
    with collector.engine.connect() as conn:
        for table in STORED_TABLES:
            rows = conn.execute(text(f"SELECT * FROM {table}")).all()
            digest = hashlib.sha256("\n".join(sorted(repr(tuple(r)) for r in rows)).encode()).hexdigest()
            out[table] = f"{len(rows)}:{digest[:16]}"
    return out


class Unchanged:
    """``with Unchanged(collector): <attack>`` fails if the attack changed anything stored."""

    def __init__(self, collector: Any) -> None:
        self.collector = collector

    def __enter__(self) -> "Unchanged":
        self.before = stored(self.collector)
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            after = stored(self.collector)
            changed = {t for t in after if after[t] != self.before[t]}
            assert not changed, f"a refused request changed what is stored: {sorted(changed)}"


def signed_raw(device: Any, payload: bytes, *, signatures: int = 1) -> bytes:
    """A DSSE envelope over exactly ``payload`` (any bytes), signed by the device's key."""
    sig = wire.b64encode(device.key.sign(wire.pae(wire.PAYLOAD_TYPE, payload)))
    env = {"payloadType": wire.PAYLOAD_TYPE, "payload": wire.b64encode(payload),
           "signatures": [{"keyid": device.keyid, "sig": sig}] * signatures}
    return json.dumps(env).encode()


def payload_text(device: Any, sequence: int | None = None, **overrides: Any) -> str:
    """The canonical Statement JSON of a valid report, as text to tamper with before signing."""
    return wire.canonical_json(device.statement(sequence, **overrides)).decode()


def user(collector: Any, name: str, role: str = "admin", unit: str | None = None) -> str:
    from server import auth

    with collector.engine.begin() as conn:
        exists = conn.execute(text("SELECT 1 FROM users WHERE username = :u"), {"u": name}).first()
        if not exists:
            auth.create_user(conn, username=name, role=role, password=PASSWORD, unit_path=unit)
    return name


@contextlib.contextmanager
def logged_in(collector: Any, name: str, source: str = "192.0.2.10") -> Iterator[Any]:
    """An httpx client with a session of ``name`` (from address ``source``; the collector
    trusts X-Forwarded-For from 127.0.0.1 as it would from the nginx in front of it)."""
    c = collector.client(headers={"X-Forwarded-For": source})
    r = c.post("/api/v1/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    # The cookie is Secure, and this is plain http to 127.0.0.1: send it by hand.
    c.headers["Cookie"] = f"aa_session={r.cookies.get('aa_session')}"
    c.cookies.clear()
    try:
        yield c
    finally:
        c.close()
