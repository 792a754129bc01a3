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
verifies on the rebuilt payload. A segment whose bytes cannot be found once exactly
(a payload not in the agent's canonical form) simply stays in the body.

Body layout, version 1: ``0x01``, segment count (1 byte), per segment its offset in the
payload (4 bytes, big-endian) and its sha256 (32 bytes), then zlib(rest, zdict).
"""
from __future__ import annotations

import base64
import hashlib
import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Mapping

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


def pack(payload: bytes, predicate: Mapping[str, Any]) -> Packed:
    """``payload`` as signed, with ``predicate`` (its parsed Statement's predicate)."""
    cuts: list[tuple[int, bytes]] = []
    for key in _SEGMENT_KEYS:
        if key not in predicate:
            continue
        segment = wire.canonical_json(predicate[key])
        marker = b'"' + key.encode() + b'":' + segment
        at = payload.find(marker)
        if at < 0 or payload.find(marker, at + 1) >= 0:
            continue  # not found exactly once: it stays in the body
        cuts.extend(_pieces(at + len(marker) - len(segment), segment, predicate[key]))
    cuts.sort()
    rest, entries, segments, pos = [], [], {}, 0
    for offset, segment in cuts:
        if offset < pos:  # overlapping (cannot happen for distinct keys of one object)
            continue
        sha = hashlib.sha256(segment).digest()
        rest.append(payload[pos:offset])
        pos = offset + len(segment)
        entries.append(_ENTRY.pack(offset, sha))
        segments[sha] = segment
    rest.append(payload[pos:])
    body = bytes((_VERSION, len(entries))) + b"".join(entries) + _compress(b"".join(rest))
    return Packed(body, segments)


def _pieces(offset: int, segment: bytes, value: Any) -> list[tuple[int, bytes]]:
    """``segment`` (at ``offset``) as the pieces to store: a top-level member that changes
    on every run (``collected_at``) is left out, to stay in the body, so the rest is the
    same bytes hour after hour and is stored once."""
    if not isinstance(value, dict):
        return [(offset, segment)]
    for name in _VOLATILE_MEMBERS:
        if name not in value:
            continue
        member = json.dumps(name).encode() + b":" + wire.canonical_json(value[name])
        at = segment.find(member)
        if at < 0 or segment.find(member, at + 1) >= 0:
            continue  # not found exactly once: keep the segment whole
        head, tail = segment[:at], segment[at + len(member):]
        return [(offset, head), (offset + at + len(member), tail)]
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


def envelope_text(payload: bytes, keyid: str, signature: bytes) -> str:
    """The DSSE envelope rebuilt around the signed bytes, in the agent's own wire form
    (:func:`auditagent.report.envelope_bytes`): for a report sent by the agent it is the
    very text received."""
    return json.dumps({"payloadType": wire.PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode("ascii"),
                       "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode("ascii")}]},
                      separators=(",", ":"))
