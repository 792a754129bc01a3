"""POST /v1/reports against a real collector (subprocess, 127.0.0.1), on SQLite and
PostgreSQL: accepted reports are stored verbatim with the device's latest state; every
kind of bad report is refused with a precise 4xx and a JSON error, and nothing is stored."""
from __future__ import annotations

import base64
import copy
import datetime as dt
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, text

from auditagent import report as wire
from collector_fixtures import raw_http, refused_while_sending
from server.db import reports
from server.report_read import SIGNED_COLUMNS, envelope_of, signed_envelope


def post(collector, body, **kwargs):
    with collector.client() as c:
        if isinstance(body, (bytes, str)):
            return c.post("/v1/reports", content=body, headers={"content-type": "application/json"}, **kwargs)
        return c.post("/v1/reports", json=body, **kwargs)


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


class Refused:
    """Context: the number of stored reports and the device's state do not change."""

    def __init__(self, collector, device=None):
        self.collector, self.device = collector, device

    def snapshot(self):
        c = self.collector
        state = None
        if self.device is not None:
            with c.engine.connect() as conn:
                state = conn.execute(text("SELECT last_sequence, last_report_id FROM device_state "
                                          "WHERE device_id = :d"), {"d": self.device.id}).first()
        return c.count("reports"), state

    def __enter__(self):
        self.before = self.snapshot()
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            assert self.snapshot() == self.before, "a refused report changed what is stored"


# ------------------------------------------------------------------ accepted


def test_enrol_report_stored_and_rebuilt_exactly(collector):
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey

    device = collector.enroll()
    env = device.sign()
    raw = wire.envelope_bytes(env)
    r = post(collector, raw)
    assert r.status_code == 201, r.text
    rid = wire.envelope_report_id(wire.decode_envelope(env).statement)
    assert r.json() == {"report_id": rid, "status": "stored", "sequence": 1}
    with collector.engine.connect() as conn:
        row = conn.execute(select(*SIGNED_COLUMNS, reports.c.sequence, reports.c.verdict)
                           .where(reports.c.report_id == rid)).one()
        state = conn.execute(text("SELECT last_sequence, last_report_id, verdict FROM device_state "
                                  "WHERE device_id = :d"), {"d": device.id}).one()
        rebuilt, kid = signed_envelope(conn, row)
    # Kept compactly (no base64, facts and results as shared blobs) and rebuilt to the very
    # bytes the agent sent.
    assert len(row.body) + len(row.signature) < len(raw) / 2
    assert rebuilt.encode() == raw
    assert (row.device_id, row.sequence, row.verdict, kid) == (device.id, 1, "ready", device.keyid)
    assert tuple(state) == (1, rid, "ready")
    # The stored envelope verifies with an independent DSSE implementation, without the collector.
    stored = json.loads(rebuilt)
    Envelope.from_dict(copy.deepcopy(stored)).verify(
        [SSlibKey.from_crypto(device.key.public_key(), keyid=device.keyid)], 1)
    assert wire.verify_envelope(stored, device.key.public_key())["predicate"]["report_id"] == rid


def test_hourly_reports_that_differ_only_in_collection_time_share_their_stored_facts(collector):
    # The agent stamps facts.collected_at on every run, so whole-facts deduplication would
    # never hit on a real fleet: the stamp stays in the report's own body and the facts
    # around it are stored once.
    device = collector.enroll()
    facts = {"collected_at": "2026-12-01T08:00:00+00:00", "disk": {"status": "ok", "volumes": [
        {"mount": "/", "role": "system", "encrypted": True}]}, "platform": "linux", "os": {"name": "Debian"}}
    raws = []
    for hour in (8, 9, 10):
        stamped = {**facts, "collected_at": f"2026-12-01T{hour:02d}:00:00+00:00"}
        raws.append(wire.envelope_bytes(device.sign(facts=stamped)))
    counts = []
    for raw in raws:
        r = post(collector, raw)
        assert r.status_code == 201, r.text
        counts.append(collector.count("report_blobs"))
    assert counts[1] == counts[0] == counts[2], counts
    with collector.engine.connect() as conn:
        rows = conn.execute(select(*SIGNED_COLUMNS).where(reports.c.device_id == device.id)
                            .order_by(reports.c.sequence)).all()
        assert [envelope_of(conn, row).encode() for row in rows] == raws


def test_sequence_advances_and_state_follows(collector):
    device = collector.enroll()
    for seq in (1, 2, 5):
        assert post(collector, device.sign(seq, verdict="not_ready" if seq == 5 else "ready")).status_code == 201
    with collector.engine.connect() as conn:
        state = conn.execute(text("SELECT last_sequence, verdict FROM device_state WHERE device_id = :d"),
                             {"d": device.id}).one()
    assert tuple(state) == (5, "not_ready")
    assert collector.count("reports", device_id=device.id) == 3


def test_identical_resend_is_acknowledged_not_stored_twice(collector):
    device = collector.enroll()
    env = device.sign()
    first = post(collector, env)
    assert first.status_code == 201
    with Refused(collector, device):
        again = post(collector, env)
    assert again.status_code == 200
    assert again.json() == {**first.json(), "status": "duplicate"}
    # A resend of an older report after a newer one is still a duplicate, not an error.
    assert post(collector, device.sign()).status_code == 201
    with Refused(collector, device):
        assert post(collector, env).json()["status"] == "duplicate"


# ------------------------------------------------------------------ tampering


def _flip_payload(env, needle=b"test-laptop"):
    env = copy.deepcopy(env)
    payload = bytearray(base64.b64decode(env["payload"]))
    payload[payload.index(needle)] ^= 0x01
    env["payload"] = base64.b64encode(bytes(payload)).decode()
    return env


def _flip_sig(env):
    env = copy.deepcopy(env)
    sig = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
    sig[17] ^= 0x80
    env["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    return env


def _flip_keyid(env):
    env = copy.deepcopy(env)
    kid = env["signatures"][0]["keyid"]
    env["signatures"][0]["keyid"] = kid[:-1] + ("0" if kid[-1] != "0" else "1")
    return env


@pytest.mark.parametrize("tamper, status, code", [
    (_flip_payload, 403, "bad_signature"),
    (_flip_sig, 403, "bad_signature"),
    (_flip_keyid, 403, "key_mismatch"),
])
def test_tampered_reports_are_refused(collector, tamper, status, code):
    device = collector.enroll()
    env = device.sign()
    with Refused(collector, device):
        assert_error(post(collector, tamper(env)), status, code)
    # The untampered original is still accepted afterwards: nothing was consumed.
    assert post(collector, env).status_code == 201


@pytest.mark.parametrize("position", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_any_flipped_byte_in_the_body_is_refused(collector, position):
    device = collector.enroll()
    env = device.sign()
    raw = bytearray(wire.envelope_bytes(env))
    payload_start = raw.index(b'"payload":"') + len(b'"payload":"')
    i = payload_start + int(position * len(env["payload"]))
    raw[i] = ord("A") if raw[i] != ord("A") else ord("B")
    with Refused(collector, device):
        r = post(collector, bytes(raw))
    assert r.status_code in (400, 403, 422), r.text
    assert r.json()["error"]["code"] in ("malformed_envelope", "bad_signature", "schema_violation")


# ------------------------------------------------------------------ keys and devices


def test_report_signed_with_another_key_is_refused(collector):
    device = collector.enroll()
    thief = Ed25519PrivateKey.generate()
    stolen_id = wire.build_statement(device_id=device.id, public_key=thief.public_key(), predicate=device.predicate())
    with Refused(collector, device):
        assert_error(post(collector, wire.sign_envelope(stolen_id, thief)), 403, "key_mismatch")
        forged = wire.sign_envelope(stolen_id, thief)
        forged["signatures"][0]["keyid"] = device.keyid  # claims the device's keyid
        assert_error(post(collector, forged), 403, "bad_signature")


def test_unknown_device_is_refused(collector):
    key = Ed25519PrivateKey.generate()
    pred = wire.build_predicate(device={"id": "never-enrolled", "hostname": "x"}, agent_version="0.1.0",
                                policy={"id": "p", "version": "1", "sha256": "0" * 64}, facts={}, results=[],
                                verdict="ready", sequence=1)
    env = wire.sign_envelope(wire.build_statement(device_id="never-enrolled", public_key=key.public_key(),
                                                  predicate=pred), key)
    with Refused(collector):
        assert_error(post(collector, env), 403, "unknown_device")


def test_revoked_device_is_refused(collector):
    device = collector.enroll()
    assert post(collector, device.sign()).status_code == 201
    out = collector.cli("device", "revoke", device.id, "--reason", "laptop stolen")
    assert "revoked" in out.stdout
    with Refused(collector, device):
        assert_error(post(collector, device.sign()), 403, "revoked_device")
    listed = json.loads(collector.cli("device", "list", "--json").stdout)
    assert next(d for d in listed if d["id"] == device.id)["revoked_at"]
    assert device.id not in collector.cli("device", "list", "--active").stdout
    assert collector.cli("device", "revoke", device.id, check=False).returncode == 1


def test_reenrolment_rotates_key_and_old_key_is_refused(collector):
    token = collector.token(uses=2)
    device = collector.enroll(token=token)
    assert post(collector, device.sign()).status_code == 201
    old_key = device.key
    rotated = collector.enroll(token=token, device_id=device.id, key=Ed25519PrivateKey.generate(),
                               current_key=old_key)
    assert rotated.id == device.id and rotated.keyid != device.keyid
    assert rotated.next_sequence == 2  # the sequence continues across the rotation
    # A report signed with the old key (even a fresh one) is refused…
    stale = device.sign(2)
    with Refused(collector, device):
        assert_error(post(collector, stale), 403, "key_mismatch")
    # …and the new key works.
    assert post(collector, rotated.sign()).status_code == 201
    with collector.engine.connect() as conn:
        keys = conn.execute(text("SELECT keyid, retired_at FROM device_keys WHERE device_id = :d ORDER BY id"),
                            {"d": device.id}).all()
    assert [k.keyid for k in keys] == [wire.keyid(old_key.public_key()), rotated.keyid]
    assert keys[0].retired_at is not None and keys[1].retired_at is None


# ------------------------------------------------------------------ sequence and time


def test_replayed_sequences_are_refused_older_ones_kept_as_history(collector):
    device = collector.enroll()
    assert post(collector, device.sign(3)).status_code == 201
    with Refused(collector, device):
        err = assert_error(post(collector, device.sign(3)), 409, "replayed_sequence")  # same seq, new report id
        assert err["last_sequence"] == 3
    # A sequence the collector never had (a report that waited behind another) is history:
    # stored, and the latest state stays sequence 3.
    r = post(collector, device.sign(2))
    assert r.status_code == 201 and r.json()["status"] == "history", r.text
    with Refused(collector, device):
        assert_error(post(collector, device.sign(2)), 409, "replayed_sequence")


def test_reused_report_id_with_other_content_is_refused(collector):
    device = collector.enroll()
    first = device.sign(1)
    assert post(collector, first).status_code == 201
    rid = wire.decode_envelope(first).statement["predicate"]["report_id"]
    with Refused(collector, device):
        assert_error(post(collector, device.sign(2, report_id=rid)), 409, "report_id_conflict")


@pytest.mark.parametrize("shift", [dt.timedelta(hours=1), dt.timedelta(days=365)])
def test_skewed_clock_is_refused(collector, shift):
    device = collector.enroll()
    when = (dt.datetime.now(dt.timezone.utc) + shift).isoformat()
    with Refused(collector, device):
        err = assert_error(post(collector, device.sign(1, generated_at=when)), 422, "clock_skew")
    assert "server_time" in err
    ok = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=2)).isoformat()  # within the allowed skew
    assert post(collector, device.sign(1, generated_at=ok)).status_code == 201


# ------------------------------------------------------------------ size and shape


def test_oversized_body_with_honest_content_length(collector):
    device = collector.enroll()
    big = device.sign(facts={"padding": "x" * (300 * 1024)})
    with Refused(collector, device):
        assert_error(post(collector, big), 413, "payload_too_large")


def test_oversized_body_streamed_without_content_length(collector):
    device = collector.enroll()
    raw = wire.envelope_bytes(device.sign(facts={"padding": "x" * (300 * 1024)}))

    def chunks():
        for i in range(0, len(raw), 16 * 1024):
            yield raw[i:i + 16 * 1024]

    with Refused(collector, device):
        with collector.client() as c:
            r = c.post("/v1/reports", content=chunks(), headers={"content-type": "application/json"})
        assert_error(r, 413, "payload_too_large")


def test_oversized_body_with_lying_content_length(collector):
    """Content-Length says 200 bytes; 300 KiB follow. The collector reads only what was
    declared (truncated JSON), refuses it, and treats the rest as garbage."""
    device = collector.enroll()
    raw = wire.envelope_bytes(device.sign(facts={"padding": "x" * (300 * 1024)}))
    head = ("POST /v1/reports HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 200\r\nConnection: close\r\n\r\n").encode()
    with Refused(collector, device):
        out = raw_http(collector, head, raw)
    # The server reads out the unread rest before it closes (lingering close), so the answer
    # is never lost to a reset: a 400 for the truncated JSON.
    assert int(out.split(b" ", 2)[1]) == 400 and b"malformed_json" in out, out[:300]
    with collector.client() as c:
        assert c.get("/healthz").status_code == 200
    # Content-Length claims more than the limit: refused before the body is read.
    head = (f"POST /v1/reports HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {10 * 1024 * 1024}\r\nConnection: close\r\n\r\n").encode()
    with Refused(collector, device):
        out = raw_http(collector, head, raw[:1000])
    assert int(out.split(b" ", 2)[1]) == 413 and b"payload_too_large" in out


@pytest.mark.parametrize("declared, sent, status, code", [
    (200, 3 * 1024 * 1024, 400, "malformed_json"),  # 3 MiB beyond a Content-Length of 200
    (10 * 1024 * 1024, 2 * 1024 * 1024, 413, "payload_too_large"),  # refused on its size, 2 MiB still sent
])
def test_refusal_reaches_a_client_still_sending(collector, declared, sent, status, code):
    """The attack on the answer: a client whose body the collector will not read keeps
    sending after the refusal. Closing on unread bytes makes the kernel reset the
    connection, which destroys the answer before the client reads it; the collector
    half-closes after the answer and reads out the rest (bounded), so the client gets the
    whole answer and the end of the stream, every time, and the collector stays up."""
    device = collector.enroll()
    for _ in range(3):
        with Refused(collector, device):
            assert refused_while_sending(collector, declared, sent) == (status, code)
    with collector.client() as c:
        assert c.get("/healthz").status_code == 200


@pytest.mark.parametrize("body, status, code", [
    (b"{not json", 400, "malformed_json"),
    (b"", 400, "malformed_json"),
    (b"[1,2]", 400, "malformed_envelope"),
    (b'{"payloadType":"application/vnd.in-toto+json"}', 400, "malformed_envelope"),
    (b'{"payloadType":"application/vnd.in-toto+json","payload":"@@@","signatures":[{"keyid":"a","sig":"AA=="}]}',
     400, "malformed_envelope"),
])
def test_malformed_bodies_are_refused(collector, body, status, code):
    with Refused(collector):
        assert_error(post(collector, body), status, code)


def test_schema_violation_and_payload_type_are_refused(collector):
    device = collector.enroll()
    st_ = device.statement(1)
    st_["predicate"]["sequence"] = 0
    bad = wire._sign(wire.PAYLOAD_TYPE, wire.canonical_json(st_), device.key)  # signed, but breaks the schema
    with Refused(collector, device):
        err = assert_error(post(collector, bad), 422, "schema_violation")
        assert "predicate.sequence" in err["message"]
        wrong_type = wire._sign("application/json", wire.canonical_json(device.statement(1)), device.key)
        assert_error(post(collector, wrong_type), 422, "bad_payload_type")


def test_reports_are_append_only_in_the_database(collector):
    device = collector.enroll()
    assert post(collector, device.sign()).status_code == 201
    for sql in ("UPDATE reports SET verdict = 'ready' WHERE device_id = :d", "DELETE FROM reports WHERE device_id = :d"):
        with pytest.raises(Exception, match="append-only"):
            with collector.engine.begin() as conn:
                conn.execute(text(sql), {"d": device.id})
    assert collector.count("reports", device_id=device.id) == 1


def test_healthz_and_openapi(collector):
    from attacks import logged_in, user

    with logged_in(collector, user(collector, "openapi-reader")) as c:
        assert c.get("/healthz").json()["status"] == "ok"
        doc = c.get("/openapi.json").json()
        assert {"/v1/reports", "/v1/enroll", "/v1/devices/{device_id}/policy", "/healthz"} <= set(doc["paths"])
        body = doc["paths"]["/v1/reports"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body["required"] == ["payloadType", "payload", "signatures"]
        assert_error(c.get("/v1/nothing-here"), 404, "not_found")
