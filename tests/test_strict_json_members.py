"""The strict wire parser's duplicate-key rule without a hook on every object
(auditagent/report.py ``_decode_scanned``: the decoded objects' members counted against
the member colons outside strings): the same outcome as the reference decoding, which
hooks every object's pairs (``_decode_walked``), for duplicates anywhere, colons, quotes
and backslashes in keys and strings, and for real reports (the Windows and macOS
replays, as the agent builds them) mutated: a member repeated in any object, structure
characters put into strings, single bytes changed."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditagent import report as wire
from replayed_reports import replayed_payloads
from test_strict_json_scan import assert_same

# Keys from a small set, so that objects often hold one twice; each may mislead a text scan.
_KEYS = st.sampled_from(["a", "b", ":", '"', "\\", '\\":', 'a":"b', "{", "]", "a:b", ""])
_STRINGS = st.lists(st.sampled_from([":", '"', "\\", '\\"', "{", "}", "[", "]", ",", "å", "a", "\\\\:"]),
                    max_size=5).map("".join)
_LEAVES = st.one_of(st.sampled_from(["null", "true", "false"]), st.integers().map(str), _STRINGS.map(json.dumps),
                    st.sampled_from(["1.5", "-0.0", "1e308", "{}", "[]"]))


def _object(members: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in members) + "}"


# JSON text built as text, so duplicate keys can stand in any object at any depth.
_TEXT = st.recursive(_LEAVES, lambda kids: st.lists(st.tuples(_KEYS, kids), max_size=4).map(_object)
                     | st.lists(kids, max_size=3).map(lambda xs: "[" + ",".join(xs) + "]"), max_leaves=16)


@settings(max_examples=250, deadline=None)
@given(_TEXT, st.booleans(), st.sampled_from(["", " ", "\n  "]))
def test_duplicates_anywhere_agree_with_the_reference(text, as_text, space):
    text = text.replace(":", ":" + space) if space else text  # whitespace around colons, in strings too
    assert_same(text if as_text else text.encode("utf-8"))


@pytest.mark.parametrize("doc", [
    '{"a":1,"a":2}', '{"a:":1,"a:":2}', '{"\\"":1,"\\"":2}', '{"\\\\":1,"\\\\":2}',
    '{"x":{"k":"::::","k":1}}', '[{"a":[{"b":1,"b":1}]}]', '{"a":"\\":","a":"\\\\"}',
    '{"a" : 1 , "a" : 2}', '{"":1,"":2}',
])
def test_each_duplicate_is_refused_as_before(doc):
    got = assert_same(doc.encode())
    assert got[0] == "refused" and "duplicate key" in got[2]


@pytest.mark.parametrize("doc", [
    '{"a:b":1,"a":2}', '{"\\":":1,":":2}', '{"a":"x:y","b":"\\\\"}', '{"a":{"a":{"a":1}}}',
    '[{"a":1},{"a":1}]', '{"t":"2026-01-01T00:00:00Z","u":"https://x:1/"}',
])
def test_colons_and_repeated_keys_in_other_objects_are_no_duplicates(doc):
    assert assert_same(doc.encode()) == ("accepted", json.loads(doc))


@pytest.fixture(scope="module")
def real_payloads() -> tuple[bytes, ...]:
    return replayed_payloads()


def test_real_reports_are_accepted_with_their_value(real_payloads):
    for payload in real_payloads:
        assert len(payload) > 3000
        assert assert_same(payload) == ("accepted", json.loads(payload))


def _render(value, dup_at: int, seen: list[int]) -> str:
    """``value`` as compact JSON, the ``dup_at``-th object (pre-order) with its first member repeated."""
    if isinstance(value, dict):
        mine, seen[0] = seen[0], seen[0] + 1
        members = [(k, _render(v, dup_at, seen)) for k, v in value.items()]
        if mine == dup_at and members:
            members.append(members[0])
        return _object(members)
    if isinstance(value, list):
        return "[" + ",".join(_render(v, dup_at, seen) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_real_reports_with_a_member_repeated_anywhere(real_payloads, data):
    payload = data.draw(st.sampled_from(real_payloads))
    objects = payload.count(b"{")
    at = data.draw(st.integers(0, objects - 1))
    value = json.loads(payload)
    text = _render(value, at, [0])
    got = assert_same(text.encode("utf-8"))
    # The object may be empty (nothing to repeat: the same value); otherwise the repeat is refused.
    assert got == ("accepted", value) if _render(value, -1, [0]) == text else got[0] == "refused"


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_real_reports_with_bytes_changed(real_payloads, data):
    payload = bytearray(data.draw(st.sampled_from(real_payloads)))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(payload) - 1))
        payload[at:at + 1] = data.draw(st.sampled_from([b":", b'"', b"\\", b"{", b"}", b"[", b"]", b",",
                                                        b'\\"', b'":"', b'"a":1,"a', b"\\u0000", b"1e400"]))
    assert_same(bytes(payload))
