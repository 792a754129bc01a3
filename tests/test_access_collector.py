"""Readiness certificates from a real collector over loopback (SQLite and PostgreSQL):
a device registers its TLS key with a signed request; each accepted report of a ready
device is answered with a certificate for that key; a device that is not ready, stale
or revoked gets none, with the reason. Every attack on the registration gets a precise
4xx and stores nothing."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from collector_fixtures import start_collector
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditagent import report as wire
from auditagent import tls_request
from server.readiness_ca import MAX_LIFETIME, ReadinessCA, certificate_device_id, init_ca
LIFETIME = dt.timedelta(hours=2)


@pytest.fixture(scope="module")
def gate(collector_db_url, tmp_path_factory):
    work = tmp_path_factory.mktemp("gate")
    init_ca(work / "ca")
    c = start_collector(collector_db_url, work / "collector",
                        extra_args=("--readiness-ca", str(work / "ca"), "--certificate-lifetime", "2h"))
    c.ca_dir = work / "ca"
    try:
        yield c
    finally:
        c.stop()


def register(c, dev, tls_key=None, *, signer=None, device_id=None, requested_at=None, path_id=None):
    tls_key = tls_key or ec.generate_private_key(ec.SECP256R1())
    env = tls_request.sign_request(device_id=device_id or dev.id, device_key=signer or dev.key, tls_key=tls_key,
                                   requested_at=requested_at)
    with c.client() as h:
        r = h.put(f"/v1/devices/{path_id or dev.id}/tls-key", content=json.dumps(env))
    return r, tls_key


def send(c, dev, **overrides):
    with c.client() as h:
        return h.post("/v1/reports", content=wire.envelope_bytes(dev.sign(**overrides)))


FAILING = dict(results=[{"check_id": "disk-encrypted", "status": "fail", "severity": "required"}], verdict="not_ready")


def tls_rows(c) -> int:
    return c.count("device_tls_keys")


def test_ready_device_gets_a_certificate_for_its_registered_key(gate):
    dev = gate.enroll("Testförvaltningen/Gate/A")
    r, tls_key = register(gate, dev)
    assert r.status_code == 201, r.text
    # Not reported yet: registered, but no certificate.
    assert r.json()["access"] == {"granted": False, "state": "never_reported", "reason": "no report received yet"}
    r = send(gate, dev)
    assert r.status_code == 201, r.text
    acc = r.json()["access"]
    assert acc["granted"] is True and acc["state"] == "ready"
    cert = x509.load_pem_x509_certificate(acc["certificate"].encode())
    assert cert.public_key() == tls_key.public_key()
    assert certificate_device_id(cert) == dev.id
    uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier)
    assert "urn:auditagent:policy:sha256:" + "ab" * 32 in uris  # the digest the report was judged by
    assert "urn:auditagent:unit:Testf%C3%B6rvaltningen/Gate/A" in uris
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert life <= LIFETIME + dt.timedelta(minutes=1) and life <= MAX_LIFETIME + dt.timedelta(minutes=1)
    ca = ReadinessCA(gate.ca_dir)
    assert ca.issued_by_us(cert, cert.not_valid_before_utc + dt.timedelta(minutes=2))
    assert acc["ca_bundle"].encode() == ca.bundle_pem()
    # A resend of the same report (the answer was lost) is answered with a certificate too.
    env = dev.sign()
    with gate.client() as h:
        first = h.post("/v1/reports", content=wire.envelope_bytes(env))
        again = h.post("/v1/reports", content=wire.envelope_bytes(env))
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["status"] == "duplicate" and again.json()["access"]["granted"] is True
    # The public CA bundle gateways fetch.
    with gate.client() as h:
        pem = h.get("/v1/readiness-ca.pem")
    assert pem.status_code == 200 and pem.content == ca.bundle_pem()


def test_not_ready_device_gets_none_with_the_reason(gate):
    dev = gate.enroll("Testförvaltningen/Gate/B")
    register(gate, dev)
    assert send(gate, dev).json()["access"]["granted"] is True
    r = send(gate, dev, **FAILING)
    assert r.status_code == 201
    acc = r.json()["access"]
    assert acc == {"granted": False, "state": "not_ready", "reason": "required checks not met: disk-encrypted"}


def test_a_due_device_gets_a_certificate_that_ends_at_its_deadline(gate):
    """Due (inside a grace period) opens the door, but never past the grace deadline; a
    run that started without grace gets none later (docs/remote-access.md)."""
    dev = gate.enroll("Testförvaltningen/Gate/Due")
    register(gate, dev)
    started = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=23)).replace(microsecond=0)
    graced = [{"check_id": "os-patched", "status": "fail", "severity": "required", "grace_hours": 24}]
    r = send(gate, dev, results=graced, verdict="not_ready", generated_at=started.isoformat().replace("+00:00", "Z"))
    acc = r.json()["access"]
    deadline = started + dt.timedelta(hours=24)
    assert acc["granted"] is True and acc["state"] == "due", acc
    assert deadline.isoformat() in acc["reason"] and "os-patched" in acc["reason"]
    cert = x509.load_pem_x509_certificate(acc["certificate"].encode())
    assert cert.not_valid_after_utc == deadline  # not the 2 h lifetime: the deadline comes first
    # A grace that ran out without a passing report (started 3 h ago, 2 h of grace): not ready.
    late = gate.enroll("Testförvaltningen/Gate/Due")
    register(gate, late)
    three = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=3)).replace(microsecond=0)
    acc = send(gate, late, results=[{**graced[0], "grace_hours": 2}], verdict="not_ready",
               generated_at=three.isoformat().replace("+00:00", "Z")).json()["access"]
    assert acc == {"granted": False, "state": "not_ready", "reason": "required checks not met: os-patched"}
    # A policy adding grace to a check already failing grants none afterwards.
    other = gate.enroll("Testförvaltningen/Gate/Due")
    register(gate, other)
    assert send(gate, other, **FAILING).json()["access"]["state"] == "not_ready"
    acc = send(gate, other, results=[{**FAILING["results"][0], "grace_hours": 72}], verdict="not_ready").json()
    assert acc["access"] == {"granted": False, "state": "not_ready", "reason": "required checks not met: disk-encrypted"}


def test_ready_without_a_registered_key_gets_none(gate):
    dev = gate.enroll("Testförvaltningen/Gate/C")
    acc = send(gate, dev).json()["access"]
    assert acc["granted"] is False and acc["state"] == "ready" and "no TLS key" in acc["reason"]


def test_a_stale_report_opens_nothing(gate):
    dev = gate.enroll("Testförvaltningen/Gate/Stale")
    register(gate, dev)
    old = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=30)).replace(microsecond=0)
    r = send(gate, dev, generated_at=old.isoformat().replace("+00:00", "Z"))
    assert r.status_code == 201, r.text
    acc = r.json()["access"]
    assert acc["granted"] is False and acc["state"] == "stale"


def test_revoked_device_gets_nothing(gate):
    dev = gate.enroll("Testförvaltningen/Gate/D")
    register(gate, dev)
    gate.cli("device", "revoke", dev.id)
    before = tls_rows(gate)
    r, _ = register(gate, dev, ec.generate_private_key(ec.SECP256R1()))
    assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"
    assert send(gate, dev).status_code == 403
    assert tls_rows(gate) == before


def test_registration_attacks_are_refused_and_store_nothing(gate):
    victim = gate.enroll("Testförvaltningen/Gate/E")
    attacker = gate.enroll("Testförvaltningen/Gate/E")
    ok, _ = register(gate, victim)
    assert ok.status_code == 201
    before = tls_rows(gate)
    with gate.client() as h:
        stored_key = _stored_key(gate, victim.id)
        # Signed by another device's key, for the victim; by a key nobody enrolled; the
        # attacker's own valid request sent to the victim's URL; for a device nobody
        # enrolled: one answer, which tells no stranger whether the id exists.
        refusals = [register(gate, victim, signer=attacker.key)[0],
                    register(gate, victim, signer=Ed25519PrivateKey.generate())[0],
                    register(gate, attacker, path_id=victim.id)[0],
                    register(gate, victim, path_id="no-such-device")[0]]
        assert {(r.status_code, r.content) for r in refusals} == {
            (401, refusals[0].content)}, [r.text for r in refusals]
        assert refusals[0].json()["error"]["code"] == "not_authenticated"
        # The payload names another device than the URL.
        r, _ = register(gate, attacker, device_id=victim.id)
        assert r.status_code == 422 and r.json()["error"]["code"] == "device_mismatch"
        # A replay of an older registration after a newer one.
        old = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=30)).replace(microsecond=0)
        r, _ = register(gate, victim, requested_at=old.isoformat().replace("+00:00", "Z"))
        assert r.status_code == 409 and r.json()["error"]["code"] == "stale_request", r.text
        # Signed long ago / far in the future.
        for delta in (dt.timedelta(hours=-2), dt.timedelta(hours=1)):
            at = (dt.datetime.now(dt.timezone.utc) + delta).replace(microsecond=0)
            r, _ = register(gate, victim, requested_at=at.isoformat().replace("+00:00", "Z"))
            assert r.status_code == 422 and r.json()["error"]["code"] == "clock_skew"
        # A key type gateways should not be given.
        r, _ = register(gate, victim, ec.generate_private_key(ec.SECP384R1()))
        assert r.status_code == 422 and r.json()["error"]["code"] == "bad_tls_key"
        # A CSR whose signature is not by the key it carries (spliced public key).
        r = h.put(f"/v1/devices/{victim.id}/tls-key", content=json.dumps(_spliced_csr(victim)))
        assert r.status_code == 422 and r.json()["error"]["code"] == "schema_violation", r.text
        # Not JSON, not an envelope, wrong payload type, extra fields.
        assert h.put(f"/v1/devices/{victim.id}/tls-key", content=b"{nope").status_code == 400
        assert h.put(f"/v1/devices/{victim.id}/tls-key", content=b"[]").status_code == 400
        report_env = victim.sign()
        r = h.put(f"/v1/devices/{victim.id}/tls-key", content=json.dumps(report_env))
        assert r.status_code == 422 and r.json()["error"]["code"] == "bad_payload_type"
        extra = wire.sign_payload(tls_request.PAYLOAD_TYPE, wire.canonical_json(
            {"device_id": victim.id, "csr": "x", "requested_at": wire.now_iso(), "unit": "Other"}), victim.key)
        assert h.put(f"/v1/devices/{victim.id}/tls-key", content=json.dumps(extra)).status_code == 422
        # Too large a body.
        r = h.put(f"/v1/devices/{victim.id}/tls-key", content=b"x" * (100 * 1024))
        assert r.status_code == 413
    assert tls_rows(gate) == before
    assert _stored_key(gate, victim.id) == stored_key


def test_without_a_readiness_ca_nothing_is_issued(tmp_path):
    from collector_fixtures import EnrolledDevice, migrated_app
    from fastapi.testclient import TestClient

    from server.store import Store

    app = migrated_app(f"sqlite:///{tmp_path / 'noca.db'}")
    store: Store = app.state.store
    store.add_unit("U")
    token, _ = store.create_token("U")
    key = Ed25519PrivateKey.generate()
    enrolled = store.enroll(token=token, public_key_pem=wire.public_key_pem(key.public_key()),
                            device={"hostname": "h"})
    dev = EnrolledDevice(id=enrolled["device_id"], key=key, unit="U", keyid=enrolled["keyid"])
    with TestClient(app) as h:
        env = tls_request.sign_request(device_id=dev.id, device_key=key, tls_key=ec.generate_private_key(ec.SECP256R1()))
        r = h.put(f"/v1/devices/{dev.id}/tls-key", content=json.dumps(env))
        assert r.status_code == 404 and r.json()["error"]["code"] == "access_disabled"
        r = h.post("/v1/reports", content=wire.envelope_bytes(dev.sign()))
        assert r.status_code == 201 and "access" not in r.json()
        assert h.get("/v1/readiness-ca.pem").status_code == 404
    store.engine.dispose()


def _stored_key(c, device_id):
    from sqlalchemy import text

    with c.engine.connect() as conn:
        return conn.execute(text("SELECT key_sha256 FROM device_tls_keys WHERE device_id = :d"),
                            {"d": device_id}).scalar()


def _spliced_csr(dev):
    """A CSR signed by one key but carrying another's public key (built by hand from DER)."""
    from cryptography.hazmat.primitives import hashes

    a, b = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, dev.id)])
    csr_a = x509.CertificateSigningRequestBuilder().subject_name(name).sign(a, hashes.SHA256())
    spki_a = a.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    spki_b = b.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    der = csr_a.public_bytes(serialization.Encoding.DER).replace(spki_a, spki_b)
    import base64

    pem = "-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(der).decode() + \
          "-----END CERTIFICATE REQUEST-----\n"
    payload = wire.canonical_json({"device_id": dev.id, "csr": pem, "requested_at": wire.now_iso()})
    return wire.sign_payload(tls_request.PAYLOAD_TYPE, payload, dev.key)
