"""A device enrolled straight into a :class:`server.store.Store` (no HTTP), signing the
reports the store tests hand to ``Store.ingest``: one definition for the tests that drive
ingest directly (group commit, "already stored?")."""
from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from typing import Any, Iterator

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditagent import report as wire


class StoreDevice:
    def __init__(self, store: Any, unit: str, name: str, *, cache_key: bool = False) -> None:
        self.key = Ed25519PrivateKey.generate()
        token, _ = store.create_token(unit, uses=1)
        self.id = store.enroll(token=token, public_key_pem=wire.public_key_pem(self.key.public_key()),
                               device={"hostname": name, "os": "Debian 12", "platform": "linux"})["device_id"]
        if cache_key:  # on SQLite even a read waits for a held write lock: the key is read now
            store._load_key(self.id)

    def report(self, seq: int, *, report_id: str | None = None, at: dt.datetime | None = None,
               status: str = "pass", results: list[dict] | None = None) -> bytes:
        results = results or [{"check_id": "disk-encrypted", "status": status, "severity": "required"}]
        when = {} if at is None else {"generated_at": at.isoformat().replace("+00:00", "Z")}
        pred = wire.build_predicate(
            report_id=report_id, device={"id": self.id, "hostname": "h", "serial": None, "os": "Debian 12",
                                         "platform": "linux"},
            agent_version="0.1.0", policy={"id": "p", "version": "1", "sha256": "ab" * 32},
            facts={"disk": {"status": status}}, results=results,
            verdict="ready" if status == "pass" else "not_ready", sequence=seq, **when)
        st = wire.build_statement(device_id=self.id, public_key=self.key.public_key(), predicate=pred)
        return wire.envelope_bytes(wire.sign_envelope(st, self.key))


@contextmanager
def unit_store(url: str, unit: str, *, max_overflow: int = 8) -> Iterator[Any]:
    """A migrated store on ``url`` with one unit, its engine disposed after."""
    from server import migrate
    from server.db import make_engine
    from server.store import Store

    engine = make_engine(url, pool_size=4, max_overflow=max_overflow)
    migrate.upgrade(engine)
    s = Store(engine)
    s.add_unit(unit)
    try:
        yield s
    finally:
        engine.dispose()
