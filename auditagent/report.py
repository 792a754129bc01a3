"""The wire format, one definition for agent and collector alike.

A readiness report is an in-toto Statement v1 whose subject is the device (named
``device:<id>``, with the sha256 of its raw Ed25519 public key as digest) and whose
predicate (type :data:`PREDICATE_TYPE`) carries the device, agent version, policy
id/version/sha256, the facts the policy uses, the results, the verdict, a per-device
sequence number and the time it was generated.

The Statement travels in a DSSE envelope (payloadType ``application/vnd.in-toto+json``,
signature over the DSSE v1 pre-authentication encoding, Ed25519, keyid = hex sha256
of the raw public key), so any DSSE implementation (securesystemslib, sigstore, Go's
in-toto) verifies a stored report without the collector.

A signed *policy* is also a DSSE envelope, payloadType
:data:`POLICY_PAYLOAD_TYPE`, whose payload is the policy YAML, signed with the
organisation's policy key.

This module ships on laptops: it imports only ``cryptography`` and the standard
library. Every failure is a :class:`ReportError` with a stable ``code``:

==================== ==========================================================
malformed_json       the bytes are not JSON
malformed_envelope   not a DSSE envelope (fields, types, base64, payload JSON)
bad_payload_type     payloadType is not the one expected
unknown_keyid        no signature carries the verifying key's keyid
bad_signature        a signature with that keyid does not verify
schema_violation     the Statement or its predicate breaks the schema
==================== ==========================================================
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://auditagent.dev/readiness-report/v1"
POLICY_PAYLOAD_TYPE = "application/vnd.auditagent.policy+yaml"
REKEY_PAYLOAD_TYPE = "application/vnd.auditagent.rekey+json"

VERDICTS = ("ready", "not_ready")
RESULT_STATUSES = ("pass", "fail", "unknown", "not_applicable")
SUBJECT_PREFIX = "device:"

# The largest report body a collector takes (its default ``--max-body-bytes``); the agent
# never spools or sends a bigger one, since it would be refused (413) every time.
MAX_REPORT_BYTES = 256 * 1024
MAX_JSON_DEPTH = 32  # objects/arrays inside each other; a report needs about 8
MAX_SIGNATURES = 4  # DSSE allows several; a device signs once
MAX_SEQUENCE = 2**62  # well inside a signed 64-bit column, with room to count on

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class ReportError(ValueError):
    """A report or signed policy that cannot be accepted; ``code`` is stable, ``message`` says where."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


# ------------------------------------------------------------------ keys and encodings


def raw_public_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes_raw()


# RFC 8410: an Ed25519 key in DER is a fixed prefix and its 32 raw bytes. Read so, the
# hourly run loads its keys without cryptography's serialization package (importing it
# costs more CPU than the signing); any other form goes to cryptography's loader.
_ED25519_SPKI = bytes.fromhex("302a300506032b6570032100")
_ED25519_PKCS8 = bytes.fromhex("302e020100300506032b657004220420")


def _pem_der(data: bytes, label: bytes) -> bytes | None:
    text = data.strip()
    head, tail = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    if not (text.startswith(head) and text.endswith(tail)):
        return None
    try:
        return base64.b64decode(b"".join(text[len(head):-len(tail)].split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def ed25519_from_pem(data: bytes, private: bool) -> Ed25519PrivateKey | Ed25519PublicKey | None:
    """The key of a single plain Ed25519 PEM block (PKCS#8 private / SubjectPublicKeyInfo
    public), or None when ``data`` is anything else (then use cryptography's loader)."""
    label, prefix = (b"PRIVATE KEY", _ED25519_PKCS8) if private else (b"PUBLIC KEY", _ED25519_SPKI)
    der = _pem_der(data, label)
    if der is None or len(der) != len(prefix) + 32 or not der.startswith(prefix):
        return None
    raw = der[len(prefix):]
    return Ed25519PrivateKey.from_private_bytes(raw) if private else Ed25519PublicKey.from_public_bytes(raw)


def keyid(public_key: Ed25519PublicKey) -> str:
    """Hex sha256 of the raw 32-byte Ed25519 public key."""
    return hashlib.sha256(raw_public_bytes(public_key)).hexdigest()


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    """SubjectPublicKeyInfo PEM, as text."""
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def load_public_key_pem(data: bytes | str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM; ReportError('bad_public_key') for anything else."""
    if isinstance(data, str):
        data = data.encode("ascii", "replace")
    fast = ed25519_from_pem(data, private=False)
    if fast is not None:
        return fast  # type: ignore[return-value]
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ReportError("bad_public_key", f"not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ReportError("bad_public_key", f"expected an Ed25519 public key, got {type(key).__name__}")
    return key


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def canonical_json(obj: Any) -> bytes:
    """The bytes that are signed: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: Any, where: str) -> bytes:
    """Standard base64 (URL-safe accepted too, as the DSSE spec allows either)."""
    if not isinstance(text, str):
        raise ReportError("malformed_envelope", f"{where}: must be a base64 string")
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ReportError("malformed_envelope", f"{where}: not valid base64") from None


def now_iso() -> str:
    """Current UTC time, ISO-8601 with a Z, microseconds dropped."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_time(value: Any) -> dt.datetime | None:
    """A tz-aware datetime from ISO-8601 text, or None if it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


# ------------------------------------------------------------------ building


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def new_report_id() -> str:
    """A random (version 4, RFC 4122 variant) UUID, as ``str(uuid.uuid4())`` makes it from
    16 random bytes; without importing uuid, which imports platform (the hourly run's CPU)."""
    b = bytearray(os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40  # version 4
    b[8] = b[8] & 0x3F | 0x80  # variant 10xx
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def build_predicate(*, report_id: str | None = None, device: dict[str, Any], agent_version: str,
                    policy: dict[str, Any], facts: dict[str, Any], results: list[dict[str, Any]], verdict: str,
                    sequence: int, generated_at: str | None = None, spool: dict[str, Any] | None = None,
                    integrity: dict[str, Any] | None = None) -> dict[str, Any]:
    """The readiness-report predicate. ``device`` = {id, hostname, serial, os[, platform]};
    ``policy`` = {id, version, sha256}; ``spool`` e.g. {"evicted": n, "evicted_sequences": [...]};
    ``integrity`` e.g. a policy verification failure the agent wants the collector to see."""
    predicate: dict[str, Any] = {
        "report_id": report_id or new_report_id(),
        "device": dict(device),
        "agent_version": agent_version,
        "policy": {"id": policy.get("id"), "version": policy.get("version"), "sha256": policy.get("sha256")},
        "facts": facts,
        "results": results,
        "verdict": verdict,
        "sequence": sequence,
        "generated_at": generated_at or now_iso(),
    }
    if spool is not None:
        predicate["spool"] = spool
    if integrity is not None:
        predicate["integrity"] = integrity
    return predicate


def build_statement(*, device_id: str, public_key: Ed25519PublicKey | str, predicate: dict[str, Any]) -> dict[str, Any]:
    """``public_key``: the device key, or its keyid (hex sha256) when only that is at hand
    (the self-check page shows the Statement without reading the private key)."""
    digest = public_key if isinstance(public_key, str) else keyid(public_key)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": SUBJECT_PREFIX + device_id, "digest": {"sha256": digest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": wire_safe(predicate, depth=2),  # where the predicate sits in the Statement
    }


def _sign(payload_type: str, payload: bytes, private_key: Ed25519PrivateKey) -> dict[str, Any]:
    sig = private_key.sign(pae(payload_type, payload))
    return {"payloadType": payload_type, "payload": b64encode(payload),
            "signatures": [{"keyid": keyid(private_key.public_key()), "sig": b64encode(sig)}]}


def sign_envelope(statement: dict[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """Validate the Statement, then wrap it in a DSSE envelope signed with ``private_key``."""
    validate_statement(statement)
    return _sign(PAYLOAD_TYPE, canonical_json(statement), private_key)


def envelope_bytes(envelope: dict[str, Any]) -> bytes:
    """The envelope as sent on the wire (compact JSON)."""
    return json.dumps(envelope, separators=(",", ":")).encode("utf-8")


# ------------------------------------------------------------------ parsing and verifying


@dataclass(frozen=True)
class Decoded:
    """An envelope taken apart but NOT yet verified: look up the key by ``device_id``,
    then call :func:`verify_decoded`."""

    payload_type: str
    payload: bytes
    signatures: tuple[tuple[str, bytes], ...]  # (keyid, raw signature)
    statement: dict[str, Any]

    @property
    def device_id(self) -> str:
        return subject_device_id(self.statement)

    @property
    def keyids(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.signatures)


class _JsonRefused(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise _JsonRefused(f"duplicate key {dup[:80]!r} (readers disagree on which one counts)")
    return obj


def _no_constant(name: str) -> Any:
    raise _JsonRefused(f"{name} is not a JSON number")


def _check_tree(value: Any, depth: int = 0, where: str = "$") -> None:
    if depth > MAX_JSON_DEPTH:
        raise _JsonRefused(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        _check_text(value, where)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text(k, where)
            _check_tree(v, depth + 1, f"{where}.{k[:40]}" if len(where) < 120 else where)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_tree(v, depth + 1, f"{where}[{i}]" if len(where) < 120 else where)
    elif isinstance(value, float) and not math.isfinite(value):
        raise _JsonRefused(f"{where}: number out of range")


def text_refusal(text: str) -> str | None:
    """Why the strict wire refuses this string (a NUL, a lone surrogate), or None: the
    one definition of wire-refused text, for :func:`strict_loads` (the collector) and
    :func:`wire_text` (the agent, before it signs)."""
    if "\x00" in text:
        return "NUL character in a string"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "lone surrogate (\\ud800-\\udfff) in a string"
    return None


_REFUSED_CHAR = re.compile("[\x00\ud800-\udfff]")  # what text_refusal finds, char by char
DROPPED_TOO_DEEP = f"<dropped: nested deeper than {MAX_JSON_DEPTH} levels>"


def wire_text(text: str) -> str:
    """``text`` with each character the wire refuses shown as ``<U+XXXX>`` (as the
    collector shows control characters), so a fact holding a NUL (a registry value, a
    command's output) still travels, visibly."""
    if text_refusal(text) is None:
        return text
    return _REFUSED_CHAR.sub(lambda m: f"<U+{ord(m.group()):04X}>", text)


def wire_safe(value: Any, depth: int = 0) -> Any:
    """A JSON-able value the strict wire accepts: wire-refused text neutralised
    (:func:`wire_text`, keys too), NaN and infinities as null, anything nested deeper
    than :data:`MAX_JSON_DEPTH` replaced by :data:`DROPPED_TOO_DEEP`. What a device
    builds is never a report the collector refuses forever."""
    if isinstance(value, (dict, list, tuple)) and value and depth >= MAX_JSON_DEPTH:
        return DROPPED_TOO_DEEP  # its members would sit deeper than the wire takes
    if isinstance(value, str):
        return wire_text(value)
    if isinstance(value, dict):
        return {wire_text(str(k)): wire_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [wire_safe(v, depth + 1) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _check_text(text: str, where: str) -> None:
    why = text_refusal(text)
    if why:
        raise _JsonRefused(f"{where}: {why}")


class _Overflow(ValueError):
    pass


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise _Overflow  # refused; the tree walk says where
    return value


# What the decoder alone cannot see, found in the text instead of by walking the tree or
# hooking every object: a NUL or lone surrogate in a decoded string can only come from a
# \u escape (the decoder refuses raw control characters in strings, and UTF-8 cannot
# carry a surrogate); nesting is at most the bracket depth outside strings; and an object
# lost a duplicate key exactly when the decoded objects hold fewer members than the text
# has member colons outside strings. Text that might break a rule, or that the fast
# decoder refuses, gets the reference decoding (_decode_walked), which finds the exact
# rule and place.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_KEEP_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}:')  # deleted by translate
_ONE_BRACKET = bytes.maketrans(b"{}", b"[]")  # nesting is all that counts of the brackets


def json_structure(data: bytes) -> bytes | None:
    """The brackets (all as ``[]``) and member colons that stand outside strings in
    ``data``, a piece of valid JSON text starting outside a string, in order; None if the
    piece ends inside a string."""
    # Escaped backslashes, then escaped quotes, go; then all but quotes, brackets and
    # colons; then the strings (every other piece between quotes; two adjacent quotes can
    # go first, as that changes no other character's side).
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    data = data.translate(_ONE_BRACKET, _KEEP_STRUCTURE).replace(b'""', b"")
    if b'"' not in data:
        return data
    pieces = data.split(b'"')
    return b"".join(pieces[::2]) if len(pieces) % 2 else None


def _within_depth(brackets: bytes) -> bool:
    """True if no container in :func:`json_structure`'s ``brackets`` (colons removed) holds
    more than MAX_JSON_DEPTH containers nested inside each other, counting itself: then
    no value sits deeper than MAX_JSON_DEPTH. False means "maybe"."""
    if len(brackets) <= 2 * MAX_JSON_DEPTH:
        return True
    for _ in range(MAX_JSON_DEPTH):  # each pass removes every innermost (empty) container, one level
        brackets = brackets.replace(b"[]", b"")
        if not brackets:
            return True
    return False


def _decode_walked(text: str, raw: Any = None) -> Any:
    """The reference decoding: the decoder's hooks, then a walk of every value."""
    value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    _check_tree(value)
    return value


def _decode_scanned(text: str, raw: Any) -> Any:
    """The same outcome as :func:`_decode_walked` (value or exception, message included)
    in one pass of the decoder building its objects itself (no hook on the pairs, which
    doubles its cost) and three scans of the text; anything else, including every text
    the decoder refuses, is decoded by the reference."""
    if isinstance(raw, (bytes, bytearray)):
        data = bytes(raw)  # UTF-8 cannot carry a surrogate: the decoder refused it already
    elif text.isascii():
        data = text.encode("ascii")
    elif text_refusal(text) is not None:  # text handed in as str may hold raw surrogates
        return _decode_walked(text)
    else:
        data = text.encode("utf-8")
    if _SUSPECT_ESCAPE.search(data) is not None:
        return _decode_walked(text)
    members: list[int] = []

    def counted(obj: dict[str, Any], note: Any = members.append) -> dict[str, Any]:
        note(len(obj))
        return obj

    try:
        value = json.JSONDecoder(object_hook=counted, parse_float=_finite_float,
                                 parse_constant=_no_constant).decode(text)
    except (ValueError, RecursionError):  # refused, number beyond range, too deep: the reference says which
        return _decode_walked(text)
    structure = json_structure(data)
    colons = structure.count(b":") if structure is not None else -1
    if colons != sum(members) or not _within_depth(structure.replace(b":", b"") if colons else structure):
        return _decode_walked(text)
    return value


def strict_loads(raw: bytes | str, what: str = "body", *, _decode: Any = _decode_scanned) -> Any:
    """JSON as a device may send it: UTF-8; no duplicate keys; no NaN, Infinity or
    number beyond a double's range (1e400); no NUL or lone surrogate in any string or
    key; nested at most :data:`MAX_JSON_DEPTH` deep. ReportError('malformed_json',
    '<what>: <which rule, where>') otherwise."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
        value = _decode(text, raw)
    except UnicodeDecodeError as exc:
        raise ReportError("malformed_json", f"{what}: not UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise ReportError("malformed_json", f"{what}: nested deeper than {MAX_JSON_DEPTH} levels") from None
    except _JsonRefused as exc:
        raise ReportError("malformed_json", f"{what}: {exc}") from None
    except ValueError as exc:
        raise ReportError("malformed_json", f"{what} is not valid JSON: {exc}") from None
    return value


def parse_envelope(raw: bytes | str) -> dict[str, Any]:
    """JSON bytes → envelope dict (shape checked by :func:`decode_envelope`), parsed by
    :func:`strict_loads`."""
    value = strict_loads(raw, "body")
    if not isinstance(value, dict):
        raise ReportError("malformed_envelope", "envelope: must be a JSON object")
    return value


def _decode_dsse(envelope: Any, expected_type: str) -> tuple[str, bytes, tuple[tuple[str, bytes], ...]]:
    if not isinstance(envelope, dict):
        raise ReportError("malformed_envelope", "envelope: must be a JSON object")
    for name in ("payloadType", "payload", "signatures"):
        if name not in envelope:
            raise ReportError("malformed_envelope", f"envelope.{name}: missing")
    payload_type = envelope["payloadType"]
    if not isinstance(payload_type, str):
        raise ReportError("malformed_envelope", "envelope.payloadType: must be a string")
    payload = b64decode(envelope["payload"], "envelope.payload")
    sigs = envelope["signatures"]
    if not isinstance(sigs, list) or not sigs:
        raise ReportError("malformed_envelope", "envelope.signatures: must be a non-empty list")
    if len(sigs) > MAX_SIGNATURES:
        raise ReportError("malformed_envelope", f"envelope.signatures: {len(sigs)} signatures; at most "
                                                f"{MAX_SIGNATURES}")
    out = []
    for i, s in enumerate(sigs):
        if not isinstance(s, dict) or not isinstance(s.get("keyid", ""), str):
            raise ReportError("malformed_envelope", f"envelope.signatures[{i}]: must be an object with keyid and sig")
        out.append((s.get("keyid", ""), b64decode(s.get("sig"), f"envelope.signatures[{i}].sig")))
    if payload_type != expected_type:
        raise ReportError("bad_payload_type", f"envelope.payloadType: expected {expected_type!r}, got {payload_type!r}")
    return payload_type, payload, tuple(out)


def decode_envelope(envelope: Any) -> Decoded:
    """Check the DSSE shape and payloadType, decode the payload to a Statement dict
    (its subject is checked so the device id can be read; the rest only after the
    signature verifies)."""
    payload_type, payload, sigs = _decode_dsse(envelope, PAYLOAD_TYPE)
    try:
        statement = strict_loads(payload, "envelope.payload")
    except ReportError as exc:
        raise ReportError("malformed_envelope", exc.message) from None
    if not isinstance(statement, dict):
        raise ReportError("schema_violation", "statement: must be a JSON object")
    subject_device_id(statement)
    return Decoded(payload_type, payload, sigs, statement)


def _verify_sigs(payload_type: str, payload: bytes, sigs: tuple[tuple[str, bytes], ...],
                 public_key: Ed25519PublicKey, expected_keyid: str | None = None) -> None:
    kid = expected_keyid or keyid(public_key)
    mine = [sig for k, sig in sigs if k == kid]
    if not mine:
        got = ", ".join(k[:16] or "''" for k, _ in sigs)
        raise ReportError("unknown_keyid", f"envelope.signatures: no signature by key {kid[:16]}… (found: {got})")
    message = pae(payload_type, payload)
    for sig in mine:
        try:
            public_key.verify(sig, message)
            return
        except InvalidSignature:
            continue
    raise ReportError("bad_signature", f"envelope.signatures: signature by key {kid[:16]}… does not verify")


def verify_decoded(decoded: Decoded, public_key: Ed25519PublicKey, *, expected_keyid: str | None = None) -> dict[str, Any]:
    """Verify the signature, then the schema (including that the subject digest is
    this key); returns the Statement."""
    kid = expected_keyid or keyid(public_key)
    _verify_sigs(decoded.payload_type, decoded.payload, decoded.signatures, public_key, kid)
    validate_statement(decoded.statement)
    digest = decoded.statement["subject"][0]["digest"]["sha256"]
    if digest != kid:
        raise ReportError("schema_violation", "subject[0].digest.sha256: is not the digest of the signing key")
    return decoded.statement


def verify_envelope(envelope: dict[str, Any], public_key: Ed25519PublicKey) -> dict[str, Any]:
    """Verify a report envelope against ``public_key``; returns the Statement."""
    return verify_decoded(decode_envelope(envelope), public_key)


# ------------------------------------------------------------------ schema


def subject_device_id(statement: dict[str, Any]) -> str:
    subject = statement.get("subject")
    if not isinstance(subject, list) or len(subject) != 1 or not isinstance(subject[0], dict):
        raise ReportError("schema_violation", "subject: must be a list of exactly one device")
    name = subject[0].get("name")
    if not isinstance(name, str) or not name.startswith(SUBJECT_PREFIX):
        raise ReportError("schema_violation", f"subject[0].name: must be '{SUBJECT_PREFIX}<device id>'")
    device_id = name[len(SUBJECT_PREFIX):]
    if not _DEVICE_ID.match(device_id):
        raise ReportError("schema_violation", "subject[0].name: device id has invalid characters or length")
    return device_id


def report_id_of(statement: dict[str, Any]) -> str:
    return statement["predicate"]["report_id"]


envelope_report_id = report_id_of


def _fail(where: str, what: str) -> ReportError:
    return ReportError("schema_violation", f"{where}: {what}")


def _str(obj: dict[str, Any], key: str, where: str, *, optional: bool = False, nonempty: bool = True) -> None:
    if key not in obj:
        if optional:
            return
        raise _fail(f"{where}.{key}", "missing")
    v = obj[key]
    if v is None and optional:
        return
    if not isinstance(v, str) or (nonempty and not v):
        raise _fail(f"{where}.{key}", "must be a non-empty string" if nonempty else "must be a string")


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, "must be an object")
    return value


PREDICATE_REQUIRED = ("report_id", "device", "agent_version", "policy", "facts", "results", "verdict",
                      "sequence", "generated_at")
PREDICATE_OPTIONAL = ("spool", "integrity")


def validate_statement(statement: Any) -> None:
    """Enforce the Statement and readiness-report predicate schema; ReportError('schema_violation',
    '<field path>: <what is wrong>') on the first problem."""
    st = _obj(statement, "statement")
    if st.get("_type") != STATEMENT_TYPE:
        raise _fail("_type", f"must be {STATEMENT_TYPE!r}")
    device_id = subject_device_id(st)
    digest = st["subject"][0].get("digest")
    if not isinstance(digest, dict) or not isinstance(digest.get("sha256"), str) or not _HEX64.match(digest["sha256"]):
        raise _fail("subject[0].digest.sha256", "must be 64 lowercase hex digits")
    if st.get("predicateType") != PREDICATE_TYPE:
        raise _fail("predicateType", f"must be {PREDICATE_TYPE!r}")
    extra = set(st) - {"_type", "subject", "predicateType", "predicate"}
    if extra:
        raise _fail(sorted(extra)[0], "unknown field")
    p = _obj(st.get("predicate"), "predicate")
    for key in PREDICATE_REQUIRED:
        if key not in p:
            raise _fail(f"predicate.{key}", "missing")
    extra = set(p) - set(PREDICATE_REQUIRED) - set(PREDICATE_OPTIONAL)
    if extra:
        raise _fail(f"predicate.{sorted(extra)[0]}", "unknown field")

    rid = p["report_id"]
    # What str(uuid.UUID(rid)) == rid.lower() accepts (the canonical form, any case), without uuid.
    if not isinstance(rid, str) or not _UUID.fullmatch(rid.lower()):
        raise _fail("predicate.report_id", "must be a UUID string")

    dev = _obj(p["device"], "predicate.device")
    _str(dev, "id", "predicate.device")
    if dev["id"] != device_id:
        raise _fail("predicate.device.id", "must equal the subject's device id")
    _str(dev, "hostname", "predicate.device", nonempty=False)
    _str(dev, "serial", "predicate.device", optional=True, nonempty=False)
    if "os" in dev and dev["os"] is not None and not isinstance(dev["os"], (str, dict)):
        raise _fail("predicate.device.os", "must be a string or an object")
    _str(dev, "platform", "predicate.device", optional=True, nonempty=False)

    _str(p, "agent_version", "predicate")
    pol = _obj(p["policy"], "predicate.policy")
    _str(pol, "id", "predicate.policy")
    _str(pol, "version", "predicate.policy")
    if not isinstance(pol.get("sha256"), str) or not _HEX64.match(pol["sha256"]):
        raise _fail("predicate.policy.sha256", "must be 64 lowercase hex digits")

    _obj(p["facts"], "predicate.facts")
    results = p["results"]
    if not isinstance(results, list):
        raise _fail("predicate.results", "must be a list")
    for i, r in enumerate(results):
        where = f"predicate.results[{i}]"
        _obj(r, where)
        _str(r, "check_id", where)
        if r.get("status") not in RESULT_STATUSES:
            raise _fail(f"{where}.status", f"must be one of {', '.join(RESULT_STATUSES)}")
    if p["verdict"] not in VERDICTS:
        raise _fail("predicate.verdict", f"must be one of {', '.join(VERDICTS)}")
    seq = p["sequence"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1 or seq > MAX_SEQUENCE:
        raise _fail("predicate.sequence", f"must be an integer from 1 to 2^62 ({MAX_SEQUENCE})")
    if parse_time(p["generated_at"]) is None:
        raise _fail("predicate.generated_at", "must be an ISO-8601 timestamp with a time zone")
    for key in PREDICATE_OPTIONAL:
        if key in p and p[key] is not None and not isinstance(p[key], dict):
            raise _fail(f"predicate.{key}", "must be an object or null")


# ------------------------------------------------------------------ signed policies


def sign_policy(yaml_bytes: bytes, private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """A DSSE envelope (payloadType POLICY_PAYLOAD_TYPE) over the policy YAML bytes."""
    if isinstance(yaml_bytes, str):
        yaml_bytes = yaml_bytes.encode("utf-8")
    return _sign(POLICY_PAYLOAD_TYPE, yaml_bytes, private_key)


def decode_policy_envelope(envelope: Any) -> tuple[bytes, tuple[str, ...]]:
    """(yaml bytes, keyids) of a signed policy, shape checked but NOT verified."""
    _, payload, sigs = _decode_dsse(envelope, POLICY_PAYLOAD_TYPE)
    return payload, tuple(k for k, _ in sigs)


def verify_policy(envelope: Any, public_key: Ed25519PublicKey) -> bytes:
    """Verify a signed policy against the organisation's public key; returns the YAML bytes."""
    payload_type, payload, sigs = _decode_dsse(envelope, POLICY_PAYLOAD_TYPE)
    _verify_sigs(payload_type, payload, sigs, public_key)
    return payload


def payload_sha256(envelope: dict[str, Any]) -> str:
    """Hex sha256 of an envelope's decoded payload (the policy ETag, a report's content digest)."""
    return hashlib.sha256(b64decode(envelope.get("payload"), "envelope.payload")).hexdigest()


# ------------------------------------------------------------------ other signed payloads


def sign_payload(payload_type: str, payload: bytes, private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """A DSSE envelope of another payload type signed with the device key (e.g. the TLS
    key registration of auditagent.tls_request)."""
    return _sign(payload_type, payload, private_key)


def open_payload(envelope: Any, payload_type: str, public_key: Ed25519PublicKey, *,
                 expected_keyid: str | None = None) -> bytes:
    """Verify a DSSE envelope of ``payload_type`` signed by ``public_key``; its payload."""
    ptype, payload, sigs = _decode_dsse(envelope, payload_type)
    _verify_sigs(ptype, payload, sigs, public_key, expected_keyid)
    return payload


def envelope_signatures(envelope: Any, payload_type: str) -> tuple[bytes, tuple[tuple[str, bytes], ...]]:
    """(payload, ((keyid, raw signature), ...)) of a DSSE envelope of ``payload_type``,
    shape checked, NOT verified."""
    _, payload, sigs = _decode_dsse(envelope, payload_type)
    return payload, sigs


def envelope_keyids(envelope: Any, payload_type: str) -> tuple[bytes, tuple[str, ...]]:
    """(payload, keyids) of a DSSE envelope of ``payload_type``, shape checked, NOT verified."""
    _, payload, sigs = _decode_dsse(envelope, payload_type)
    return payload, tuple(k for k, _ in sigs)


# ------------------------------------------------------------------ re-keying


def sign_rekey(device_id: str, new_public_key: Ed25519PublicKey, current_key: Ed25519PrivateKey,
               issued_at: str | None = None) -> dict[str, Any]:
    """Proof that the holder of a device's *current* key asks to replace it with
    ``new_public_key``: a DSSE envelope (payloadType :data:`REKEY_PAYLOAD_TYPE`) over
    ``{"device_id", "new_keyid", "issued_at"}``, signed with the current key. Bound to
    the new key, so a copied proof can only install that key, whose private half the
    copier does not hold."""
    body = {"device_id": device_id, "new_keyid": keyid(new_public_key), "issued_at": issued_at or now_iso()}
    return _sign(REKEY_PAYLOAD_TYPE, canonical_json(body), current_key)


def verify_rekey(proof: Any, *, device_id: str, new_keyid: str, current_key: Ed25519PublicKey,
                 now: dt.datetime, max_skew: dt.timedelta) -> None:
    """ReportError('bad_rekey_proof') unless ``proof`` is :func:`sign_rekey`'s envelope
    for this device and new key, signed by ``current_key``, issued within ``max_skew``."""
    try:
        payload_type, payload, sigs = _decode_dsse(proof, REKEY_PAYLOAD_TYPE)
        _verify_sigs(payload_type, payload, sigs, current_key)
        body = strict_loads(payload, "rekey proof")
    except ReportError as exc:
        raise ReportError("bad_rekey_proof", exc.message) from None
    if not isinstance(body, dict) or body.get("device_id") != device_id or body.get("new_keyid") != new_keyid:
        raise ReportError("bad_rekey_proof", "the proof is for another device or another new key")
    issued = parse_time(body.get("issued_at"))
    if issued is None or abs(issued - now) > max_skew:
        raise ReportError("bad_rekey_proof", f"issued_at must be within {max_skew} of the collector's clock "
                                             f"{now.isoformat()}")
