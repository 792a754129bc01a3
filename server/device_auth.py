"""A device proving who it is: a request signed with its key (auditagent.signed_request,
the policy fetch) or a signed body (the TLS key registration), for endpoints that answer
a device about itself.

Everything a caller can get wrong without knowing anything about devices (no header,
a malformed one, one signed for another path, a clock far off) gets its own precise
answer. Past that point an unknown device, a revoked one and an enrolled one whose
key the caller does not hold get one answer, byte for byte, after the same work: one
query and one signature verification (against a stand-in key when there is no device).
"""
from __future__ import annotations

import datetime as dt
import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.engine import Engine

from auditagent import report as wire
from auditagent import signed_request
from server.db import devices
from server.store import ApiError, Limits

MAX_REQUEST_AGE = dt.timedelta(hours=1)  # a device-signed request signed longer ago is refused

# Verifies nothing anyone can sign: its private half is dropped at import.
_STAND_IN_RAW = wire.raw_public_bytes(Ed25519PrivateKey.generate().public_key())
_STAND_IN_KEYID = "0" * 64


def _unauthorised(code: str, message: str, **extra: str) -> ApiError:
    err = ApiError(401, code, message, **extra)
    err.headers = {"WWW-Authenticate": signed_request.SCHEME}
    return err


def not_authenticated() -> ApiError:
    """The one answer for unknown, revoked and not-proven devices (nothing in it varies)."""
    return _unauthorised("not_authenticated",
                         "the request is not signed by the current key of an enrolled device. If this device was "
                         "revoked or enrolled again elsewhere, enrol it again (auditagent enroll)")


def authenticate(engine: Engine, device_id: str, header: str | None, *, method: str, path: str,
                 now: dt.datetime, limits: Limits = Limits()) -> None:
    """Return if ``header`` proves the caller holds ``device_id``'s current key for this
    ``method`` and API ``path``; ApiError otherwise (nothing is written either way)."""
    try:
        claim = signed_request.parse(header)
    except wire.ReportError as exc:
        if exc.code == "missing":
            raise _unauthorised("signed_request_required",
                                f"this endpoint answers only requests signed with the device's key "
                                f"(Authorization: {signed_request.SCHEME}); update the agent") from None
        raise ApiError(400, exc.code, exc.message) from None
    if claim.device_id != device_id or claim.method != method or claim.path != path:
        raise _unauthorised("request_mismatch", "Authorization: signed for another device, method or path "
                                                f"(this request is {method} {path[:160]})")
    if claim.issued_at - now > limits.max_future_skew or now - claim.issued_at > MAX_REQUEST_AGE:
        raise _unauthorised("clock_skew", f"Authorization payload.issued_at {claim.issued_at.isoformat()} is outside "
                                          f"the window of the collector's clock {now.isoformat()}; fix the device "
                                          "clock", server_time=now.isoformat())
    require_signed_by(engine, device_id, signed_request.PAYLOAD_TYPE, claim.payload, ((claim.keyid, claim.signature),))


def require_signed_by(engine: Engine, device_id: str, payload_type: str, payload: bytes,
                      signatures: tuple[tuple[str, bytes], ...]) -> None:
    """Return if one of ``signatures`` (keyid, raw Ed25519 signature over the DSSE
    encoding of ``payload``) is by the current key of ``device_id``, enrolled and not
    revoked; else :func:`not_authenticated`, after one query and one verification
    whatever the case (a stand-in key when there is no such device)."""
    with engine.connect() as conn:
        dev = conn.execute(select(devices.c.current_keyid, devices.c.public_key, devices.c.revoked_at)
                           .where(devices.c.id == device_id)).first()
    raw = bytes(dev.public_key) if dev is not None else _STAND_IN_RAW
    expected = dev.current_keyid if dev is not None else _STAND_IN_KEYID
    kid, sig = next(((k, s) for k, s in signatures if hmac.compare_digest(k.encode(), expected.encode())),
                    signatures[0])
    try:
        wire.public_key_from_raw(raw).verify(sig, wire.pae(payload_type, payload))
        valid = True
    except InvalidSignature:
        valid = False
    if not (valid and kid == expected and dev is not None and dev.revoked_at is None):
        raise not_authenticated()
