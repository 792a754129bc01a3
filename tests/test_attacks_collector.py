"""The collector under attack (issue 9), against a real collector over HTTP on 127.0.0.1,
on SQLite and PostgreSQL. Each test sends what an attacker would send and asserts the
answer and that nothing stored changed."""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from attacks import PASSWORD, Unchanged, logged_in, payload_text, signed_raw, user
from auditagent import report as wire


def post_raw(collector, path, body: bytes, **headers):
    with collector.client() as c:
        return c.post(path, content=body, headers={"content-type": "application/json", **headers})


def refused(r, status, code):
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code, r.text
    return r.json()["error"]


# ------------------------------------------------------------------ 1. a device's text is never code


FORMAT_BOMBS = ["{a:>300000000}", "{a.__class__.__mro__}", "{0}{1}", "{a!r:^99999999}", "{a[__globals__]}"]


def test_message_codes_and_text_from_a_device_are_data(collector):
    device = collector.enroll(hostname="pc-\u202egpj.exe\x1b[31m")
    results = [{"check_id": "disk-encrypted\u202e", "status": "fail",
                "messages": [{"code": bomb, "args": {"a": "x"}} for bomb in FORMAT_BOMBS]
                + [{"code": "disk.not_encrypted", "args": {"mount": "{a:>300000000}"}}]}]
    r = post_raw(collector, "/v1/reports", wire.envelope_bytes(device.sign(results=results, verdict="not_ready")))
    assert r.status_code == 201, r.text
    with logged_in(collector, user(collector, "text-admin")) as c:
        page = c.get(f"/devices/{device.id}")
    assert page.status_code == 200
    html = page.text
    assert len(html) < 200_000  # a format string would have made it 300 MB
    assert "{a:&gt;300000000}" in html and "{a.__class__.__mro__}" in html  # shown as escaped text
    assert "&lt;class" not in html and "<class" not in html
    for bad in ("\u202e", "\x1b"):
        assert bad not in html
    assert "&lt;U+202E&gt;" in html and "&lt;U+001B&gt;" in html


def test_translations_never_format_unknown_codes():
    from auditagent.i18n import translate
    from auditagent.textsafe import fill, neutralise
    from server.i18n_web import Translator

    for bomb in FORMAT_BOMBS:
        assert translate(bomb, {"a": "x"}, "sv") == bomb
        assert Translator("en")(bomb, a="x") == bomb
    assert fill("{a} and {b}", {"a": "{b}", "b": "{a:>9}"}) == "{b} and {a:>9}"  # values are never re-read
    assert neutralise("ok\tline\n") == "ok\tline\n"
    assert neutralise("a\u2066b\u200bc\x00\x9b") == "a<U+2066>b<U+200B>c<U+0000><U+009B>"
    assert neutralise("Ekonomiskt bistånd 👩‍💻") == "Ekonomiskt bistånd 👩‍💻"


# ------------------------------------------------------------------ 2. enrolment cannot take over a device


def enrol_body(token, key, device_id=None, proof=None, hostname="attacker"):
    body = {"token": token, "public_key": wire.public_key_pem(key.public_key()), "device": {"hostname": hostname}}
    if device_id:
        body["device_id"] = device_id
    if proof is not None:
        body["rekey_proof"] = proof
    return json.dumps(body).encode()


def test_install_token_cannot_rekey_someone_elses_device(collector):
    install = collector.token("Takeover-Unit", uses=50)
    victim = collector.enroll(token=install)
    mallory = Ed25519PrivateKey.generate()
    # A legitimate proof the victim made for ITS new key, captured on the wire:
    legit_new = Ed25519PrivateKey.generate()
    captured = wire.sign_rekey(victim.id, legit_new.public_key(), victim.key)
    stale = wire.sign_rekey(victim.id, mallory.public_key(), victim.key,
                            issued_at=(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)).isoformat())
    with Unchanged(collector):
        refused(post_raw(collector, "/v1/enroll", enrol_body(install, mallory, victim.id)), 403, "rekey_needs_proof")
        for proof in (wire.sign_rekey(victim.id, mallory.public_key(), mallory),  # signed by the wrong key
                      captured,  # for another new key
                      stale,  # too old (a leaked one from long ago)
                      {"payloadType": "x", "payload": "", "signatures": []}):
            refused(post_raw(collector, "/v1/enroll", enrol_body(install, mallory, victim.id, proof)), 403,
                    "bad_rekey_proof")
    # The real laptop still reports.
    assert post_raw(collector, "/v1/reports", wire.envelope_bytes(victim.sign())).status_code == 201


def test_reenrol_token_is_bound_to_one_device_and_audited(collector):
    install = collector.token("Reenrol-Unit", uses=5)
    lost = collector.enroll(token=install)
    other = collector.enroll(token=install)
    out = collector.cli("token", "create", "--device", lost.id).stdout.strip().splitlines()[-1]
    new_key = Ed25519PrivateKey.generate()
    with Unchanged(collector):
        refused(post_raw(collector, "/v1/enroll", enrol_body(out, new_key, other.id)), 403, "token_for_other_device")
    r = post_raw(collector, "/v1/enroll", enrol_body(out, new_key, hostname="reinstalled"))
    assert r.status_code == 201, r.text
    assert r.json()["device_id"] == lost.id and r.json()["keyid"] == wire.keyid(new_key.public_key())
    with Unchanged(collector):  # single use
        refused(post_raw(collector, "/v1/enroll", enrol_body(out, Ed25519PrivateKey.generate())), 401,
                "token_exhausted")
    with collector.engine.connect() as conn:
        actions = conn.execute(text("SELECT action, detail FROM audit_log WHERE object_id = :d ORDER BY id"),
                               {"d": lost.id}).all()
    assert [a for a, _ in actions] == ["device.enroll", "token.create_reenrol", "device.rekeyed"]
    assert '"by": "reenrol_token"' in actions[2][1]


# ------------------------------------------------------------------ 3. log-in and enrolment throttling


def test_parallel_wrong_guesses_all_count_and_block(collector):
    name = user(collector, "burst-admin")
    source = "203.0.113.30"

    def guess(pw):
        with collector.client(headers={"X-Forwarded-For": source}) as c:
            return c.post("/api/v1/login", json={"username": name, "password": pw}).status_code

    with concurrent.futures.ThreadPoolExecutor(30) as pool:
        statuses = list(pool.map(guess, ["wrong guess %d" % i for i in range(30)]))
    with collector.engine.connect() as conn:
        failed = conn.execute(text("SELECT failed_logins FROM users WHERE username = :u"), {"u": name}).scalar_one()
    checked = statuses.count(401)
    assert set(statuses) <= {401, 429} and checked >= 5
    assert failed == checked  # every password that was checked is counted, none lost to a race
    print(f"30 parallel wrong guesses: {checked} checked and counted (failed_logins={failed}), "
          f"{statuses.count(429)} refused 429 before hashing")
    r = guess(PASSWORD)  # the right password, from the guessing address: blocked
    assert r == 429
    with collector.client(headers={"X-Forwarded-For": "198.51.100.1"}) as c:  # the admin, elsewhere
        ok = c.post("/api/v1/login", json={"username": name, "password": PASSWORD})
    assert ok.status_code == 200, ok.text


def test_login_page_answers_429_with_retry_after(collector):
    name = user(collector, "form-admin")
    with collector.client(headers={"X-Forwarded-For": "203.0.113.40"}) as c:
        for _ in range(5):
            c.post("/api/v1/login", json={"username": name, "password": "nope nope"})
        page = c.get("/login")
        csrf = page.cookies.get("aa_login_csrf")
        c.headers["Cookie"] = f"aa_login_csrf={csrf}"
        import re

        field = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        r = c.post("/login", data={"username": name, "password": PASSWORD, "csrf_token": field},
                   follow_redirects=False)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert "text/html" in r.headers["content-type"]


def test_enrolment_guessing_is_throttled_per_address(collector):
    key = Ed25519PrivateKey.generate()
    attacker = {"X-Forwarded-For": "203.0.113.50"}
    from server.throttle import RULES

    statuses = [post_raw(collector, "/v1/enroll", enrol_body(f"aaenr_guess{i}", key), **attacker).status_code
                for i in range(RULES["enroll"].limit + 1)]
    assert statuses[:-1] == [401] * RULES["enroll"].limit
    r = post_raw(collector, "/v1/enroll", enrol_body(collector.token("Guess-Unit"), key), **attacker)
    refused(r, 429, "too_many_attempts")
    assert int(r.headers["retry-after"]) >= 1
    # Another address enrols as usual.
    ok = post_raw(collector, "/v1/enroll", enrol_body(collector.token("Guess-Unit"), key),
                  **{"X-Forwarded-For": "198.51.100.2"})
    assert ok.status_code == 201, ok.text


# ------------------------------------------------------------------ 4. strict input


def _nested(depth):
    return "[" * depth + "]" * depth


def report_attacks(device):
    """(name, body bytes, status, code): each an attack on POST /v1/reports."""
    good = payload_text(device, 1)
    seq = lambda n: payload_text(device, 1).replace('"sequence":1', f'"sequence":{n}')  # noqa: E731
    env = json.loads(signed_raw(device, good.encode()))
    return [
        ("deep nesting (envelope)", _nested(100_000).encode(), 400, "malformed_json"),
        ("deep nesting (payload)", signed_raw(device, good.replace('"facts":{', '"facts":{"x":' + _nested(40) + ',')
                                              .encode()), 400, "malformed_envelope"),
        ("NaN", signed_raw(device, good.replace('"facts":{', '"facts":{"x":NaN,').encode()), 400,
         "malformed_envelope"),
        ("Infinity", signed_raw(device, good.replace('"facts":{', '"facts":{"x":-Infinity,').encode()), 400,
         "malformed_envelope"),
        ("1e400", signed_raw(device, good.replace('"facts":{', '"facts":{"x":1e400,').encode()), 400,
         "malformed_envelope"),
        ("NUL in hostname", signed_raw(device, good.replace('"hostname":"', '"hostname":"\\u0000').encode()), 400,
         "malformed_envelope"),
        ("NUL in a key", signed_raw(device, good.replace('"facts":{', '"facts":{"a\\u0000b":1,').encode()), 400,
         "malformed_envelope"),
        ("lone surrogate", signed_raw(device, good.replace('"facts":{', '"facts":{"x":"\\ud800",').encode()), 400,
         "malformed_envelope"),
        ("invalid UTF-8", signed_raw(device, good.replace('"facts":{', '"facts":{"x":"\xff",').encode("latin-1")),
         400, "malformed_envelope"),
        ("duplicate key in payload", signed_raw(device, good.replace('"verdict":"ready"',
                                                                     '"verdict":"not_ready","verdict":"ready"')
                                                .encode()), 400, "malformed_envelope"),
        ("duplicate key in envelope", ('{"payloadType":"%s","payload":"%s","payload":"e30=","signatures":%s}'
                                       % (wire.PAYLOAD_TYPE, env["payload"], json.dumps(env["signatures"])))
         .encode(), 400, "malformed_json"),
        ("NaN in envelope", b'{"payloadType":NaN,"payload":"","signatures":[]}', 400, "malformed_json"),
        ("5 signatures", signed_raw(device, good.encode(), signatures=5), 400, "malformed_envelope"),
        ("sequence 2^63-1", signed_raw(device, seq(2**63 - 1).encode()), 422, "schema_violation"),
        ("sequence 2^63", signed_raw(device, seq(2**63).encode()), 422, "schema_violation"),
        ("sequence 2^64+1", signed_raw(device, seq(2**64 + 1).encode()), 422, "schema_violation"),
        ("sequence 0", signed_raw(device, seq(0).encode()), 422, "schema_violation"),
        ("sequence as float", signed_raw(device, seq("1.0").encode()), 422, "schema_violation"),
        ("huge integer", signed_raw(device, good.replace('"facts":{', '"facts":{"x":' + "9" * 5000 + ',')
                                    .encode()), 400, "malformed_envelope"),
    ]


def test_malformed_reports_get_a_precise_4xx_and_change_nothing(collector):
    device = collector.enroll()
    for name, body, status, code in report_attacks(device):
        with Unchanged(collector):
            r = post_raw(collector, "/v1/reports", body)
            assert (r.status_code, r.json()["error"]["code"]) == (status, code), (name, r.text)
    # The device itself is fine: its next honest report is stored.
    assert post_raw(collector, "/v1/reports", wire.envelope_bytes(device.sign(1))).status_code == 201


@pytest.mark.parametrize("body, code", [
    (b'{"token":"x","token":"y","public_key":"k","device":{"hostname":"h"}}', "malformed_json"),
    (b'{"token":"x","public_key":"k","device":{"hostname":"h\\u0000"}}', "malformed_json"),
    (b'{"token":"x","public_key":"k","device":{"hostname":"\\udfff"}}', "malformed_json"),
    (b'{"token":"x","public_key":"k","device":{"hostname":"h","os":{"v":NaN}}}', "malformed_json"),
    (b'{"token":"x","public_key":"k","device":{"hostname":"h","os":{"v":1e400}}}', "malformed_json"),
    (_nested(5000).encode(), "malformed_json"),
])
def test_malformed_enrolments_are_refused_precisely(collector, body, code):
    with Unchanged(collector):
        refused(post_raw(collector, "/v1/enroll", body, **{"X-Forwarded-For": "192.0.2.77"}), 400, code)


def test_strict_json_on_the_logged_in_api(collector):
    with logged_in(collector, user(collector, "json-admin")) as c:
        with Unchanged(collector):
            for body in (b'{"path":"A","path":"B"}', b'{"path":"A\\u0000"}', b'{"path":"x","max_report_age_hours":NaN}'):
                r = c.post("/api/v1/units", content=body, headers={"content-type": "application/json"})
                refused(r, 400, "malformed_json")


# ------------------------------------------------------------------ 5. late reports are history


def test_late_reports_are_history_and_never_overwrite_the_latest(collector):
    device = collector.enroll()
    now = dt.datetime.now(dt.timezone.utc)
    holiday = [(now - dt.timedelta(days=d)).isoformat() for d in (21, 20, 19)]
    for i, when in enumerate(holiday, start=1):  # spooled during three weeks offline
        r = post_raw(collector, "/v1/reports", wire.envelope_bytes(device.sign(i, generated_at=when)))
        assert (r.status_code, r.json()["status"]) == (201, "stored"), r.text
    fresh = device.sign(5, generated_at=now.isoformat())
    assert post_raw(collector, "/v1/reports", wire.envelope_bytes(fresh)).status_code == 201
    # Sequence 4 was held back and arrives last, older than the latest state: history.
    r = post_raw(collector, "/v1/reports", wire.envelope_bytes(device.sign(4, generated_at=holiday[-1],
                                                                            verdict="not_ready")))
    assert (r.status_code, r.json()["status"]) == (201, "history"), r.text
    # A higher sequence with an earlier clock (a clock reset) is history too.
    r = post_raw(collector, "/v1/reports", wire.envelope_bytes(device.sign(6, generated_at=holiday[0])))
    assert (r.status_code, r.json()["status"]) == (201, "history"), r.text
    with collector.engine.connect() as conn:
        state = conn.execute(text("SELECT last_sequence, verdict FROM device_state WHERE device_id = :d"),
                             {"d": device.id}).one()
        seqs = conn.execute(text("SELECT sequence FROM reports WHERE device_id = :d ORDER BY sequence"),
                            {"d": device.id}).scalars().all()
        days = conn.execute(text("SELECT count(*) FROM device_days WHERE device_id = :d"),
                            {"d": device.id}).scalar_one()
    assert tuple(state) == (5, "ready")
    assert seqs == [1, 2, 3, 4, 5, 6]
    assert days == 4  # three holiday days and today: the trend sees the history
    with Unchanged(collector):  # only a clock running ahead is refused
        ahead = (now + dt.timedelta(hours=2)).isoformat()
        refused(post_raw(collector, "/v1/reports", wire.envelope_bytes(device.sign(7, generated_at=ahead))), 422,
                "clock_skew")


# ------------------------------------------------------------------ 7. headers and small leaks


def test_api_csv_and_document_carry_security_headers(collector):
    device = collector.enroll()
    post_raw(collector, "/v1/reports", wire.envelope_bytes(device.sign()))
    with logged_in(collector, user(collector, "hdr-admin")) as c:
        unit_id = c.get("/api/v1/units").json()[0]["id"]
        responses = [c.get("/api/v1/units"), c.get(f"/api/v1/units/{unit_id}/export.csv"), c.get("/openapi.json"),
                     c.get(f"/api/v1/devices/{device.id}/public-key"),
                     post_raw(collector, "/v1/reports", b"{}"), c.get("/healthz")]
        lang = c.get("/?lang=en")
    for r in responses:
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], r.url
    assert "secure" in [p.strip().lower() for p in lang.headers["set-cookie"].split(";")]
    assert lang.headers["set-cookie"].startswith("aa_lang=")


def test_docs_need_a_login_and_load_nothing_from_elsewhere(collector):
    with collector.client() as c:
        for path in ("/openapi.json", "/docs"):
            r = c.get(path, follow_redirects=False)
            assert r.status_code in (303, 401) and "paths" not in r.text
            assert r.status_code == 401 or r.headers["location"].startswith("/login")
    with logged_in(collector, user(collector, "docs-admin")) as c:
        # Step by step: httpx drops a hand-set Cookie header when it follows a redirect.
        docs = c.get("/docs", follow_redirects=False)
        assert docs.status_code == 303 and docs.headers["location"] == "/openapi.json"
        r = c.get(docs.headers["location"])
    assert r.status_code == 200 and r.json()["openapi"].startswith("3.")
    assert "cdn" not in r.text.lower()


def _answer(r):
    """What a caller sees of an answer: status, every header but Date, the body bytes."""
    return r.status_code, tuple(sorted((k, v) for k, v in r.headers.items() if k != "date")), r.content


def _policy_set(collector, tmp_path, unit):
    org = Ed25519PrivateKey.generate()
    signed, pub = tmp_path / "probe.signed.json", tmp_path / "probe-org.pub.pem"
    signed.write_text(json.dumps(wire.sign_policy(b"id: probe\nversion: 1.0.0\n", org)))
    pub.write_text(wire.public_key_pem(org.public_key()))
    collector.cli("unit", "add", unit)
    collector.cli("policy", "set", "--unit", unit, str(signed), "--public-key", str(pub))
    return org


def test_policy_endpoint_does_not_tell_devices_apart(collector, tmp_path):
    """Probe an id nobody enrolled, a revoked device and an enrolled one (with a policy,
    and without one) as a stranger: no header, a header signed with the stranger's key,
    and for the revoked device its own real key. Every probe of a kind gets the same
    bytes; only the enrolled device with its key gets the policy."""
    from collector_fixtures import EnrolledDevice

    org = _policy_set(collector, tmp_path, "Probe-Unit")
    known = collector.enroll(unit="Probe-Unit")
    revoked = collector.enroll(unit="Probe-Unit")
    lonely = collector.enroll(unit="Probe-Policyless-Unit")
    collector.cli("device", "revoke", revoked.id)
    stranger = Ed25519PrivateKey.generate()
    unknown = EnrolledDevice(id="00000000-0000-4000-8000-000000000000", key=stranger, unit="?",
                             keyid=wire.keyid(stranger.public_key()))
    targets = (known, revoked, lonely, unknown)
    with Unchanged(collector), collector.client() as c:
        def probe(device, headers):
            return _answer(c.get(f"/v1/devices/{device.id}/policy", headers=headers))

        bare = [probe(d, {}) for d in targets]
        forged = [probe(d, d.policy_headers(key=stranger)) for d in targets]
        forged.append(probe(revoked, revoked.policy_headers()))  # its real key, but revoked
        own = c.get(f"/v1/devices/{known.id}/policy", headers=known.policy_headers())
    assert len(set(bare)) == 1 and len(set(forged)) == 1, "the answers tell devices apart"
    assert bare[0][0] == forged[0][0] == 401
    assert json.loads(bare[0][2])["error"]["code"] == "signed_request_required"
    assert json.loads(forged[0][2])["error"]["code"] == "not_authenticated"
    assert ("www-authenticate", "AuditAgent-DSSE") in forged[0][1]
    assert own.status_code == 200 and wire.verify_policy(own.json(), org.public_key()).startswith(b"id: probe")


def test_a_captured_policy_request_opens_nothing_else(collector):
    """A header seen in transit: replayed for another device, or hours later, or
    mangled, is refused with a precise 4xx that says nothing about any device."""
    a, b = collector.enroll(), collector.enroll()
    old = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)).replace(microsecond=0).isoformat()
    with Unchanged(collector), collector.client() as c:
        refused(c.get(f"/v1/devices/{b.id}/policy", headers=a.policy_headers()), 401, "request_mismatch")
        err = refused(c.get(f"/v1/devices/{a.id}/policy", headers=a.policy_headers(issued_at=old)), 401, "clock_skew")
        assert "server_time" in err
        for junk in ("AuditAgent-DSSE !!!", "AuditAgent-DSSE " + "A" * 5000, "AuditAgent-DSSE e30"):
            refused(c.get(f"/v1/devices/{a.id}/policy", headers={"Authorization": junk}), 400,
                    "malformed_signed_request")
        refused(c.get(f"/v1/devices/{a.id}/policy", headers={"Authorization": "Bearer x"}), 401,
                "signed_request_required")


def test_database_outage_answers_json_503_with_retry_after(collector_db_url, tmp_path):
    from fastapi.testclient import TestClient

    from server.app import Settings, create_app

    if collector_db_url.startswith("sqlite"):
        dead = f"sqlite:///{tmp_path / 'no-such-dir' / 'db.sqlite'}"
    else:
        from sqlalchemy.engine import make_url

        dead = make_url(collector_db_url).set(port=1).render_as_string(hide_password=False)
    app = create_app(Settings(db_url=dead, pool_size=1, max_overflow=0))
    from collector_fixtures import EnrolledDevice

    key = Ed25519PrivateKey.generate()
    device = EnrolledDevice(id="some-device", key=key, unit="u", keyid=wire.keyid(key.public_key()))
    with TestClient(app, base_url="https://testserver", raise_server_exceptions=False) as c:
        r = c.post("/v1/enroll", content=enrol_body("aaenr_x", key), headers={"content-type": "application/json"})
        rep = c.post("/v1/reports", content=wire.envelope_bytes(device.sign()),
                     headers={"content-type": "application/json"})
    for resp in (r, rep):
        assert resp.status_code == 503, resp.text
        assert resp.json()["error"]["code"] == "database_unavailable"
        assert int(resp.headers["retry-after"]) > 0
