"""Which policy judges a report, decided without a collector: a fake client answers
200/304/404/unreachable; the cache holds only verified envelopes."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditagent.config import parse_config
from auditagent.enrollment import Enrollment
from auditagent.log import configure, get_logger
from auditagent.paths import AgentPaths
from auditagent.policy import PolicyError
from auditagent.policy_cache import PolicySignatureError, load_cached, organisation_policy, refresh
from auditagent.report import public_key_pem, sign_policy
from auditagent.send import ConnectionProblem, Response

from conftest import REPO

POLICY = REPO / "tests" / "fixtures" / "hosts" / "linux-e2e" / "policy.yaml"


class FakeClient:
    def __init__(self, *answers):
        self.answers = list(answers)
        self.etags: list[str | None] = []

    def get_policy(self, device_id, etag, device_key):
        assert device_key is DEVICE_KEY  # the request is signed with the device's own key
        self.etags.append(etag)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def ok(envelope, etag='"e1"'):
    return Response(200, {"etag": etag}, json.dumps(envelope).encode())


@dataclass
class Setup:
    paths: AgentPaths
    config: object
    key: Ed25519PrivateKey
    envelope: dict

    def refresh(self, client):
        return refresh(paths=self.paths, config=self.config, enrollment=ENROLLMENT, client=client,
                       log=get_logger(), now="2026-01-01T00:00:00Z", device_key=DEVICE_KEY)


DEVICE_KEY = Ed25519PrivateKey.generate()
ENROLLMENT = Enrollment(device_id="dev-1", server="https://c.example", keyid="k", enrolled_at="x")


@pytest.fixture
def setup(tmp_path):
    configure(level="error")
    key = Ed25519PrivateKey.generate()
    pub = tmp_path / "org.pub.pem"
    pub.write_text(public_key_pem(key.public_key()))
    config = parse_config(f"policy_public_key: {pub}\n", str(tmp_path / "agent.yaml"))
    paths = AgentPaths(config=tmp_path / "agent.yaml", state=tmp_path / "state")
    return Setup(paths, config, key, sign_policy(POLICY.read_bytes(), key))


def test_fetch_verify_cache_then_304(setup):
    out = setup.refresh(FakeClient(ok(setup.envelope)))
    assert out.source == "collector" and out.policy.id == "e2e-os" and out.integrity is None
    client = FakeClient(Response(304, {}, b""))
    out = setup.refresh(client)
    assert client.etags == ['"e1"'] and out.source == "cache" and out.policy.id == "e2e-os"


def test_unreachable_collector_uses_cache_or_shipped(setup):
    out = setup.refresh(FakeClient(ConnectionProblem("down")))
    assert out.source == "shipped" and out.policy is None and out.integrity is None
    setup.refresh(FakeClient(ok(setup.envelope)))
    out = setup.refresh(FakeClient(ConnectionProblem("down")))
    assert out.source == "cache" and out.policy.id == "e2e-os"


def test_no_policy_for_the_unit_clears_the_cache(setup):
    setup.refresh(FakeClient(ok(setup.envelope)))
    out = setup.refresh(FakeClient(Response(404, {}, b'{"error": {"code": "no_policy", "message": "none"}}')))
    assert out.source == "shipped" and not (setup.paths.state / "policy" / "current.signed.json").exists()


def test_a_refused_signed_request_keeps_the_verified_cache(setup):
    """401 (revoked, re-keyed elsewhere, clock far off): the last verified policy judges,
    the cache stays, and the collector's words are in the note."""
    setup.refresh(FakeClient(ok(setup.envelope)))
    body = b'{"error": {"code": "not_authenticated", "message": "enrol it again"}}'
    out = setup.refresh(FakeClient(Response(401, {}, body)))
    assert out.source == "cache" and out.policy.id == "e2e-os" and out.integrity is None
    assert "not_authenticated: enrol it again" in out.notes[0]
    assert (setup.paths.state / "policy" / "current.signed.json").exists()


def test_signed_by_another_key_is_refused_and_not_cached(setup):
    setup.refresh(FakeClient(ok(setup.envelope)))
    evil = sign_policy(POLICY.read_bytes().replace(b'"1.0"', b'"6.6"'), Ed25519PrivateKey.generate())
    out = setup.refresh(FakeClient(ok(evil, '"e2"')))
    assert out.source == "cache" and out.policy.version == "1.0"
    assert out.integrity["policy_signature"] == "invalid" and out.integrity["code"] == "unknown_keyid"
    assert load_cached(setup.paths, setup.config.policy_key()).version == "1.0"


def test_validly_signed_but_invalid_policy_is_reported_not_used(setup):
    broken = sign_policy(b"id: x\nversion: 1\n", setup.key)
    out = setup.refresh(FakeClient(ok(broken)))
    assert out.source == "shipped" and out.integrity["policy"] == "unusable"
    assert "is required" in out.integrity["detail"]


def test_check_reads_only_the_cache_and_verifies_it(setup, tmp_path):
    class Args:
        config = None

    (setup.paths.config).write_text(f"policy_public_key: {tmp_path / 'org.pub.pem'}\n")
    assert organisation_policy(Args(), setup.paths) is None  # nothing cached yet: the shipped policy
    setup.refresh(FakeClient(ok(setup.envelope)))
    assert organisation_policy(Args(), setup.paths).id == "e2e-os"
    cache = setup.paths.state / "policy" / "current.signed.json"
    env = json.loads(cache.read_text())
    env["signatures"][0]["sig"] = env["signatures"][0]["sig"][::-1]
    cache.write_text(json.dumps(env))
    with pytest.raises(PolicySignatureError) as exc:
        organisation_policy(Args(), setup.paths)
    assert isinstance(exc.value, PolicyError) and str(cache) in str(exc.value.problems[0])


def test_without_a_policy_key_the_collectors_policy_is_not_trusted(tmp_path):
    configure(level="error")
    config = parse_config("server: https://c.example\n", str(tmp_path / "agent.yaml"))
    out = refresh(paths=AgentPaths(tmp_path / "agent.yaml", tmp_path / "state"), config=config,
                  enrollment=ENROLLMENT, client=FakeClient(), log=get_logger(), now="x")
    assert out.source == "shipped" and "policy_public_key" in out.notes[0]


# ------------------------------------------------------------------ the sealed parse (auditagent.policy_parsed)

PARSED = "current.parsed.json"


def parses(monkeypatch):
    """Counts real parses of the signed policy YAML."""
    from auditagent import policy_cache

    count = []
    real = policy_cache._parse_verified

    def counting(*a, **kw):
        count.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(policy_cache, "_parse_verified", counting)
    return count


def test_the_hourly_run_reuses_the_parse_of_the_verified_policy(setup, monkeypatch):
    # The run that fetches a new policy keeps its parse too, so even the first hour after a
    # change (a 304) verifies it and does not parse it again.
    setup.refresh(FakeClient(ok(setup.envelope)))
    entry = setup.paths.state / "policy" / PARSED
    assert entry.is_file() and entry.stat().st_mode & 0o777 == 0o600
    count = parses(monkeypatch)
    first = setup.refresh(FakeClient(Response(304, {}, b"")))
    again = setup.refresh(FakeClient(Response(304, {}, b"")))
    assert count == []  # verified again, not parsed again
    assert first.policy == load_cached(setup.paths, setup.config.policy_key())  # what a parse gives
    assert count == [1]  # (that load_cached without the seal did parse)
    assert again.policy == first.policy and again.policy.digest == first.policy.digest
    assert again.source == "cache" and again.integrity is None


def test_an_edited_parse_is_never_trusted(setup, monkeypatch):
    """The attack: loosen the kept parse (drop every check) and leave its MAC, or re-MAC it
    with a key that is not this device's. Either way the signed policy is parsed again."""
    import hashlib
    import hmac

    setup.refresh(FakeClient(ok(setup.envelope)))
    setup.refresh(FakeClient(Response(304, {}, b"")))
    real = load_cached(setup.paths, setup.config.policy_key())
    entry = setup.paths.state / "policy" / PARSED
    kept = json.loads(entry.read_text())
    body = json.loads(kept["body"])
    body["policy"]["checks"] = []
    from auditagent.policy_parsed import _from_doc

    body["digest"] = _from_doc(body["policy"]).digest  # consistent with itself: only the MAC can tell
    loosened = json.dumps(body, sort_keys=True)
    for mac in (kept["mac"], hmac.new(b"\0" * 32, loosened.encode(), hashlib.sha256).hexdigest()):
        entry.write_text(json.dumps({"mac": mac, "body": loosened}))
        count = parses(monkeypatch)
        out = setup.refresh(FakeClient(Response(304, {}, b"")))
        assert count == [1] and out.policy == real and len(out.policy.checks) == len(real.checks) > 0


def test_a_parse_kept_for_another_payload_is_not_used(setup, monkeypatch):
    """A correctly sealed parse of policy A is not the parse of policy B, even under B's name."""
    setup.refresh(FakeClient(ok(setup.envelope)))
    setup.refresh(FakeClient(Response(304, {}, b"")))
    entry = setup.paths.state / "policy" / PARSED
    old_entry = entry.read_bytes()
    newer = sign_policy(POLICY.read_bytes().replace(b'"1.0"', b'"2.0"'), setup.key)
    setup.refresh(FakeClient(ok(newer, '"e2"')))
    entry.write_bytes(old_entry)  # the sealed parse of version 1.0 put back
    count = parses(monkeypatch)
    out = setup.refresh(FakeClient(Response(304, {}, b"")))
    assert count == [1] and out.policy.version == "2.0"


def test_the_signature_is_checked_even_with_a_kept_parse(setup):
    setup.refresh(FakeClient(ok(setup.envelope)))
    setup.refresh(FakeClient(Response(304, {}, b"")))
    cache = setup.paths.state / "policy" / "current.signed.json"
    env = json.loads(cache.read_text())
    env["signatures"][0]["sig"] = env["signatures"][0]["sig"][::-1]
    cache.write_text(json.dumps(env))
    with pytest.raises(PolicySignatureError):
        load_cached(setup.paths, setup.config.policy_key(), seal=b"k" * 32)
    out = setup.refresh(FakeClient(ConnectionProblem("down")))
    assert out.policy is None and out.integrity["policy_signature"] == "invalid"
    assert not (setup.paths.state / "policy" / PARSED).exists()  # dropped with the cache
