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

Body layout, version 1: ``0x01``, segment count (1 byte), per segment its offset in the
payload (4 bytes, big-endian) and its sha256 (32 bytes), then zlib(rest, zdict).
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

_VERSION = 1
_SEGMENT_KEYS = ("facts", "results")
# Members of a segment's object that differ in every report although nothing else did.
_VOLATILE_MEMBERS = ("collected_at",)
_ENTRY = struct.Struct(">I32s")
# The Statement's fixed text, so even a short rest compresses (zlib's preset dictionary:
# the body of version 1 is only readable with exactly these bytes; a new dictionary
# needs a new version byte).
_ZDICT_V1 = (b'{"_type":"https://in-toto.io/Statement/v1","predicate":{"agent_version":"0.1.0","device":'
             b'{"hostname":"","id":"","os":"","platform":"windows","serial":""},"facts":,"generated_at":"'
             b'2026-01-01T00:00:00Z","policy":{"id":"casework-confidential","sha256":"","version":""},'
             b'"report_id":"","results":,"sequence":,"verdict":"not_ready"},"predicateType":'
             b'"https://auditagent.dev/readiness-report/v1","subject":[{"digest":{"sha256":""},'
             b'"name":"device:"}]}')


@dataclass(frozen=True)
class Packed:
    body: bytes
    segments: dict[bytes, bytes]  # sha256 → segment bytes (uncompressed)


def _compress(data: bytes) -> bytes:
    c = zlib.compressobj(9, zdict=_ZDICT_V1)
    return c.compress(data) + c.flush()


def _decompress(data: bytes) -> bytes:
    d = zlib.decompressobj(zdict=_ZDICT_V1)
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


def pack(payload: bytes) -> Packed:
    """``payload`` as signed: the values of its ``"facts"`` and ``"results"`` keys (the first
    of each, in payload order) become segments, found in the bytes, not re-encoded. Any
    cut is rebuilt exactly; cutting the predicate's own (as in every agent's payload) is
    what makes an hourly report's segments the same as the previous one's."""
    text = payload.decode("latin-1")
    cuts: list[tuple[int, bytes]] = []
    pos = 0
    for key in _SEGMENT_KEYS:
        at = text.find(f'"{key}":', pos)
        if at < 0:
            continue
        start = at + len(key) + 3
        end = _value_end(text, start)
        if end < 0:
            continue
        cuts.extend(_pieces(start, payload[start:end]))
        pos = end
    rest, entries, segments, pos = [], [], {}, 0
    for offset, segment in cuts:
        sha = hashlib.sha256(segment).digest()
        rest.append(payload[pos:offset])
        pos = offset + len(segment)
        entries.append(_ENTRY.pack(offset, sha))
        segments[sha] = segment
    rest.append(payload[pos:])
    body = bytes((_VERSION, len(entries))) + b"".join(entries) + _compress(b"".join(rest))
    return Packed(body, segments)


def _pieces(offset: int, segment: bytes) -> list[tuple[int, bytes]]:
    """``segment`` (at ``offset``) as the pieces to store: a member that changes on every
    run (``collected_at``, found once) is left out, to stay in the body, so the rest is
    the same bytes hour after hour and is stored once."""
    text = segment.decode("latin-1")
    for name in _VOLATILE_MEMBERS:
        marker = f'"{name}":'
        at = text.find(marker)
        if at < 0 or text.find(marker, at + 1) >= 0:
            continue  # not found exactly once: keep the segment whole
        end = _value_end(text, at + len(marker))
        if end < 0:
            continue
        return [(offset, segment[:at]), (offset + end, segment[end:])]
    return [(offset, segment)]


def segment_ids(body: bytes) -> list[bytes]:
    """The sha256 of each segment ``body`` needs, in payload order."""
    _check(body)
    return [_ENTRY.unpack_from(body, 2 + i * _ENTRY.size)[1] for i in range(body[1])]


def unpack(body: bytes, segments: Mapping[bytes, bytes]) -> bytes:
    """The payload exactly as signed. KeyError if a segment is missing."""
    _check(body)
    n = body[1]
    entries = [_ENTRY.unpack_from(body, 2 + i * _ENTRY.size) for i in range(n)]
    rest = _decompress(body[2 + n * _ENTRY.size:])
    out, at, removed = [], 0, 0
    for offset, sha in entries:
        segment = segments[sha]
        cut = offset - removed  # the offset in the rest (the segments before it removed)
        out += [rest[at:cut], segment]
        at, removed = cut, removed + len(segment)
    out.append(rest[at:])
    return b"".join(out)


def _check(body: bytes) -> None:
    if len(body) < 2 or body[0] != _VERSION:
        raise ValueError(f"stored report body: unknown layout version {body[:1]!r}")


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
