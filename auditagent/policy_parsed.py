"""The organisation's policy as parsed and validated, kept beside the verified policy cache
so the hourly run does not parse and validate the same YAML again.

An entry is used only for the policy whose *signature was just verified*: it is looked up
by the sha256 of the verified payload (and of the code and shipped policies that parsing
depends on), and it carries an HMAC under a key derived from the device's private key, so
an entry edited on disk, or written without that key, is recomputed, never trusted. Losing
it costs one parse. The file is 0600 in the owner-only policy folder.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from auditagent.durable import atomic_write, ensure_dir

PARSED_FILE = "current.parsed.json"
FORMAT = 1


def seal_key(device_key: Any) -> bytes:
    """The HMAC key of this device's parsed-policy cache (changes with the device key)."""
    return hashlib.sha256(b"auditagent parsed-policy cache v1\0" + device_key.private_bytes_raw()).digest()


def _code_stamp() -> str:
    """What parsing depends on besides the payload: the agent version, the parser's source
    files and the shipped policies a policy may extend (size and mtime: cheap to read)."""
    from auditagent import kinds, policy, schema
    from auditagent.code_stamp import code_stamp

    files = [Path(m.__file__) for m in (policy, schema, kinds)]  # type: ignore[arg-type]
    shipped = policy.shipped_policy_dir()
    files += sorted(shipped.glob("*.yaml")) if shipped.is_dir() else []
    return code_stamp(files)


def _source_key(payload: bytes, where: str) -> str:
    return hashlib.sha256(hashlib.sha256(payload).digest() + where.encode("utf-8") + b"\0"
                          + _code_stamp().encode("utf-8")).hexdigest()


def _mac(seal: bytes, body: bytes) -> str:
    return hmac.new(seal, body, hashlib.sha256).hexdigest()


def _to_doc(policy: Any) -> dict[str, Any]:
    return {"id": policy.id, "version": policy.version, "title": policy.title, "description": policy.description,
            "settings": policy.settings, "source": policy.source, "extends": list(policy.extends),
            "checks": [{**c.__dict__, "references": list(c.references),
                        "platforms": list(c.platforms) if c.platforms else None} for c in policy.checks]}


def _from_doc(doc: dict[str, Any]) -> Any:
    from auditagent.policy import Check, Policy

    checks = tuple(Check(**{**c, "references": tuple(c["references"]),
                            "platforms": tuple(c["platforms"]) if c["platforms"] else None}) for c in doc["checks"])
    return Policy(id=doc["id"], version=doc["version"], title=doc["title"], description=doc["description"],
                  checks=checks, settings=doc["settings"], source=doc["source"], extends=tuple(doc["extends"]))


def load(directory: Path, payload: bytes, where: str, seal: bytes) -> Any | None:
    """The parsed policy of this verified ``payload``, if a sealed entry for it is kept."""
    try:
        entry = json.loads((Path(directory) / PARSED_FILE).read_bytes())
        body = entry["body"]
        if not hmac.compare_digest(str(entry["mac"]), _mac(seal, body.encode("utf-8"))):
            return None
        doc = json.loads(body)
        if doc.get("format") != FORMAT or doc.get("source") != _source_key(payload, where):
            return None
        policy = _from_doc(doc["policy"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    # The rebuilt policy must be the one that was parsed, down to its digest.
    return policy if policy.digest == doc.get("digest") else None


def store(directory: Path, payload: bytes, where: str, seal: bytes, policy: Any) -> None:
    try:
        body = json.dumps({"format": FORMAT, "source": _source_key(payload, where), "digest": policy.digest,
                           "policy": _to_doc(policy)}, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        return  # a value JSON cannot hold: parse every time
    if _from_doc(json.loads(body)["policy"]) != policy:
        return  # would not come back the same: parse every time
    d = ensure_dir(Path(directory), 0o700)
    atomic_write(d / PARSED_FILE, json.dumps({"mac": _mac(seal, body.encode("utf-8")), "body": body}).encode("utf-8"),
                 mode=0o600)


def clear(directory: Path) -> None:
    from auditagent.durable import remove_durably

    remove_durably(Path(directory) / PARSED_FILE)
