"""A report's signed bytes stored compactly (server/report_pack.py): whatever the payload,
unpack(pack(payload)) gives the very bytes back; for what the agent signs, the segments
are the predicate's facts and results exactly (so identical facts are stored once)."""
from __future__ import annotations

import hashlib
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from auditagent import report as wire
from server import report_pack


def _statement(facts, results, os_name):
    key = Ed25519PrivateKey.generate()
    predicate = wire.build_predicate(
        device={"id": "dev-1", "hostname": "pc", "os": os_name}, agent_version="0.1.0",
        policy={"id": "p", "version": "1", "sha256": "ab" * 32}, facts=facts, results=results, verdict="ready",
        sequence=1)
    return wire.build_statement(device_id="dev-1", public_key=key.public_key(), predicate=predicate)


def _roundtrip(payload: bytes) -> report_pack.Packed:
    packed = report_pack.pack(payload)
    assert report_pack.unpack(packed.body, packed.segments) == payload
    assert set(report_pack.segment_ids(packed.body)) == set(packed.segments)
    return packed


_KEYS = st.sampled_from(["facts", "results", 'x"facts', "results\\", "a", "ö", "[", "}"])
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                     | st.text(max_size=8) | _KEYS,
                     lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_KEYS, kids, max_size=3),
                     max_leaves=15)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=6) | _KEYS, _JSON, max_size=4), st.lists(_JSON, max_size=3), _JSON)
def test_agent_payloads_cut_at_facts_and_results_and_rebuild_exactly(facts, results, os_name):
    """Keys named like the segments inside facts or the device's os must not move the cut."""
    results = [{"check_id": "c", "status": "pass", "detail": r} for r in results]
    statement = _statement(facts, results, os_name if isinstance(os_name, (str, dict)) else None)
    payload = wire.canonical_json(statement)
    packed = _roundtrip(payload)
    wanted = {wire.canonical_json(statement["predicate"][k]) for k in ("facts", "results")}
    if '"facts":' not in json.dumps(statement["predicate"]["device"], ensure_ascii=False):
        assert set(packed.segments.values()) == wanted


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | _JSON.map(lambda v: json.dumps({"facts": v, "results": v}).encode()))
def test_any_bytes_rebuild_exactly(payload):
    _roundtrip(payload)


def test_a_truncated_value_stays_in_the_body():
    payload = b'{"predicate":{"facts":{"a":[1,2'
    packed = _roundtrip(payload)
    assert packed.segments == {}


def test_identical_facts_give_the_same_segment():
    a = wire.canonical_json(_statement({"disk": {"encrypted": True}}, [], "Linux"))
    b = wire.canonical_json(_statement({"disk": {"encrypted": True}}, [], "Windows"))
    facts = hashlib.sha256(b'{"disk":{"encrypted":true}}').digest()
    assert facts in report_pack.pack(a).segments and facts in report_pack.pack(b).segments
