"""Readiness opens the door: whether a device may have remote access now, its registered
TLS key, and the readiness certificate it gets after each accepted report.

Access follows the one definition of a device's state (:func:`server.readiness.device_states`):
a device gets in only in a state of :data:`GRANTING_STATES`. A device that is not
ready gets no certificate, and the one it has simply expires — within the lifetime
(default: its unit's max report age, at most 24 h), and never after its latest report
turns stale. A *due* device (a required check failing inside its policy's grace period)
is let in: the grace period is the time the organisation gave to fix it, and it is
counted with the ready ones. Its certificate never outlives the grace deadline, so the
door closes at the deadline by itself unless a passing report comes first.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import structlog
from cryptography.hazmat.primitives import serialization
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from auditagent import report as wire
from auditagent import tls_request
from server import device_auth
from server.db import device_state, device_tls_keys, devices, utc
from server.readiness import DEFAULT_MAX_REPORT_AGE_HOURS, DUE, READY, Cover, device_states, exception_cover
from server.readiness.state import unit_max_age
from server.readiness_ca import MAX_LIFETIME, ReadinessCA, acceptable_public_key
from server.store import REPORT_ERROR_STATUS, ApiError, Limits

log = structlog.get_logger("auditagent.collector")

# The states that open the door (docs/remote-access.md): ready, and due until its deadline.
GRANTING_STATES = frozenset({READY, DUE})
REVOKED, UNKNOWN_DEVICE = "revoked", "unknown_device"
MAX_REQUEST_AGE = device_auth.MAX_REQUEST_AGE  # a TLS key registration signed longer ago is refused


@dataclass(frozen=True)
class Access:
    """The answer for one device now: granted or not, its state and why."""

    device_id: str
    granted: bool
    state: str
    reason: str
    unit: str | None = None
    policy_sha256: str | None = None
    fresh_until: dt.datetime | None = None  # when its latest report turns stale
    due_until: dt.datetime | None = None  # due: when its grace period ends (and access with it)
    max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS

    def body(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "granted": self.granted, "state": self.state, "reason": self.reason,
                "unit": self.unit}


def device_access(conn: Connection, device_id: str, now: dt.datetime, *,
                  default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS, cover: Cover | None = None,
                  freshness: bool = True) -> Access:
    """Whether ``device_id`` may have access at ``now``, from its latest state. ``cover``:
    the active exceptions, if the caller holds them already; ``freshness``: also when the
    latest report turns stale (what a certificate's lifetime needs, a yes/no does not)."""
    dev = conn.execute(select(devices.c.unit_id, devices.c.revoked_at).where(devices.c.id == device_id)).first()
    if dev is None:
        return Access(device_id, False, UNKNOWN_DEVICE, "not enrolled at this collector")
    if dev.revoked_at is not None:
        return Access(device_id, False, REVOKED, "revoked by IT; it must be enrolled again")
    st = device_states(conn, now, [dev.unit_id], cover=cover,
                       default_max_age_hours=default_max_age_hours).subquery("acc_st")
    cols = [st.c.state, st.c.unit_path, st.c.generated_at, device_state.c.policy_sha256,
            device_state.c.failing_required, st.c.due_until]
    joined = st.join(device_state, device_state.c.device_id == st.c.id)
    if freshness:
        ages = unit_max_age("acc_age", unit_ids=[dev.unit_id])
        cols.append(ages.c.max_age_hours)
        joined = joined.join(ages, ages.c.unit_id == st.c.unit_id)
    row = conn.execute(select(*cols).select_from(joined).where(st.c.id == device_id)).first()
    if row is None:  # no device_state row: treat as never reported (fails closed)
        return Access(device_id, False, "never_reported", "no report received yet")
    hours = int((row.max_age_hours if freshness else None) or default_max_age_hours)
    generated = utc(row.generated_at)
    fresh_until = generated + dt.timedelta(hours=hours) if generated and freshness else None
    state = str(row.state)
    due_until = utc(row.due_until) if state == DUE else None
    if state == READY:
        reason = "ready"
    elif state == DUE:
        reason = (f"due: required checks not met, within their grace period until "
                  f"{due_until.isoformat() if due_until else '?'}: " + (row.failing_required or "?").replace(",", ", "))
    elif state == "not_ready":
        reason = "required checks not met: " + (row.failing_required or "?").replace(",", ", ")
    elif state == "stale":
        reason = f"no fresh report (last {generated.isoformat() if generated else '?'})"
    elif state == "never_reported":
        reason = "no report received yet"
    else:
        reason = state
    return Access(device_id, state in GRANTING_STATES, state, reason, unit=row.unit_path,
                  policy_sha256=row.policy_sha256, fresh_until=fresh_until, max_age_hours=hours,
                  due_until=due_until)


@dataclass
class CoverCache:
    """The active exceptions (:func:`server.readiness.exception_cover`) for a few seconds:
    a gateway asks per connection, exceptions change a few times a day. An exception
    granted or revoked takes effect at the gateway within ``ttl``."""

    ttl: dt.timedelta = dt.timedelta(seconds=5)
    _held: tuple[dt.datetime, Cover] | None = None

    def get(self, conn: Connection, now: dt.datetime) -> Cover:
        if self._held is None or not dt.timedelta(0) <= now - self._held[0] < self.ttl:
            self._held = (now, exception_cover(conn, now))
        return self._held[1]


# ------------------------------------------------------------------ TLS key registration


def _request_error(exc: wire.ReportError) -> ApiError:
    return ApiError(REPORT_ERROR_STATUS.get(exc.code, 400), exc.code, exc.message)


def register_tls_key(engine: Engine, device_id: str, body: bytes, now: dt.datetime,
                     limits: Limits = Limits()) -> tuple[int, str]:
    """Verify a signed TLS key registration (auditagent.tls_request) and keep its key.
    Returns (201 new | 200 unchanged, key sha256); ApiError for every refusal, nothing stored."""
    try:
        envelope = wire.parse_envelope(body)
        payload, signatures = wire.envelope_signatures(envelope, tls_request.PAYLOAD_TYPE)
    except wire.ReportError as exc:
        raise _request_error(exc) from None
    # Unknown, revoked and not signed by the device's current key: one answer (device_auth).
    device_auth.require_signed_by(engine, device_id, tls_request.PAYLOAD_TYPE, payload, signatures)
    try:
        req = tls_request.parse_payload(payload)
    except wire.ReportError as exc:
        raise _request_error(exc) from None
    if req.device_id != device_id:
        raise ApiError(422, "device_mismatch", f"payload.device_id: {req.device_id!r} is not the device {device_id}")
    if req.requested_at - now > limits.max_future_skew or now - req.requested_at > MAX_REQUEST_AGE:
        raise ApiError(422, "clock_skew", f"device {device_id}: requested_at {req.requested_at.isoformat()} is "
                                          f"outside the window of the collector's clock {now.isoformat()}; "
                                          "fix the device clock", server_time=now.isoformat())
    public_key = req.csr.public_key()
    why = acceptable_public_key(public_key)
    if why:
        raise ApiError(422, "bad_tls_key", f"payload.csr: {why}")
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    sha = hashlib.sha256(spki).hexdigest()
    values = dict(public_key=spki, key_sha256=sha, requested_at=req.requested_at, registered_at=now)
    with engine.begin() as conn:
        old = conn.execute(select(device_tls_keys.c.key_sha256, device_tls_keys.c.requested_at)
                           .where(device_tls_keys.c.device_id == device_id)).first()
        if old is not None and old.key_sha256 == sha:
            return 200, sha
        if old is not None:
            # Only a registration signed later than the stored one replaces it (replays lose).
            res = conn.execute(update(device_tls_keys)
                               .where(device_tls_keys.c.device_id == device_id,
                                      device_tls_keys.c.requested_at < req.requested_at).values(**values))
            if res.rowcount != 1:
                raise ApiError(409, "stale_request", f"device {device_id}: a TLS key registered later is "
                                                     "already stored; sign a fresh request")
        else:
            try:
                conn.execute(insert(device_tls_keys).values(device_id=device_id, **values))
            except IntegrityError:
                raise ApiError(409, "stale_request", f"device {device_id}: registered concurrently; "
                                                     "retry") from None
    log.info("tls_key.registered", device_id=device_id, key_sha256=sha[:16])
    return 201, sha


# ------------------------------------------------------------------ issuance


def certificate_lifetime(configured: dt.timedelta | None, access: Access) -> dt.timedelta:
    """The configured lifetime, else the unit's max report age; never above 24 h."""
    life = configured if configured is not None else dt.timedelta(hours=access.max_age_hours)
    return min(life, MAX_LIFETIME)


def issue_for(conn: Connection, ca: ReadinessCA, device_id: str, now: dt.datetime, *,
              lifetime: dt.timedelta | None = None,
              default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> dict[str, Any]:
    """The ``access`` part of an answer to the device: a fresh readiness certificate if
    it may have access and registered a TLS key, else why not."""
    access = device_access(conn, device_id, now, default_max_age_hours=default_max_age_hours)
    out: dict[str, Any] = {"granted": access.granted, "state": access.state, "reason": access.reason}
    if not access.granted:
        return out
    spki = conn.execute(select(device_tls_keys.c.public_key)
                        .where(device_tls_keys.c.device_id == device_id)).scalar()
    if spki is None:
        return {**out, "granted": False, "reason": "no TLS key registered (the agent registers one on its next run)"}
    not_after = now + certificate_lifetime(lifetime, access)
    for limit in (access.fresh_until, access.due_until):  # stale, or the grace deadline: whichever first
        if limit is not None:
            not_after = min(not_after, limit)
    cert = ca.issue(serialization.load_der_public_key(bytes(spki)), device_id=device_id, unit=access.unit or "",
                    policy_sha256=access.policy_sha256, not_after=not_after, now=now)
    serial = format(cert.serial_number, "x")
    log.info("readiness_certificate.issued", device_id=device_id, serial=serial,
             not_after=not_after.isoformat())
    return {**out, "certificate": cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            "ca_bundle": ca.bundle_pem(now).decode("ascii"), "serial": serial,
            "not_after": cert.not_valid_after_utc.isoformat().replace("+00:00", "Z")}
