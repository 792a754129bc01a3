"""Enrolment, tokens, units, signed policies and the collector CLI, against a real
collector on SQLite and PostgreSQL; HTTPS with a test CA."""
from __future__ import annotations

import datetime as dt
import json
import ssl
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import inspect, text

from auditagent import report as wire


def enrol_body(token, key=None, **extra):
    key = key or Ed25519PrivateKey.generate()
    return {"token": token, "public_key": wire.public_key_pem(key.public_key()),
            "device": {"hostname": "lap-1", "serial": "S1", "os": "macOS 14.4", "platform": "macos"}, **extra}


def test_cli_unit_tree_and_token_on_last_line(collector):
    out = collector.cli("unit", "add", "Socialförvaltningen/IFO/Ekonomiskt bistånd").stdout
    assert out.strip() == "Socialförvaltningen/IFO/Ekonomiskt bistånd"
    units = {u["path"]: u for u in json.loads(collector.cli("unit", "list", "--json").stdout)}
    assert {"Socialförvaltningen", "Socialförvaltningen/IFO", "Socialförvaltningen/IFO/Ekonomiskt bistånd"} <= set(units)
    assert units["Socialförvaltningen/IFO"]["parent_id"] == units["Socialförvaltningen"]["id"]
    assert units["Socialförvaltningen/IFO/Ekonomiskt bistånd"]["depth"] == 3
    proc = collector.cli("token", "create", "--unit", "Socialförvaltningen/IFO", "--uses", "2", "--expires-in", "1h")
    token = proc.stdout.strip().splitlines()[-1]
    with collector.client() as c:
        r = c.post("/v1/enroll", json=enrol_body(token))
    assert r.status_code == 201, r.text
    data = r.json()
    assert data["unit"] == "Socialförvaltningen/IFO"
    assert data["policy_url"] == f"/v1/devices/{data['device_id']}/policy"
    assert data["next_sequence"] == 1
    listed = collector.cli("device", "list", "--unit", "Socialförvaltningen").stdout
    assert data["device_id"] in listed and "lap-1" in listed
    assert "Socialförvaltningen/IFO" in collector.cli("token", "list").stdout
    bad = collector.cli("token", "create", "--unit", "No/Such/Unit", check=False)
    assert bad.returncode == 2 and "unit add" in bad.stderr


def test_token_is_stored_only_as_a_hash(collector):
    token = collector.token(uses=1)
    with collector.client() as c:
        assert c.post("/v1/enroll", json=enrol_body(token)).status_code == 201
    secret = token.split("_", 1)[1]
    with collector.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                for value in row:
                    if isinstance(value, (str, bytes)):
                        s = value.decode("latin-1") if isinstance(value, bytes) else value
                        assert secret not in s, f"plaintext token found in {table}"


def test_token_use_limit(collector):
    token = collector.token(uses=2)
    with collector.client() as c:
        assert c.post("/v1/enroll", json=enrol_body(token)).status_code == 201
        assert c.post("/v1/enroll", json=enrol_body(token)).status_code == 201
        before = collector.count("devices")
        r = c.post("/v1/enroll", json=enrol_body(token))
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_exhausted"
    assert collector.count("devices") == before


def test_token_expiry_and_invalid_token(collector):
    collector.store.add_unit("Expiry")
    token, _ = collector.store.create_token("Expiry", expires_in=dt.timedelta(seconds=1), uses=5)
    time.sleep(1.5)
    before = collector.count("devices")
    with collector.client() as c:
        r = c.post("/v1/enroll", json=enrol_body(token))
        assert r.status_code == 401 and r.json()["error"]["code"] == "expired_token"
        r = c.post("/v1/enroll", json=enrol_body("aaenr_made-up"))
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
    assert collector.count("devices") == before


def test_failed_enrolment_does_not_use_up_the_token(collector):
    token = collector.token(uses=1)
    with collector.client() as c:
        r = c.post("/v1/enroll", json={**enrol_body(token), "public_key": "-----BEGIN PUBLIC KEY-----\nnope"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "bad_public_key"
        assert c.post("/v1/enroll", json=enrol_body(token)).status_code == 201


@pytest.mark.parametrize("body, status, code", [
    (b"{nope", 400, "malformed_json"),
    (b'{"token": "x"}', 422, "schema_violation"),
    (b'{"token": "x", "public_key": "k", "device": {"hostname": ""}}', 422, "schema_violation"),
])
def test_malformed_enrolment(collector, body, status, code):
    with collector.client() as c:
        r = c.post("/v1/enroll", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_reenrolment_needs_a_token_of_the_same_unit(collector):
    device = collector.enroll("Unit-A")
    other_unit_token = collector.token("Unit-B")
    with collector.client() as c:
        r = c.post("/v1/enroll", json=enrol_body(other_unit_token, device_id=device.id))
        assert r.status_code == 403 and r.json()["error"]["code"] == "unit_mismatch"
        r = c.post("/v1/enroll", json=enrol_body(collector.token("Unit-A"), device_id="no-such-device"))
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_device"
    # The refused attempts rotated nothing.
    with collector.engine.connect() as conn:
        assert conn.execute(text("SELECT current_keyid FROM devices WHERE id = :d"), {"d": device.id}).scalar_one() \
            == device.keyid


def test_signed_policy_served_with_etag_and_inherited(collector, tmp_path):
    org = Ed25519PrivateKey.generate()
    yaml_v1 = b"id: casework\nversion: 1.0.0\n"
    signed = tmp_path / "casework.signed.json"
    signed.write_text(json.dumps(wire.sign_policy(yaml_v1, org)))
    org_pub = tmp_path / "org.pub.pem"
    org_pub.write_text(wire.public_key_pem(org.public_key()))
    collector.cli("unit", "add", "Policy-Org/IFO/Team")
    out = collector.cli("policy", "set", "--unit", "Policy-Org", str(signed), "--public-key", str(org_pub)).stdout
    assert "casework 1.0.0" in out
    device = collector.enroll("Policy-Org/IFO/Team")  # inherits from the root unit
    with collector.client() as c:
        r = c.get(f"/v1/devices/{device.id}/policy", headers=device.policy_headers())
        assert r.status_code == 200, r.text
        etag = r.headers["etag"]
        assert wire.verify_policy(r.json(), org.public_key()) == yaml_v1
        assert etag.strip('"') == wire.payload_sha256(r.json())
        r304 = c.get(f"/v1/devices/{device.id}/policy", headers={"If-None-Match": etag, **device.policy_headers()})
        assert r304.status_code == 304 and r304.headers["etag"] == etag
        # A nearer unit's policy wins; the ETag changes with it.
        yaml_v2 = b"id: casework-ifo\nversion: 2.0.0\n"
        signed.write_text(json.dumps(wire.sign_policy(yaml_v2, org)))
        collector.cli("policy", "set", "--unit", "Policy-Org/IFO", str(signed))
        r = c.get(f"/v1/devices/{device.id}/policy", headers={"If-None-Match": etag, **device.policy_headers()})
        assert r.status_code == 200 and r.headers["etag"] != etag
        assert wire.verify_policy(r.json(), org.public_key()) == yaml_v2
        # A device of a unit without any policy (it proved its key, so it may hear that).
        lonely = collector.enroll("No-Policy-Unit")
        r = c.get(f"/v1/devices/{lonely.id}/policy", headers=lonely.policy_headers())
        assert r.status_code == 404 and r.json()["error"]["code"] == "no_policy"
    # A policy signed by someone else is refused when the org key is given.
    signed.write_text(json.dumps(wire.sign_policy(yaml_v1, Ed25519PrivateKey.generate())))
    bad = collector.cli("policy", "set", "--unit", "Policy-Org", str(signed), "--public-key", str(org_pub), check=False)
    assert bad.returncode == 1 and "does not verify" in bad.stderr


def test_db_upgrade_is_idempotent(collector):
    from server.migrate import head_revision

    assert f"revision {head_revision()}" in collector.cli("db", "upgrade").stdout
    assert f"revision {head_revision()}" in collector.cli("db", "upgrade").stdout


def test_migrations_match_the_table_definitions(collector):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from server.db import metadata
    from server.partitions import include_name

    with collector.engine.connect() as conn:  # monthly partitions are made at run time, not declared
        diff = compare_metadata(MigrationContext.configure(conn, opts={"include_name": include_name}), metadata)
    assert [d for d in diff if d[0] in ("add_table", "remove_table", "add_column", "remove_column")] == []


# ------------------------------------------------------------------ HTTPS


def test_https_enrol_and_report_with_test_ca(tls_collector, tls_files):
    assert tls_collector.url.startswith("https://127.0.0.1:")
    device = tls_collector.enroll()
    with httpx.Client(base_url=tls_collector.url, verify=ssl.create_default_context(cafile=str(tls_files.ca))) as c:
        r = c.post("/v1/reports", json=device.sign())
    assert r.status_code == 201, r.text
    assert tls_collector.count("reports", device_id=device.id) == 1
    # Without the test CA the certificate is not trusted; plain HTTP gets no answer.
    with pytest.raises(httpx.ConnectError):
        httpx.get(tls_collector.url + "/healthz", timeout=5)
    with pytest.raises(httpx.HTTPError):
        httpx.get(tls_collector.url.replace("https://", "http://") + "/healthz", timeout=5)


def test_oversized_enrolment_body_is_refused(collector):
    token = collector.token()
    body = {**enrol_body(token), "padding": "x" * (300 * 1024)}
    before = collector.count("devices")
    with collector.client() as c:
        r = c.post("/v1/enroll", json=body)
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        raw = json.dumps(body).encode()
        r = c.post("/v1/enroll", content=iter([raw[i:i + 8192] for i in range(0, len(raw), 8192)]),
                   headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert collector.count("devices") == before


def test_database_url_from_environment(collector):
    import os
    import subprocess
    import sys

    from collector_fixtures import REPO

    env = {**os.environ, "AUDITAGENT_COLLECTOR_DB": collector.db_url, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "server.cli", "unit", "add", "From-Env/Unit"], env=env,
                         capture_output=True, text=True, cwd=collector.workdir, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "From-Env/Unit" in collector.cli("unit", "list").stdout


def test_logs_hold_no_secrets_or_facts(collector_db_url, tmp_path):
    """With debug logging on, a full enrol → report → revoke leaves no token, key material
    or report facts in the collector's log."""
    from collector_fixtures import start_collector

    noisy = start_collector(collector_db_url, tmp_path / "noisy", extra_args=("--log-level", "debug"))
    try:
        token = noisy.token(uses=1)
        device = noisy.enroll(token=token)
        with noisy.client() as c:
            assert c.post("/v1/reports", json=device.sign(facts={"secret_fact": "casefile-4711"})).status_code == 201
            assert c.post("/v1/enroll", json=enrol_body(token)).status_code == 401
        noisy.cli("device", "revoke", device.id)
    finally:
        noisy.stop()
    log = noisy.log_path.read_text()
    assert "device.enrolled" in log  # it does log, as JSON events
    for secret in (token, token.split("_", 1)[1], "casefile-4711", "secret_fact", "BEGIN PUBLIC KEY",
                   wire.public_key_pem(device.key.public_key()).splitlines()[1]):
        assert secret not in log, f"{secret[:12]}… leaked into the log"
