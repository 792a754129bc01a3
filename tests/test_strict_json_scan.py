"""The strict wire parser's fast path (auditagent/report.py ``_decode_scanned``: one pass
of the decoder, then scans of the text) gives exactly the outcome of the reference, which
walks every value (``_decode_walked``): the same value, or the same refusal with the
same message, for every input. Hostile shapes aimed at the scans: brackets, quotes and
backslashes inside strings, nesting at the limit, escapes of NUL and surrogates, numbers
beyond a double's range, duplicate keys, text handed in as str."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditagent import report as wire

DEPTH = wire.MAX_JSON_DEPTH


def outcome(raw, decode):
    try:
        return ("accepted", wire.strict_loads(raw, "t", _decode=decode))
    except wire.ReportError as exc:
        return ("refused", exc.code, exc.message)


def assert_same(raw):
    fast, reference = outcome(raw, wire._decode_scanned), outcome(raw, wire._decode_walked)
    assert fast == reference
    return fast


# Characters that could mislead a scan of the text: structure and escapes in strings,
# what the wire refuses (NUL, lone surrogates), a pair that is fine, non-ASCII.
_TRICKY = st.sampled_from(['[', ']', '{', '}', '"', '\\', '\\"', '\\\\', '\x00', '\ud800', '\udfff',
                           '\ud83d\ude00', 'å', '\n', ',', ':', 'u0000', 'a'])
_TEXT = st.lists(_TRICKY, max_size=6).map("".join)
_LEAF = st.none() | st.booleans() | st.integers() | st.floats() | _TEXT


def _wrap(value, shapes):
    for shape in shapes:
        value = [value] if shape else {"k": value}
    return value


_VALUE = st.recursive(_LEAF, lambda kids: st.lists(kids, max_size=3)
                      | st.dictionaries(_TEXT, kids, max_size=3), max_leaves=12)
# Nested around the limit: a value inside 28 to 36 containers.
_DEEP = st.builds(_wrap, _VALUE, st.lists(st.booleans(), min_size=DEPTH - 4, max_size=DEPTH + 4))


def _encode(value, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@settings(max_examples=300, deadline=None)
@given(st.one_of(_VALUE, _DEEP), st.booleans(), st.booleans())
def test_the_scanned_decoding_agrees_with_the_walk(value, ascii_only, as_text):
    raw = _encode(value, ascii_only)
    if as_text:
        raw = raw.decode("utf-8", "surrogatepass")
    assert_same(raw)


@settings(max_examples=150, deadline=None)
@given(_VALUE, st.sampled_from(['1e400', '-1e400', '1' * 400 + '.0', 'NaN', 'Infinity', '1e308', '-0.0']),
       st.booleans())
def test_numbers_and_duplicate_keys_agree_wherever_they_sit(value, number, duplicate):
    doc = '{"a":%s,"n":%s%s}' % (json.dumps(value), number, ',"a":1' if duplicate else "")
    assert_same(doc.encode())


@pytest.mark.parametrize("containers", [DEPTH - 1, DEPTH, DEPTH + 1, DEPTH + 2])
@pytest.mark.parametrize("leaf", ["", "1", '"]]]]]]]]"', '"[[[[\\"[["', '"\\\\"'])
def test_nesting_at_the_limit(containers, leaf):
    doc = "[" * containers + leaf + "]" * containers
    got = assert_same(doc.encode())
    # A value sits at depth = the containers around it: one beyond the limit is refused.
    too_deep = containers > DEPTH + 1 or (containers == DEPTH + 1 and leaf)
    assert (got[0] == "refused") == bool(too_deep)
    assert not too_deep or "nested deeper" in got[2]


def test_brackets_in_strings_do_not_hide_nesting():
    # Closing brackets inside strings must not be counted against the real ones.
    doc = '["]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", ' + "[" * (DEPTH + 2) + "]" * (DEPTH + 2) + "]"
    got = assert_same(doc.encode())
    assert got[0] == "refused" and "nested deeper" in got[2]


@pytest.mark.parametrize("doc, why", [
    (b'{"a":"x\\u0000"}', "NUL"),
    (b'{"x\\u0000":1}', "NUL"),
    (b'["\\ud800"]', "lone surrogate"),
    (b'["\\uDFFF"]', "lone surrogate"),
    (b'{"a":[1e400]}', "out of range"),
    (b'{"a":1,"a":2}', "duplicate key"),
    (b'{"a":NaN}', "not a JSON number"),
])
def test_each_refusal_keeps_its_message(doc, why):
    got = assert_same(doc)
    assert got[0] == "refused" and got[1] == "malformed_json" and why in got[2]


def test_what_looks_suspect_but_is_fine_is_accepted():
    for doc in (b'["\\\\u0000"]', b'["\\ud83d\\ude00"]', '["\U0001F600"]', b'{"a":1e308}'):
        assert assert_same(doc)[0] == "accepted"
    assert assert_same('["\ud800"]')[0] == "refused"  # str input may carry a raw surrogate
