"""A request signed with the device's key, for what the collector tells a device about
itself (its unit's policy): one definition for agent and collector.

The agent sends ``Authorization: AuditAgent-DSSE <token>``, where the token is the
unpadded base64url of a compact DSSE envelope (payloadType :data:`PAYLOAD_TYPE`,
one Ed25519 signature by the device key) over::

    {"device_id": "...", "method": "GET", "path": "/v1/devices/<id>/policy",
     "issued_at": "2026-12-01T09:00:00Z"}

``path`` is the API path (not the URL), so a collector behind a reverse proxy that
strips a prefix sees the same path the agent signed. The binding to method, path and
device means a captured header opens nothing else; ``issued_at`` bounds its replay.

The collector reads the claim *before* it knows the device (:func:`parse`), then
spends the same work on every claim (server/device_auth.py), so a caller without the
key cannot tell an unknown, a revoked and an enrolled device apart.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass
from typing import Any

from auditagent import report as wire

PAYLOAD_TYPE = "application/vnd.auditagent.signed-request+json"
SCHEME = "AuditAgent-DSSE"
MAX_HEADER_CHARS = 2048  # a real one is about 500
FIELDS = ("device_id", "issued_at", "method", "path")


def policy_path(device_id: str) -> str:
    """The API path of a device's policy (what the agent signs and the collector expects)."""
    return f"/v1/devices/{device_id}/policy"


def authorization(*, device_id: str, method: str, path: str, device_key: Any, issued_at: str | None = None) -> str:
    """The ``Authorization`` header value for one request, signed with ``device_key``."""
    body = {"device_id": device_id, "method": method.upper(), "path": path, "issued_at": issued_at or wire.now_iso()}
    envelope = wire.sign_payload(PAYLOAD_TYPE, wire.canonical_json(body), device_key)
    token = base64.urlsafe_b64encode(wire.envelope_bytes(envelope)).rstrip(b"=").decode("ascii")
    return f"{SCHEME} {token}"


@dataclass(frozen=True)
class SignedRequest:
    """A claim read from the header, NOT yet verified."""

    device_id: str
    method: str
    path: str
    issued_at: dt.datetime
    keyid: str
    signature: bytes
    payload: bytes


def parse(header: str | None) -> SignedRequest:
    """The claim in an ``Authorization`` header; ReportError with code ``missing`` (no
    header of this scheme) or ``malformed_signed_request`` (what is wrong, where)."""
    if not header:
        raise wire.ReportError("missing", "no Authorization header")
    scheme, _, token = header.strip().partition(" ")
    if scheme != SCHEME:
        raise wire.ReportError("missing", f"Authorization is not of the {SCHEME} scheme")
    if len(token) > MAX_HEADER_CHARS:
        raise wire.ReportError("malformed_signed_request", f"Authorization: longer than {MAX_HEADER_CHARS} characters")
    try:
        raw = base64.urlsafe_b64decode(token.strip() + "=" * (-len(token.strip()) % 4))
    except (binascii.Error, ValueError):
        raise wire.ReportError("malformed_signed_request", "Authorization: not base64url") from None
    try:
        envelope = wire.parse_envelope(raw)
        payload, sigs = _one_signature(envelope)
        body = wire.strict_loads(payload, "Authorization payload")
    except wire.ReportError as exc:
        raise wire.ReportError("malformed_signed_request", f"Authorization: {exc.message}") from None
    if not isinstance(body, dict) or sorted(body) != list(FIELDS) or not all(isinstance(body[k], str) for k in FIELDS):
        raise wire.ReportError("malformed_signed_request",
                               f"Authorization payload: expected exactly the strings {', '.join(FIELDS)}")
    at = wire.parse_time(body["issued_at"])
    if at is None:
        raise wire.ReportError("malformed_signed_request", "Authorization payload.issued_at: not an ISO-8601 time "
                                                           "with a zone")
    keyid, sig = sigs
    return SignedRequest(body["device_id"], body["method"], body["path"], at, keyid, sig, payload)


def _one_signature(envelope: Any) -> tuple[bytes, tuple[str, bytes]]:
    payload, sigs = wire.envelope_signatures(envelope, PAYLOAD_TYPE)
    if len(sigs) != 1:
        raise wire.ReportError("malformed_envelope", f"envelope.signatures: {len(sigs)} signatures; a signed request "
                                                     "carries exactly one")
    return payload, sigs[0]
