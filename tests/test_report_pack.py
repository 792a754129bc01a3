"""A report's signed bytes stored compactly (server/report_pack.py): whatever the payload,
unpack(pack(payload)) gives the very bytes back; for what the agent signs, the segments
are the predicate's facts and results exactly (so identical facts are stored once)."""
from __future__ import annotations

import hashlib
import json


import pytest
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


def _roundtrip(payload: bytes, refs: tuple[str, ...] = ("dev-1", "")) -> report_pack.Packed:
    """Both layouts rebuild ``payload`` exactly; layout 2 (with ``refs``) is returned."""
    v1 = report_pack.pack(payload)
    assert v1.body[0] == 1 and report_pack.unpack(v1.body, v1.segments) == payload
    packed = report_pack.pack(payload, refs=refs)
    assert packed.body[0] == 2 and report_pack.unpack(packed.body, packed.segments, refs) == payload
    for p in (v1, packed):
        assert set(report_pack.segment_ids(p.body)) == set(p.segments)
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
@given(st.binary(max_size=200) | _JSON.map(lambda v: json.dumps({"facts": v, "results": v}).encode()),
       st.tuples(st.text(max_size=4), st.text(max_size=4)))
def test_any_bytes_rebuild_exactly(payload, refs):
    """Whatever the refs (empty, overlapping, holding a placeholder byte) and the bytes."""
    _roundtrip(payload, refs)


def test_layout_2_leaves_the_ids_to_the_row_and_keeps_one_entry_per_segment():
    statement = _statement({"collected_at": "2026-12-01T10:00:00+00:00", "disk": {"encrypted": True}},
                           [{"check_id": "c", "status": "pass"}], "Linux")
    statement["predicate"]["report_id"] = rid = "8c1093c8-46da-4862-bea7-f6d70554f1e1"
    payload = wire.canonical_json(statement)
    v1, v2 = report_pack.pack(payload), _roundtrip(payload, (rid, "dev-1"))
    assert len(report_pack.segment_ids(v1.body)) == 3 and len(report_pack.segment_ids(v2.body)) == 2
    assert len(v2.body) < len(v1.body) - 40
    # The facts segment is the same bytes whatever the stamp; the stamp stays in the body.
    later = json.loads(payload)
    later["predicate"]["facts"]["collected_at"] = "2026-12-01T11:00:00+00:00"
    assert set(report_pack.pack(wire.canonical_json(later), (rid, "dev-1")).segments) == set(v2.segments)
    with pytest.raises(ValueError, match="ref 0"):
        report_pack.unpack(v2.body, v2.segments)


def test_a_truncated_value_stays_in_the_body():
    payload = b'{"predicate":{"facts":{"a":[1,2'
    packed = _roundtrip(payload)
    assert packed.segments == {}


def test_identical_facts_give_the_same_segment():
    a = wire.canonical_json(_statement({"disk": {"encrypted": True}}, [], "Linux"))
    b = wire.canonical_json(_statement({"disk": {"encrypted": True}}, [], "Windows"))
    facts = hashlib.sha256(b'{"disk":{"encrypted":true}}').digest()
    assert facts in report_pack.pack(a).segments and facts in report_pack.pack(b).segments


def _scanned_cuts(payload: bytes):
    """The cuts as found before the agent's layout was used: every end by the decoder's scanner."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report_pack, "_segment_end", lambda payload, text, key, start: report_pack._value_end(text, start))
        return report_pack._cuts(payload)


# What could make the next member's text appear before the segment's end, or hide its end.
_MISLEADING = st.sampled_from([',"generated_at":', ',"sequence":', '"}', '"]', "\\", '\\"', "{", "]", "ö"])
_FACTS_KEYS = st.sampled_from(["generated_at", "sequence", "facts", "results", "collected_at", "x"])


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_FACTS_KEYS | st.text(max_size=4), _JSON | _MISLEADING, max_size=4),
       st.lists(st.dictionaries(_FACTS_KEYS, _JSON | _MISLEADING, max_size=3), max_size=3),
       st.sampled_from([None, (", ", ": "), (",", ":"), (" ,", " : ")]), st.booleans())
def test_the_ends_found_from_the_layout_are_the_scanners(facts, extra, separators, ascii_only):
    """For valid JSON (agent payloads, and the same with spaces, other key orders or
    segment-like members nested in them) the cuts equal the scanner's, and rebuild exactly."""
    results = [{"check_id": "c", "status": "pass", **e} for e in extra]
    statement = _statement(facts, results, "Linux")
    if separators is None:
        payload = wire.canonical_json(statement)
    else:
        payload = json.dumps(statement, separators=separators, ensure_ascii=ascii_only,
                             sort_keys=separators[0] == ",").encode("utf-8")
    assert report_pack._cuts(payload) == _scanned_cuts(payload)
    _roundtrip(payload)


def test_real_agent_payloads_cut_as_before():
    from replayed_reports import replayed_payloads

    for payload in replayed_payloads():
        cuts = report_pack._cuts(payload)
        assert len(cuts) == 2 and cuts == _scanned_cuts(payload)
