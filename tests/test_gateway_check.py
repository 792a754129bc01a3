"""``GET /v1/gateway/check`` (server/gateway.py) on SQLite and PostgreSQL: a device id or
a verified client certificate in, 200/403 with the state and reason out (headers and
JSON), from the same device state every other view uses; the caller authenticated;
every malformed input a precise 4xx or a refusal, never a 500."""
from __future__ import annotations

import datetime as dt
import json
import urllib.parse

import pytest
from collector_fixtures import EnrolledDevice, migrated_app
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from auditagent import report as wire
from auditagent import tls_request
from server import access
from server.api_tokens import create_api_token
from server.readiness import Scope, device_state_rows
from server.readiness_ca import init_ca



@pytest.fixture(scope="module")
def env(collector_db_url, tmp_path_factory):
    ca_dir = tmp_path_factory.mktemp("gw") / "ca"
    init_ca(ca_dir)
    app = migrated_app(collector_db_url)
    from server.readiness_ca import ReadinessCA

    app.state.readiness_ca = ReadinessCA(ca_dir)  # as `serve --readiness-ca DIR` gives
    app.state.store.add_unit("Gw/A")
    with app.state.store.engine.begin() as conn:
        token = create_api_token(conn, name="gateway", role="security_officer").token
        scoped = create_api_token(conn, name="gateway-a", role="unit_manager", unit_path="Gw/A").token
    with TestClient(app) as client:
        client.tokens = {"all": token, "Gw/A": scoped}
        yield app, client
    app.state.store.engine.dispose()


def enrol(app, unit: str) -> EnrolledDevice:
    store = app.state.store
    store.add_unit(unit)
    token, _ = store.create_token(unit)
    key = Ed25519PrivateKey.generate()
    e = store.enroll(token=token, public_key_pem=wire.public_key_pem(key.public_key()), device={"hostname": "gw"})
    return EnrolledDevice(id=e["device_id"], key=key, unit=unit, keyid=e["keyid"])


def ask(client, token="all", **headers):
    token = client.tokens.get(token, token) if token else None
    h = {"Authorization": f"Bearer {token}"} if token else {}
    h.update({k.replace("_", "-"): v for k, v in headers.items()})
    return client.get("/v1/gateway/check", headers=h)


def test_answers_follow_the_device_state(env):
    app, client = env
    dev = enrol(app, "Gw/A")
    r = ask(client, X_Device_Id=dev.id)
    assert r.status_code == 403 and r.headers["x-readiness-state"] == "never_reported"
    assert client.post("/v1/reports", content=wire.envelope_bytes(dev.sign())).status_code == 201
    r = ask(client, X_Device_Id=dev.id)
    assert r.status_code == 200 and r.json()["allowed"] is True and r.headers["x-readiness-state"] == "ready"
    assert r.headers["x-readiness-device"] == dev.id and r.headers["cache-control"] == "no-store"
    client.post("/v1/reports", content=wire.envelope_bytes(dev.sign(
        results=[{"check_id": "disk-encrypted", "status": "fail", "severity": "required"}], verdict="not_ready")))
    r = ask(client, X_Device_Id=dev.id)
    assert r.status_code == 403
    assert r.headers["x-readiness-reason"] == "required checks not met: disk-encrypted"
    assert r.json()["state"] == "not_ready"
    # The same state the dashboard's one definition gives.
    with app.state.store.engine.connect() as conn:
        now = dt.datetime.now(dt.timezone.utc)
        row = conn.execute(device_state_rows(conn, Scope(), now)).mappings().all()
        dash = {x["id"]: x["state"] for x in row}
        assert dash[dev.id] == access.device_access(conn, dev.id, now).state == "not_ready"
    # Query parameter works too; revoked is refused with its reason.
    assert client.get(f"/v1/gateway/check?device_id={dev.id}",
                      headers={"Authorization": f"Bearer {client.tokens['all']}"}).status_code == 403
    app.state.store.revoke_device(dev.id)
    r = ask(client, X_Device_Id=dev.id)
    assert r.status_code == 403 and r.headers["x-readiness-state"] == "revoked"


def test_client_certificate_in(env):
    app, client = env
    dev = enrol(app, "Gw/B")
    tls_key = ec.generate_private_key(ec.SECP256R1())
    reg = client.put(f"/v1/devices/{dev.id}/tls-key", content=json.dumps(
        tls_request.sign_request(device_id=dev.id, device_key=dev.key, tls_key=tls_key)))
    assert reg.status_code == 201
    pem = client.post("/v1/reports", content=wire.envelope_bytes(dev.sign())).json()["access"]["certificate"]
    escaped = urllib.parse.quote(pem, safe="")  # as nginx's $ssl_client_escaped_cert
    r = ask(client, X_Client_Cert=escaped)
    assert r.status_code == 200 and r.json()["device_id"] == dev.id
    assert ask(client, X_Client_Cert=escaped, X_Device_Id=dev.id).status_code == 200
    # The certificate names another device than the one claimed.
    r = ask(client, X_Client_Cert=escaped, X_Device_Id="someone-else")
    assert r.status_code == 403 and r.headers["x-readiness-state"] == "bad_certificate"
    # Not a certificate; another CA's.
    assert ask(client, X_Client_Cert="garbage").headers["x-readiness-state"] == "bad_certificate"
    other = init_ca(app.state.readiness_ca.directory.parent / "other")
    now = dt.datetime.now(dt.timezone.utc)
    forged = other.issue(tls_key.public_key(), device_id=dev.id, unit="Gw/B", policy_sha256=None,
                         not_after=now + dt.timedelta(hours=1), now=now)
    r = ask(client, X_Client_Cert=urllib.parse.quote(forged.public_bytes(serialization.Encoding.PEM).decode()))
    assert r.status_code == 403 and r.headers["x-readiness-state"] == "bad_certificate"


def test_caller_and_input_errors(env):
    app, client = env
    assert ask(client, token=None, X_Device_Id="x").status_code == 401
    assert ask(client, token="wrong-token", X_Device_Id="x").status_code == 401
    assert ask(client).status_code == 400
    assert ask(client, X_Device_Id="x" * 65).status_code == 400
    assert ask(client, X_Client_Cert="x" * 20000).status_code == 400
    r = ask(client, X_Device_Id="no-such-device")
    assert r.status_code == 403 and r.headers["x-readiness-state"] == "unknown_device"
    # A token of another unit subtree learns nothing about this device.
    dev = enrol(app, "Gw/Other")
    client.post("/v1/reports", content=wire.envelope_bytes(dev.sign()))
    assert ask(client, X_Device_Id=dev.id).status_code == 200
    r = ask(client, token="Gw/A", X_Device_Id=dev.id)
    assert r.status_code == 403 and r.headers["x-readiness-state"] == "unknown_device"
    mine = enrol(app, "Gw/A/Team")
    client.post("/v1/reports", content=wire.envelope_bytes(mine.sign()))
    assert ask(client, token="Gw/A", X_Device_Id=mine.id).status_code == 200
    # A dashboard cookie is no gateway credential.
    assert client.get("/v1/gateway/check", headers={"X-Device-Id": "x", "Cookie": "aa_session=x"}).status_code == 401


def test_no_key_material_in_logs(env, monkeypatch):
    import structlog
    from structlog.testing import capture_logs

    import server.access

    # A fresh logger: the collector caches its loggers on first use (server/logs.py), and a
    # logger cached by an earlier test would write past capture_logs.
    monkeypatch.setattr(server.access, "log", structlog.get_logger("auditagent.collector"))
    app, client = env
    dev = enrol(app, "Gw/Logs")
    tls_key = ec.generate_private_key(ec.SECP256R1())
    with capture_logs() as logs:
        client.put(f"/v1/devices/{dev.id}/tls-key", content=json.dumps(
            tls_request.sign_request(device_id=dev.id, device_key=dev.key, tls_key=tls_key)))
        pem = client.post("/v1/reports", content=wire.envelope_bytes(dev.sign())).json()["access"]["certificate"]
    events = [e["event"] for e in logs]
    assert "tls_key.registered" in events and "readiness_certificate.issued" in events
    text = json.dumps(logs, default=str)
    assert "BEGIN" not in text and pem.splitlines()[1] not in text
    spki = tls_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert spki.hex() not in text
