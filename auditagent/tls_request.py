"""The wire format of a device's TLS key registration, shared by agent and collector.

The agent keeps a TLS key (ECDSA P-256) beside its signing key and asks the collector
to certify it: a PKCS#10 request (proving it holds the TLS key) inside a DSSE envelope
signed with the device's Ed25519 key (proving which device asks)::

    payloadType  application/vnd.auditagent.tls-key-request+json
    payload      {"device_id": "...", "csr": "-----BEGIN CERTIFICATE REQUEST-----...",
                  "requested_at": "2026-12-01T09:00:00Z"}

Nothing in the request names what goes into a certificate: the collector fills subject
and SANs from its own records. ``requested_at`` orders registrations: an older one,
replayed, cannot replace a newer key.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from auditagent import report as wire

PAYLOAD_TYPE = "application/vnd.auditagent.tls-key-request+json"
MAX_CSR_CHARS = 8192


@dataclass(frozen=True)
class TlsKeyRequest:
    """A request for a readiness certificate: the device and its CSR."""

    device_id: str
    csr: x509.CertificateSigningRequest
    requested_at: dt.datetime


def build_csr(tls_key: Any, device_id: str) -> x509.CertificateSigningRequest:
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, device_id)])
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(tls_key, hashes.SHA256())


def sign_request(*, device_id: str, device_key: Any, tls_key: ec.EllipticCurvePrivateKey,
                 requested_at: str | None = None) -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization

    csr = build_csr(tls_key, device_id).public_bytes(serialization.Encoding.PEM).decode("ascii")
    payload = wire.canonical_json({"device_id": device_id, "csr": csr,
                                   "requested_at": requested_at or wire.now_iso()})
    return wire.sign_payload(PAYLOAD_TYPE, payload, device_key)


def parse_payload(payload: bytes) -> TlsKeyRequest:
    """The verified payload → TlsKeyRequest; ReportError (schema_violation) if malformed."""
    doc = wire.strict_loads(payload, "envelope.payload")
    if not isinstance(doc, dict) or set(doc) != {"device_id", "csr", "requested_at"}:
        raise wire.ReportError("schema_violation", "payload: expected exactly device_id, csr, requested_at")
    if not isinstance(doc["device_id"], str) or not isinstance(doc["csr"], str) or len(doc["csr"]) > MAX_CSR_CHARS:
        raise wire.ReportError("schema_violation", "payload: device_id and csr must be strings (csr ≤ 8 KiB)")
    at = wire.parse_time(doc["requested_at"])
    if at is None:
        raise wire.ReportError("schema_violation", "payload.requested_at: expected an RFC 3339 UTC time")
    try:
        csr = x509.load_pem_x509_csr(doc["csr"].encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise wire.ReportError("schema_violation", "payload.csr: not a PEM certificate request") from None
    if not csr.is_signature_valid:
        raise wire.ReportError("schema_violation", "payload.csr: its signature does not verify (not made with "
                                                   "the key it carries)")
    return TlsKeyRequest(doc["device_id"], csr, at)
