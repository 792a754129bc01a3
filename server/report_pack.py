"""A report's signed bytes, stored compactly and rebuilt exactly (pure functions).

What a device signed is the DSSE payload (the Statement's JSON bytes) and one Ed25519
signature over it; the base64 envelope around them is 35% overhead and barely
compresses. So a report is kept as the raw signature (64 bytes) plus a *body*: the
payload with its ``"facts"`` and ``"results"`` values cut out, zlib-compressed against a
preset dictionary of the Statement's shape. The cut-out values are *segments*, stored
once each in ``report_blobs`` keyed by their sha256 (an hourly report nearly always
repeats the previous one's facts and results, and many devices share results), so a
report costs a few hundred bytes. The cut is exact byte surgery on the payload as
signed: :func:`unpack` puts the same bytes back in the same places, so the signature
verifies on the rebuilt payload, wherever the cuts fall (a payload without those keys
simply stays whole in the body).

Body layout, version 1 (reports stored before migration 0018): ``0x01``, segment count
(1 byte), per segment its offset in the payload (4 bytes, big-endian) and its sha256 (32
bytes), then zlib(rest, zdict v1). A volatile member (``collected_at``) splits its
segment in two.

Version 2 (:func:`pack` given ``refs``): ``0x02``, segment count, a byte of flags (bit i:
ref i is used), per segment its offset (4 bytes), sha256 (32), and the *hole* the
volatile member leaves in it: where in the segment (2 bytes) and how long (2 bytes; 0:
none), so a segment is one entry and the member's bytes stay in the rest; then zlib(rest,
zdict v2), where each occurrence of ref i (the report id and device id, which the row
keeps in its own columns) is the one byte ``0x01 + i``: a byte JSON text never holds
raw, so the rest is rebuilt exactly (a payload that holds one keeps its refs whole).
"""
from __future__ import annotations

import base64
import hashlib
import json
import json.scanner
import struct
import zlib
from dataclasses import dataclass
from typing import Mapping

from auditagent import report as wire

_V1, _V2 = 1, 2
_SEGMENT_KEYS = ("facts", "results")
# Members of a segment's object that differ in every report although nothing else did.
_VOLATILE_MEMBERS = ("collected_at",)
_ENTRY = struct.Struct(">I32s")
_ENTRY_V2 = struct.Struct(">I32sHH")
_MAX_REFS = 8
# The Statement's fixed text, so even a short rest compresses (zlib's preset dictionary:
# the body of version 1 is only readable with exactly these bytes; a new dictionary
# needs a new version byte).
_ZDICT_V1 = (b'{"_type":"https://in-toto.io/Statement/v1","predicate":{"agent_version":"0.1.0","device":'
             b'{"hostname":"","id":"","os":"","platform":"windows","serial":""},"facts":,"generated_at":"'
             b'2026-01-01T00:00:00Z","policy":{"id":"casework-confidential","sha256":"","version":""},'
             b'"report_id":"","results":,"sequence":,"verdict":"not_ready"},"predicateType":'
             b'"https://auditagent.dev/readiness-report/v1","subject":[{"digest":{"sha256":""},'
             b'"name":"device:"}]}')


# Version 2's dictionary: the rest of an agent's payload as it is stored (refs as their
# bytes, the facts' collection stamp in place), with the values the agents send most.
_ZDICT_V2 = (b'{"_type":"https://in-toto.io/Statement/v1","predicate":{"agent_version":"0.1.0","device":'
             b'{"hostname":"","id":"\x02","os":"Microsoft Windows 11 Enterprise","os":"Microsoft Windows 11 Pro",'
             b'"os":"Debian GNU/Linux 12 (bookworm)","os":"Ubuntu 24.04 LTS","os":"macOS","platform":"linux",'
             b'"platform":"macos","platform":"windows","serial":""},"facts":"collected_at":"2026-01-01T00:00:00+00:00"'
             b',"generated_at":"2026-01-01T00:00:00Z","policy":{"id":"casework-confidential","sha256":"",'
             b'"version":"2026.11.23"},"report_id":"\x01","results":,"sequence":1,"verdict":"ready","verdict":'
             b'"not_ready"},"predicateType":"https://auditagent.dev/readiness-report/v1","subject":[{"digest":'
             b'{"sha256":""},"name":"device:\x02"}]}')
_ZDICTS = {_V1: _ZDICT_V1, _V2: _ZDICT_V2}


@dataclass(frozen=True)
class Packed:
    body: bytes
    segments: dict[bytes, bytes]  # sha256 → segment bytes (uncompressed)


def _compress(data: bytes, version: int = _V1) -> bytes:
    c = zlib.compressobj(9, zdict=_ZDICTS[version])
    return c.compress(data) + c.flush()


def _decompress(data: bytes, version: int = _V1) -> bytes:
    d = zlib.decompressobj(zdict=_ZDICTS[version])
    return d.decompress(data) + d.flush()


# The decoder's scanner finds where a JSON value ends (it is not asked to check anything:
# the payload was strictly parsed already). Over latin-1 text one character is one byte,
# so its offsets are the payload's; JSON's structure is ASCII, the rest only string content.
_SCAN_VALUE = json.scanner.make_scanner(json.JSONDecoder())


def _value_end(text: str, start: int) -> int:
    try:
        return _SCAN_VALUE(text, start)[1]
    except (StopIteration, ValueError):
        return -1


# The member that follows each segment's in the agent's payload (canonical JSON: keys
# sorted, no spaces; both are required members of the predicate).
_NEXT_MEMBER = {"facts": ',"generated_at":', "results": ',"sequence":'}


def _container_ends_at(payload: bytes, start: int, end: int) -> bool:
    """True if the container that opens at ``payload[start]`` closes at ``payload[end - 1]``,
    for a payload that is valid JSON and a ``start`` outside any string: what the decoder's
    scanner would find, from brackets and quotes alone (no value is built)."""
    piece = payload[start:end]
    if piece[:1] not in (b"{", b"[") or piece[-1:] not in (b"}", b"]"):
        return False
    brackets = wire.json_structure(piece)
    if brackets is None:  # ends inside a string
        return False
    inner = brackets.replace(b":", b"")[1:-1]
    while inner:  # each pass removes the innermost containers: empty once balanced, if the first closes last
        shorter = inner.replace(b"[]", b"")
        if len(shorter) == len(inner):
            return False
        inner = shorter
    return True


def _segment_end(payload: bytes, text: str, key: str, start: int) -> int:
    """Where the value at ``start`` (of member ``key``) ends: found as the agent lays the
    payload out (the next member right after it) where that holds, else by the scanner."""
    end = text.find(_NEXT_MEMBER[key], start)
    if end > start and _container_ends_at(payload, start, end):
        return end
    return _value_end(text, start)


def _cuts(payload: bytes) -> list[tuple[int, int, tuple[int, int] | None]]:
    """(start, end, the volatile member's (start, end) inside or None) of the values of the
    payload's ``"facts"`` and ``"results"`` keys (the first of each, in payload order),
    found in the bytes, not re-encoded. For a payload that is valid JSON (every payload
    stored: it was strictly parsed first) the ends are the scanner's; for any bytes, the
    cuts are rebuilt exactly."""
    text = payload.decode("latin-1")
    cuts: list[tuple[int, int, tuple[int, int] | None]] = []
    pos = 0
    for key in _SEGMENT_KEYS:
        at = text.find(f'"{key}":', pos)
        if at < 0:
            continue
        start = at + len(key) + 3
        end = _segment_end(payload, text, key, start)
        if end < 0:
            continue
        cuts.append((start, end, _hole(text, start, end)))
        pos = end
    return cuts


def _hole(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Where a member that changes on every run (``collected_at``, found once) stands in
    the segment ``text[start:end]``: it stays in the body, so the rest of the segment is
    the same bytes hour after hour and is stored once."""
    segment = text[start:end]
    for name in _VOLATILE_MEMBERS:
        marker = f'"{name}":'
        at = segment.find(marker)
        if at < 0 or segment.find(marker, at + 1) >= 0:
            continue  # not found exactly once: keep the segment whole
        stop = _value_end(segment, at + len(marker))
        if stop < 0:
            continue
        return start + at, start + stop
    return None


def pack(payload: bytes, refs: tuple[str, ...] | None = None) -> Packed:
    """``payload`` as signed, its facts and results cut out as segments (any cut is rebuilt
    exactly; cutting the predicate's own, as in every agent's payload, is what makes an
    hourly report's segments the same as the previous one's). Without ``refs``: layout 1;
    with them (the strings the row keeps apart, passed again to :func:`unpack`): layout 2."""
    if refs is None:
        return _pack_v1(payload)
    if len(refs) > _MAX_REFS:
        raise ValueError("report_pack: too many refs")
    rest, entries, segments, pos = [], [], {}, 0
    for start, end, hole in _cuts(payload):
        hole_at, hole_len = (hole[0] - start, hole[1] - hole[0]) if hole else (0, 0)
        if max(hole_at, hole_len) > 0xFFFF:
            hole, hole_at, hole_len = None, 0, 0
        segment = payload[start:hole[0]] + payload[hole[1]:end] if hole else payload[start:end]
        sha = hashlib.sha256(segment).digest()
        rest.append(payload[pos:start])
        if hole:
            rest.append(payload[hole[0]:hole[1]])
        pos = end
        entries.append(_ENTRY_V2.pack(start, sha, hole_at, hole_len))
        segments[sha] = segment
    rest.append(payload[pos:])
    joined, flags = b"".join(rest), 0
    marks = [bytes((1 + i,)) for i in range(_MAX_REFS)]
    if not any(m in joined for m in marks):
        for i, ref in enumerate(refs):
            if ref and not any(m in ref.encode("utf-8") for m in marks):
                joined, flags = joined.replace(ref.encode("utf-8"), bytes((1 + i,))), flags | 1 << i
    body = bytes((_V2, len(entries), flags)) + b"".join(entries) + _compress(joined, _V2)
    return Packed(body, segments)


def _pack_v1(payload: bytes) -> Packed:
    pieces = []
    for start, end, hole in _cuts(payload):
        pieces += [(start, payload[start:hole[0]]), (hole[1], payload[hole[1]:end])] if hole \
            else [(start, payload[start:end])]
    rest, entries, segments, pos = [], [], {}, 0
    for offset, segment in pieces:
        sha = hashlib.sha256(segment).digest()
        rest.append(payload[pos:offset])
        pos = offset + len(segment)
        entries.append(_ENTRY.pack(offset, sha))
        segments[sha] = segment
    rest.append(payload[pos:])
    body = bytes((_V1, len(entries))) + b"".join(entries) + _compress(b"".join(rest))
    return Packed(body, segments)


def _entries(body: bytes) -> tuple[list[tuple[int, bytes, int, int]], int]:
    """(per segment (offset, sha256, hole at, hole length), where the compressed rest starts)."""
    if len(body) < 2 or body[0] not in _ZDICTS:
        raise ValueError(f"stored report body: unknown layout version {body[:1]!r}")
    n = body[1]
    if body[0] == _V1:
        return [(*_ENTRY.unpack_from(body, 2 + i * _ENTRY.size), 0, 0) for i in range(n)], 2 + n * _ENTRY.size
    return [_ENTRY_V2.unpack_from(body, 3 + i * _ENTRY_V2.size) for i in range(n)], 3 + n * _ENTRY_V2.size


def segment_ids(body: bytes) -> list[bytes]:
    """The sha256 of each segment ``body`` needs, in payload order."""
    return [sha for _, sha, _, _ in _entries(body)[0]]


def unpack(body: bytes, segments: Mapping[bytes, bytes], refs: tuple[str, ...] = ()) -> bytes:
    """The payload exactly as signed (``refs`` as given to :func:`pack`). KeyError if a
    segment is missing; ValueError if a ref the body uses is not given."""
    entries, at_rest = _entries(body)
    rest = _decompress(body[at_rest:], body[0])
    if body[0] == _V2:
        for i in range(_MAX_REFS):
            if body[2] >> i & 1:
                if i >= len(refs) or not refs[i]:
                    raise ValueError(f"stored report body: ref {i} is needed")
                rest = rest.replace(bytes((1 + i,)), refs[i].encode("utf-8"))
    out, at, removed = [], 0, 0
    for offset, sha, hole_at, hole_len in entries:
        segment = segments[sha]
        cut = offset - removed  # the offset in the rest (the segments before it removed)
        out += [rest[at:cut], segment[:hole_at], rest[cut:cut + hole_len], segment[hole_at:]]
        at, removed = cut + hole_len, removed + len(segment)
    out.append(rest[at:])
    return b"".join(out)


def compress_segment(segment: bytes) -> bytes:
    return zlib.compress(segment, 9)


def decompress_segment(data: bytes) -> bytes:
    return zlib.decompress(data)


def keyid_of(payload: bytes) -> str:
    """The keyid of the key that signed a stored ``payload``: its subject's digest (the
    collector stores a report only if that digest is the signing key's keyid, so the
    keyid is not kept apart; :func:`auditagent.report.verify_decoded`)."""
    return json.loads(payload)["subject"][0]["digest"]["sha256"]


def envelope_text(payload: bytes, keyid: str, signature: bytes) -> str:
    """The DSSE envelope rebuilt around the signed bytes, in the agent's own wire form
    (:func:`auditagent.report.envelope_bytes`): for a report sent by the agent it is the
    very text received."""
    return json.dumps({"payloadType": wire.PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode("ascii"),
                       "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode("ascii")}]},
                      separators=(",", ":"))
