"""The wire format (auditagent/report.py): in-toto Statement v1 in a DSSE envelope,
Ed25519. Round trip, schema, tampering — and verification by an independent DSSE
implementation (securesystemslib), in both directions."""
from __future__ import annotations

import base64
import copy
import hashlib
import json
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from auditagent import report as wire


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def predicate(**overrides):
    p = wire.build_predicate(
        device={"id": "dev-1", "hostname": "laptop-17", "serial": "PF3ABC", "os": "Windows 11 Pro 23H2",
                "platform": "windows"},
        agent_version="0.1.0",
        policy={"id": "confidential-casework", "version": "1.2.0", "sha256": hashlib.sha256(b"p").hexdigest()},
        facts={"disk": {"status": "ok", "volumes": [{"mount": "C:", "encrypted": True}]}},
        results=[{"check_id": "disk-encrypted", "status": "pass", "severity": "required"}],
        verdict="ready", sequence=7, generated_at="2025-03-01T08:30:00Z")
    p.update(overrides)
    return p


def statement(key, **overrides):
    return wire.build_statement(device_id="dev-1", public_key=key.public_key(), predicate=predicate(**overrides))


def unsigned_checks_skipped(statement_dict, key):
    """Sign without the schema check, to hand the verifier a statement that breaks it."""
    return wire._sign(wire.PAYLOAD_TYPE, wire.canonical_json(statement_dict), key)


def sslib_key(public_key, keyid=None):
    from securesystemslib.signer import SSlibKey

    return SSlibKey.from_crypto(public_key, keyid=keyid or wire.keyid(public_key))


# ------------------------------------------------------------------ format


def test_round_trip_and_shape(key):
    st_ = statement(key)
    env = wire.sign_envelope(st_, key)
    assert set(env) == {"payloadType", "payload", "signatures"}
    assert env["payloadType"] == "application/vnd.in-toto+json"
    assert env["signatures"][0]["keyid"] == hashlib.sha256(wire.raw_public_bytes(key.public_key())).hexdigest()
    payload = base64.b64decode(env["payload"])
    assert payload == json.dumps(st_, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    got = wire.verify_envelope(env, key.public_key())
    assert got == st_
    assert got["_type"] == "https://in-toto.io/Statement/v1"
    assert got["predicateType"] == "https://auditagent.dev/readiness-report/v1"
    assert got["subject"] == [{"name": "device:dev-1", "digest": {"sha256": wire.keyid(key.public_key())}}]
    assert uuid.UUID(got["predicate"]["report_id"]).version == 4
    assert wire.report_id_of(got) == got["predicate"]["report_id"]


def test_pae_matches_dsse_spec():
    assert wire.pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert wire.pae("", b"") == b"DSSEv1 0  0 "


def test_pem_round_trip_and_wrong_key_type(key):
    pem = wire.public_key_pem(key.public_key())
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert wire.keyid(wire.load_public_key_pem(pem)) == wire.keyid(key.public_key())
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives import serialization

    ec_pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(wire.ReportError) as e:
        wire.load_public_key_pem(ec_pem)
    assert e.value.code == "bad_public_key"
    with pytest.raises(wire.ReportError):
        wire.load_public_key_pem(b"not pem")


def test_unicode_facts_survive(key):
    st_ = statement(key, facts={"cloud": {"clients": [{"name": "OneDrive", "account": "åsa.öberg@kommun.se"}]}})
    env = wire.sign_envelope(st_, key)
    assert wire.verify_envelope(env, key.public_key())["predicate"]["facts"] == st_["predicate"]["facts"]


# Text the wire carries: NUL is refused by the strict reader (tests/test_attacks_collector.py).
_WIRE_TEXT = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))


@settings(max_examples=40, deadline=None)
@given(facts=st.dictionaries(st.text(_WIRE_TEXT, min_size=1, max_size=8),
                             st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40)
                                          | st.text(_WIRE_TEXT, max_size=12),
                                          lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(_WIRE_TEXT, max_size=5), c,
                                                                                               max_size=3),
                                          max_leaves=8), max_size=4),
       seq=st.integers(1, 2**40))
def test_round_trip_property(facts, seq):
    key = Ed25519PrivateKey.generate()
    st_ = statement(key, facts=facts, sequence=seq)
    env = wire.sign_envelope(st_, key)
    again = wire.verify_envelope(json.loads(wire.envelope_bytes(env)), key.public_key())
    assert again == st_


# ------------------------------------------------------------------ independent DSSE implementation


def test_securesystemslib_verifies_our_envelope(key):
    from securesystemslib.dsse import Envelope

    env = wire.sign_envelope(statement(key), key)
    theirs = Envelope.from_dict(copy.deepcopy(env))
    verified = theirs.verify([sslib_key(key.public_key())], 1)
    assert list(verified) == [wire.keyid(key.public_key())]
    assert theirs.payload_type == wire.PAYLOAD_TYPE
    assert json.loads(theirs.payload) == statement_payload(env)


def statement_payload(env):
    return json.loads(base64.b64decode(env["payload"]))


def test_securesystemslib_rejects_tampered_envelope(key):
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError

    env = wire.sign_envelope(statement(key), key)
    payload = bytearray(base64.b64decode(env["payload"]))
    payload[payload.index(b"laptop-17")] ^= 0x01
    env["payload"] = base64.b64encode(bytes(payload)).decode()
    with pytest.raises(VerificationError):
        Envelope.from_dict(copy.deepcopy(env)).verify([sslib_key(key.public_key())], 1)


def test_we_verify_an_envelope_signed_by_securesystemslib(key):
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import CryptoSigner

    st_ = statement(key)
    signer = CryptoSigner(key, sslib_key(key.public_key()))
    theirs = Envelope(payload=wire.canonical_json(st_), payload_type=wire.PAYLOAD_TYPE, signatures={})
    theirs.sign(signer)
    assert wire.verify_envelope(theirs.to_dict(), key.public_key()) == st_


def test_signed_policy_verifies_with_securesystemslib(key):
    from securesystemslib.dsse import Envelope

    yaml_bytes = "id: baseline\nversion: 1.0.0\ntitle: {sv: Bas, da: Basis, en: Baseline}\n".encode()
    env = wire.sign_policy(yaml_bytes, key)
    assert env["payloadType"] == "application/vnd.auditagent.policy+yaml"
    Envelope.from_dict(copy.deepcopy(env)).verify([sslib_key(key.public_key())], 1)
    assert wire.verify_policy(env, key.public_key()) == yaml_bytes


# ------------------------------------------------------------------ tampering and wrong keys


def _flip_b64(text: str, index: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_flipped_payload_byte_is_bad_signature(key):
    env = wire.sign_envelope(statement(key), key)
    payload = bytearray(base64.b64decode(env["payload"]))
    payload[payload.index(b"laptop-17")] ^= 0x01  # still valid JSON: only the signature notices
    env["payload"] = base64.b64encode(bytes(payload)).decode()
    with pytest.raises(wire.ReportError) as e:
        wire.verify_envelope(env, key.public_key())
    assert e.value.code == "bad_signature"


def test_flipped_signature_byte_is_bad_signature(key):
    env = wire.sign_envelope(statement(key), key)
    env["signatures"][0]["sig"] = _flip_b64(env["signatures"][0]["sig"], 10)
    with pytest.raises(wire.ReportError) as e:
        wire.verify_envelope(env, key.public_key())
    assert e.value.code == "bad_signature"


def test_flipped_keyid_is_unknown_keyid(key):
    env = wire.sign_envelope(statement(key), key)
    kid = env["signatures"][0]["keyid"]
    env["signatures"][0]["keyid"] = ("0" if kid[0] != "0" else "1") + kid[1:]
    with pytest.raises(wire.ReportError) as e:
        wire.verify_envelope(env, key.public_key())
    assert e.value.code == "unknown_keyid"


def test_other_key_is_refused(key):
    other = Ed25519PrivateKey.generate()
    env = wire.sign_envelope(statement(key), key)
    with pytest.raises(wire.ReportError) as e:
        wire.verify_envelope(env, other.public_key())
    assert e.value.code == "unknown_keyid"
    # A forger who copies the victim's keyid still fails the signature.
    forged = wire.sign_envelope(statement(key), other)
    forged["signatures"][0]["keyid"] = wire.keyid(key.public_key())
    with pytest.raises(wire.ReportError) as e:
        wire.verify_envelope(forged, key.public_key())
    assert e.value.code == "bad_signature"


def test_payload_type_is_checked_and_signed(key):
    env = wire.sign_envelope(statement(key), key)
    env["payloadType"] = "application/json"
    with pytest.raises(wire.ReportError) as e:
        wire.verify_envelope(env, key.public_key())
    assert e.value.code == "bad_payload_type"
    # A signed policy is not a report, and a report is not a policy.
    with pytest.raises(wire.ReportError) as e:
        wire.verify_envelope(wire.sign_policy(b"id: x\n", key), key.public_key())
    assert e.value.code == "bad_payload_type"
    with pytest.raises(wire.ReportError) as e:
        wire.verify_policy(wire.sign_envelope(statement(key), key), key.public_key())
    assert e.value.code == "bad_payload_type"


def test_policy_with_wrong_key_or_tampered(key):
    env = wire.sign_policy(b"id: baseline\n", key)
    with pytest.raises(wire.ReportError) as e:
        wire.verify_policy(env, Ed25519PrivateKey.generate().public_key())
    assert e.value.code == "unknown_keyid"
    env["payload"] = base64.b64encode(b"id: baseline2\n").decode()
    with pytest.raises(wire.ReportError) as e:
        wire.verify_policy(env, key.public_key())
    assert e.value.code == "bad_signature"


def test_subject_digest_must_be_the_signing_key(key):
    st_ = statement(key)
    st_["subject"][0]["digest"]["sha256"] = "0" * 64
    env = unsigned_checks_skipped(st_, key)
    with pytest.raises(wire.ReportError) as e:
        wire.verify_envelope(env, key.public_key())
    assert e.value.code == "schema_violation" and "subject[0].digest" in e.value.message


@pytest.mark.parametrize("raw, code", [
    (b"{not json", "malformed_json"),
    (b"\xff\xfe", "malformed_json"),
    (b"[]", "malformed_envelope"),
    (b"42", "malformed_envelope"),
])
def test_parse_envelope_errors(raw, code):
    with pytest.raises(wire.ReportError) as e:
        wire.parse_envelope(raw)
    assert e.value.code == code


@pytest.mark.parametrize("mutate, where", [
    (lambda e: e.pop("payload"), "envelope.payload"),
    (lambda e: e.pop("signatures"), "envelope.signatures"),
    (lambda e: e.update(signatures=[]), "envelope.signatures"),
    (lambda e: e.update(signatures="x"), "envelope.signatures"),
    (lambda e: e.update(payload="!!!not base64!!!"), "envelope.payload"),
    (lambda e: e.update(payload=base64.b64encode(b"not json").decode()), "envelope.payload"),
    (lambda e: e["signatures"][0].update(sig=5), "signatures[0].sig"),
    (lambda e: e.update(payloadType=5), "payloadType"),
])
def test_malformed_envelopes(key, mutate, where):
    env = wire.sign_envelope(statement(key), key)
    mutate(env)
    with pytest.raises(wire.ReportError) as e:
        wire.verify_envelope(env, key.public_key())
    assert e.value.code == "malformed_envelope"
    assert where in e.value.message


# ------------------------------------------------------------------ schema


@pytest.mark.parametrize("overrides, where", [
    ({"sequence": 0}, "predicate.sequence"),
    ({"sequence": -3}, "predicate.sequence"),
    ({"sequence": "7"}, "predicate.sequence"),
    ({"sequence": True}, "predicate.sequence"),
    ({"sequence": 1.5}, "predicate.sequence"),
    ({"verdict": "maybe"}, "predicate.verdict"),
    ({"generated_at": "2025-03-01T08:30:00"}, "predicate.generated_at"),  # no time zone
    ({"generated_at": "yesterday"}, "predicate.generated_at"),
    ({"report_id": "not-a-uuid"}, "predicate.report_id"),
    ({"results": {"a": 1}}, "predicate.results"),
    ({"results": [{"check_id": "x", "status": "ok"}]}, "predicate.results[0].status"),
    ({"results": [{"status": "pass"}]}, "predicate.results[0].check_id"),
    ({"facts": []}, "predicate.facts"),
    ({"policy": {"id": "p", "version": "1", "sha256": "xyz"}}, "predicate.policy.sha256"),
    ({"policy": {"id": "p", "sha256": "ab" * 32}}, "predicate.policy.version"),
    ({"agent_version": 3}, "predicate.agent_version"),
    ({"device": {"id": "someone-else", "hostname": "h"}}, "predicate.device.id"),
    ({"device": {"id": "dev-1"}}, "predicate.device.hostname"),
    ({"spool": [1]}, "predicate.spool"),
    ({"shoe_size": 44}, "predicate.shoe_size"),
])
def test_schema_violations_name_the_field(key, overrides, where):
    st_ = statement(key, **overrides)
    with pytest.raises(wire.ReportError) as e:
        wire.sign_envelope(st_, key)  # the agent cannot even sign it
    assert e.value.code == "schema_violation"
    assert e.value.message.startswith(where + ":"), e.value.message
    with pytest.raises(wire.ReportError) as e:  # nor can the collector accept it
        wire.verify_envelope(unsigned_checks_skipped(st_, key), key.public_key())
    assert e.value.code == "schema_violation"


def test_missing_predicate_field_and_bad_statement_type(key):
    st_ = statement(key)
    del st_["predicate"]["verdict"]
    with pytest.raises(wire.ReportError, match="predicate.verdict: missing"):
        wire.validate_statement(st_)
    st_ = statement(key)
    st_["predicateType"] = "https://slsa.dev/provenance/v1"
    with pytest.raises(wire.ReportError, match="predicateType"):
        wire.validate_statement(st_)
    st_ = statement(key)
    st_["subject"].append({"name": "device:x", "digest": {"sha256": "0" * 64}})
    with pytest.raises(wire.ReportError, match="subject"):
        wire.validate_statement(st_)


def test_optional_spool_and_integrity(key):
    st_ = statement(key, spool={"evicted": 2, "evicted_sequences": [3, 4]},
                    integrity={"policy": "signature_invalid"})
    env = wire.sign_envelope(st_, key)
    assert wire.verify_envelope(env, key.public_key())["predicate"]["spool"]["evicted"] == 2
    p = wire.build_predicate(device={"id": "d", "hostname": "h"}, agent_version="1", policy={"id": "p", "version": "1",
                             "sha256": "0" * 64}, facts={}, results=[], verdict="not_ready", sequence=1)
    assert "spool" not in p and "integrity" not in p
    assert wire.parse_time(p["generated_at"]) is not None


# ------------------------------------------------------------------ what the agent builds, the wire takes


def _nested(depth: int):
    value: object = {"leaf": "x"}
    for _ in range(depth):
        value = {"n": value}
    return value


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
                    max_leaves=30))
def test_wire_safe_values_are_accepted_and_accepted_values_unchanged(value):
    """One definition of wire-refused text: whatever wire_safe returns, strict_loads takes;
    what strict_loads already took, wire_safe leaves as it is."""
    safe = wire.wire_safe(value)
    text = json.dumps(safe, ensure_ascii=False)
    assert wire.strict_loads(text.encode("utf-8", "surrogatepass")) == safe
    try:
        wire.strict_loads(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    except wire.ReportError:
        return
    assert safe == value or value != value  # NaN never equals itself


@pytest.mark.parametrize("depth", [30, 31, 32, 33, 40])
def test_wire_safe_cuts_only_what_is_too_deep(depth):
    value = _nested(depth)
    safe = wire.wire_safe(value)
    wire.strict_loads(json.dumps(safe))
    accepted = depth + 1 <= wire.MAX_JSON_DEPTH  # the leaf string sits one below the innermost object
    assert (safe == value) == accepted
    assert accepted or wire.DROPPED_TOO_DEEP in json.dumps(safe)


def test_a_statement_with_refused_text_is_built_signed_and_verified():
    key = Ed25519PrivateKey.generate()
    pred = wire.build_predicate(device={"id": "dev-nul", "hostname": "pc\x00", "serial": None, "os": "Win\ud800"},
                                agent_version="0.1.0", policy={"id": "p", "version": "1", "sha256": "ab" * 32},
                                facts={"os": {"edition": "Enterprise\x00", "ratio": float("nan")}},
                                results=[{"check_id": "c\x00", "status": "pass"}], verdict="ready", sequence=1)
    statement = wire.build_statement(device_id="dev-nul", public_key=key.public_key(), predicate=pred)
    envelope = wire.parse_envelope(wire.envelope_bytes(wire.sign_envelope(statement, key)))
    p = wire.verify_envelope(envelope, key.public_key())["predicate"]
    assert p["device"]["hostname"] == "pc<U+0000>" and p["device"]["os"] == "Win<U+D800>"
    assert p["facts"]["os"] == {"edition": "Enterprise<U+0000>", "ratio": None}
    assert p["results"][0]["check_id"] == "c<U+0000>"


def test_report_ids_are_version_4_uuids_as_uuid4_writes_them():
    ids = [wire.new_report_id() for _ in range(500)]
    assert len(set(ids)) == len(ids)
    for rid in ids:
        parsed = uuid.UUID(rid)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == rid  # lower-case, hyphenated: what the collector's check wants
    assert uuid.UUID(predicate()["report_id"]).version == 4  # what a built report carries


def _uuid_accepts(rid: str) -> bool:
    try:
        return str(uuid.UUID(rid)) == rid.lower()
    except ValueError:
        return False


@pytest.mark.parametrize("rid", [
    "3f2c8a1e-5b7d-4c9e-8a21-0d6f4b3e9c12", "3F2C8A1E-5B7D-4C9E-8A21-0D6F4B3E9C12", "{3f2c8a1e-5b7d-4c9e-8a21-0d6f4b3e9c12}",
    "urn:uuid:3f2c8a1e-5b7d-4c9e-8a21-0d6f4b3e9c12", "3f2c8a1e5b7d4c9e8a210d6f4b3e9c12",
    "3f2c8a1e-5b7d-4c9e-8a21-0d6f4b3e9c1", "3f2c8a1e-5b7d-4c9e-8a21-0d6f4b3e9c12\n", "3f2c8a1e-5b7d-4c9e-8a21-0d6f4b3e9c1g",
    " 3f2c8a1e-5b7d-4c9e-8a21-0d6f4b3e9c12", "3f2c8a1e-5b7d4-c9e-8a21-0d6f4b3e9c12", "",
])
def test_report_id_check_accepts_exactly_what_uuid_accepts(key, rid):
    """The schema's report_id rule (a pattern: the agent does not import uuid) agrees with
    the rule it replaced, ``str(uuid.UUID(rid)) == rid.lower()``."""
    try:
        wire.validate_statement(statement(key, report_id=rid))
        accepted = True
    except wire.ReportError as exc:
        assert exc.message.startswith("predicate.report_id:"), exc.message
        accepted = False
    assert accepted == _uuid_accepts(rid)
