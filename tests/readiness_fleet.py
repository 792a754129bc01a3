"""A small, fully determined fleet for the readiness tests: units, devices, signed reports
through the real ingest path (Store.ingest), users of every role, at a fixed ``NOW``.

Units (max report age: 24 h default; Äldreomsorg 72 h)::

    Socialförvaltningen
      IFO
        Ekonomiskt bistånd   eb1..eb7
        Barn och unga        bu1..bu3
      Äldreomsorg (72 h)     ao1..ao3
    Kultur                   k1 (k2 revoked)

Checks: disk-encrypted, os-patched, firewall (required), screen-lock (recommended).
"""
from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text, update

from auditagent import report as wire

NOW = dt.datetime(2030, 6, 15, 12, 0, tzinfo=dt.timezone.utc)
SOC = "Socialförvaltningen"
IFO = SOC + "/IFO"
EB = IFO + "/Ekonomiskt bistånd"
BU = IFO + "/Barn och unga"
AO = SOC + "/Äldreomsorg"
KULTUR = "Kultur"
PASSWORD = "correct horse battery staple"

CHECKS = {"disk-encrypted": "required", "os-patched": "required", "firewall": "required",
          "screen-lock": "recommended"}


def results(fail: dict[str, str] | None = None, grace: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Each check's result; ``grace``: the policy's grace_hours of some checks (the agent
    copies them into every result, as it does the severity)."""
    fail, grace = fail or {}, grace or {}
    return [{"check_id": c, "kind": "test", "severity": sev, "status": fail.get(c, "pass"), "messages": [],
             "evidence": {}, **({"grace_hours": grace[c]} if c in grace else {})} for c, sev in CHECKS.items()]


@dataclass
class Dev:
    id: str
    key: Ed25519PrivateKey
    hostname: str
    unit: str
    seq: int = 0
    report_ids: list[str] = field(default_factory=list)


@dataclass
class Fleet:
    store: Any
    devices: dict[str, Dev]
    units: dict[str, int]  # path -> id
    users: dict[str, Any]  # name -> auth.User

    def report(self, name: str, hours_ago: float, fail: dict[str, str] | None = None, *,
               agent_version: str = "0.1.0", hostname: str | None = None,
               delay: dt.timedelta = dt.timedelta(minutes=1), grace: dict[str, int] | None = None,
               status: str | None = None) -> str:
        d = self.devices[name]
        d.seq += 1
        generated = NOW - dt.timedelta(hours=hours_ago)
        pred = wire.build_predicate(
            device={"id": d.id, "hostname": hostname or d.hostname, "serial": "SN", "os": "Debian GNU/Linux 12",
                    "platform": "linux"},
            agent_version=agent_version, policy={"id": "baseline", "version": "1", "sha256": "ab" * 32},
            facts={"disk": {"encrypted": "disk-encrypted" not in (fail or {})}}, results=results(fail, grace),
            verdict="not_ready" if any(CHECKS[c] == "required" for c in (fail or {})) else "ready",
            sequence=d.seq, generated_at=generated.isoformat().replace("+00:00", "Z"))
        env = wire.sign_envelope(wire.build_statement(device_id=d.id, public_key=d.key.public_key(), predicate=pred),
                                 d.key)
        code, body = self.store.ingest(wire.envelope_bytes(env), received_at=generated + delay)
        assert code == 201 and status in (None, body["status"]), body
        d.report_ids.append(pred["report_id"])
        return pred["report_id"]

    def enrol(self, unit: str, names: list[str]) -> None:
        """Enrol devices ``names`` into ``unit`` (created if new), as enrolled 30 days before NOW."""
        from server.db import devices as devices_t

        if unit not in self.units:
            self.store.add_unit(unit)
            self.units.update({u["path"]: u["id"] for u in self.store.list_units()})
        token, _ = self.store.create_token(unit, uses=len(names))
        for name in names:
            key = Ed25519PrivateKey.generate()
            hostname = f"{name}-laptop"
            if name == "eb7":
                hostname = "=cmd|'/c calc'!A1<script>alert(1)</script>"  # agent-controlled text
            out = self.store.enroll(token=token, public_key_pem=wire.public_key_pem(key.public_key()),
                                    device={"hostname": hostname, "platform": "linux", "os": "Debian GNU/Linux 12"})
            self.devices[name] = Dev(out["device_id"], key, hostname, unit)
        # Enrolment stamps real time; the tests fix time.
        with self.store.engine.begin() as conn:
            conn.execute(update(devices_t).where(devices_t.c.id.in_([self.devices[n].id for n in names]))
                         .values(enrolled_at=NOW - dt.timedelta(days=30)))


@contextlib.contextmanager
def fleet_on(db_url: str) -> Iterator[Fleet]:
    """The fleet in a migrated database at ``db_url`` (a module's fixture)."""
    from server import migrate
    from server.db import make_engine
    from server.store import Store

    engine = make_engine(db_url, pool_size=2, max_overflow=2)
    migrate.upgrade(engine)
    try:
        yield build_fleet(Store(engine))
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def fleet(collector_db_url: str) -> Iterator[Fleet]:
    """The fleet in a fresh migrated database per test module, on SQLite and PostgreSQL
    (loaded by tests/conftest.py; a module may define its own ``fleet``)."""
    with fleet_on(collector_db_url) as f:
        yield f


def trend_points(fleet: Fleet, unit: str, days: int, now: dt.datetime = NOW) -> list[Any]:
    """The unit's trend, in a transaction committed as the pages do (closed days are kept)."""
    from server import readiness as rd

    with fleet.store.engine.connect() as conn:
        points = rd.trend(conn, rd.Scope(), fleet.units[unit], now, days)
        conn.commit()
    return points


def build_fleet(store: Any) -> Fleet:
    from server import auth

    for path in (EB, BU, AO, KULTUR):
        store.add_unit(path)
    store.set_unit_max_age(AO, 72)
    fleet = Fleet(store, {}, {u["path"]: u["id"] for u in store.list_units()}, {})
    plan = {EB: ["eb1", "eb2", "eb3", "eb4", "eb5", "eb6", "eb7"], BU: ["bu1", "bu2", "bu3"],
            AO: ["ao1", "ao2", "ao3"], KULTUR: ["k1", "k2"]}
    for unit, names in plan.items():
        fleet.enrol(unit, names)
    devices = fleet.devices
    r = fleet.report
    r("eb1", 48)
    r("eb1", 24, {"disk-encrypted": "fail"})
    r("eb1", 1)
    r("eb2", 2, {"disk-encrypted": "fail"})
    r("eb3", 3, {"disk-encrypted": "fail", "os-patched": "unknown"})
    r("eb4", 30)
    r("eb6", 1, {"screen-lock": "fail"})
    r("eb7", 5)
    r("bu1", 24, {"firewall": "fail"})
    r("bu1", 1, {"firewall": "fail"})
    r("bu2", 50, {"disk-encrypted": "fail"})
    r("bu3", 2)
    r("ao1", 50, agent_version="0.0.9")
    r("ao2", 80)
    r("ao3", 1, {"os-patched": "fail"})
    r("k1", 1)
    r("k2", 1)
    store.revoke_device(devices["k2"].id, "stolen")
    with store.engine.begin() as conn:
        def add(name: str, role: str, unit: str | None) -> None:
            fleet.users[name] = auth.create_user(conn, username=name, role=role, password=PASSWORD, unit_path=unit,
                                                 lang="en", now=NOW)
        add("admin", "admin", None)
        add("so_all", "security_officer", None)
        add("so_ifo", "security_officer", IFO)
        add("mgr_eb", "unit_manager", EB)
        add("mgr_kultur", "unit_manager", KULTUR)
    return fleet


def table_counts(conn: Any) -> dict[str, int]:
    return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("device_checks", "device_days", "reports")}
