"""The organisation's policy, signed: fetched from the collector, verified, cached.

The collector serves each unit's current policy as a DSSE envelope signed with the
organisation's policy key (``auditagent policy sign``), with an ETag. ``auditagent
run`` fetches it (``If-None-Match`` with the cached ETag), verifies it against
``policy_public_key`` from agent.yaml and caches the *verified envelope* in
``<state>/policy/``. An unsigned or altered policy is refused with a clear error and
is reported to the collector as a failed integrity check; the report is then judged
by the last good cached policy (or the shipped one), so the security officer still
hears from the device.

``auditagent check`` never touches the network: it uses the cached policy, verified
again on every load (a cache edited on disk is refused, not trusted).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditagent.durable import atomic_write, ensure_dir, remove_durably
from auditagent.policy import Policy, PolicyError, Problem, load_policy, parse_policy, shipped_policy_dir

ENVELOPE_FILE = "current.signed.json"
META_FILE = "meta.json"


@dataclass
class PolicyOutcome:
    """Which policy judges this run, where it came from and what went wrong fetching it."""

    policy: Policy | None  # None: use the shipped default
    source: str  # local | collector | cache | shipped
    integrity: dict[str, Any] | None = None  # set when a policy failed verification
    notes: list[str] = field(default_factory=list)


def _policy_dir(paths: Any) -> Path:
    return Path(paths.policy_cache)


def _parse_verified(yaml_bytes: bytes, where: str) -> Policy:
    try:
        text = yaml_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError([Problem(where, None, "", "the signed policy is not UTF-8 text")]) from None
    return parse_policy(text, where, base=shipped_policy_dir())


def verify_policy_envelope(envelope: Any, public_key: Any, where: str, *, seal: bytes | None = None,
                           parsed_dir: Path | None = None) -> tuple[Policy, bytes]:
    """Verify a signed policy and parse it. PolicyError naming ``where`` if the
    signature or the policy is bad (``problems[0].field`` is 'signature' for the former).
    With ``seal`` and ``parsed_dir``, the parse of this verified payload is reused from
    (and kept in) the sealed parsed-policy cache (auditagent.policy_parsed)."""
    from auditagent.report import ReportError, verify_policy

    try:
        yaml_bytes = verify_policy(envelope, public_key)
    except ReportError as exc:
        raise PolicySignatureError(where, exc.code, exc.message) from None
    if seal is None or parsed_dir is None:
        return _parse_verified(yaml_bytes, where), yaml_bytes
    from auditagent import policy_parsed

    policy = policy_parsed.load(parsed_dir, yaml_bytes, where, seal)
    if policy is None:
        policy = _parse_verified(yaml_bytes, where)
        policy_parsed.store(parsed_dir, yaml_bytes, where, seal, policy)
    return policy, yaml_bytes


class PolicySignatureError(PolicyError):
    """A policy that is unsigned, signed by another key, or altered after signing."""

    def __init__(self, where: str, code: str, detail: str) -> None:
        self.code, self.detail = code, detail
        super().__init__([Problem(where, None, "signature",
                                  f"refused: the policy is not signed by the organisation's policy key "
                                  f"({code}: {detail}). It may have been altered; tell IT security")])


def load_local_policy(path: Path, public_key: Any) -> Policy:
    """A policy file named in agent.yaml: plain YAML, or a signed envelope (verified if a key is set)."""
    if path.suffix == ".json":
        try:
            envelope = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PolicyError([Problem(str(path), None, "", "no such policy file")]) from None
        except (OSError, ValueError) as exc:
            raise PolicyError([Problem(str(path), None, "", f"not a signed policy (JSON): {exc}")]) from None
        if public_key is None:
            raise PolicyError([Problem(str(path), None, "", "a signed policy needs policy_public_key in agent.yaml "
                                                            "to be verified")])
        return verify_policy_envelope(envelope, public_key, str(path))[0]
    return load_policy(path)


def load_cached(paths: Any, public_key: Any, seal: bytes | None = None) -> Policy | None:
    """The cached organisation policy, its signature verified again; None if there is none.
    ``seal`` (from the device key): reuse its parse from the sealed parsed-policy cache."""
    path = _policy_dir(paths) / ENVELOPE_FILE
    if not path.is_file() or public_key is None:
        return None
    try:
        envelope = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PolicySignatureError(str(path), "malformed_json", f"cannot read the cached policy: {exc}") from None
    return verify_policy_envelope(envelope, public_key, _cached_where(path), seal=seal,
                                  parsed_dir=_policy_dir(paths))[0]


def _cached_where(path: Path) -> str:
    """How the cached copy is named in its problems, checks' sources and parsed-cache key."""
    return f"{path} (the organisation's policy, cached)"


def _keep_parsed(paths: Any, envelope: dict[str, Any], public_key: Any, seal: bytes | None) -> None:
    """Parse the just-stored copy as the next runs load it, and keep that parse sealed: else
    the first hour after a policy change would parse (and import YAML) once more."""
    if seal is None:
        return
    try:
        verify_policy_envelope(envelope, public_key, _cached_where(_policy_dir(paths) / ENVELOPE_FILE), seal=seal,
                               parsed_dir=_policy_dir(paths))
    except PolicyError:  # verified and parsed a moment ago; the next run decides again
        pass


def cached_meta(paths: Any) -> dict[str, Any]:
    try:
        data = json.loads((_policy_dir(paths) / META_FILE).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def store_cache(paths: Any, envelope: dict[str, Any], etag: str | None, policy: Policy, fetched_at: str) -> None:
    d = ensure_dir(_policy_dir(paths), 0o700)
    atomic_write(d / ENVELOPE_FILE, json.dumps(envelope, indent=1).encode("utf-8"), mode=0o600)
    atomic_write(d / META_FILE, json.dumps({"etag": etag, "fetched_at": fetched_at, "policy_id": policy.id,
                                            "version": policy.version, "sha256": policy.digest}).encode("utf-8"))


def clear_cache(paths: Any) -> None:
    from auditagent.policy_parsed import PARSED_FILE

    for name in (ENVELOPE_FILE, META_FILE, PARSED_FILE):
        remove_durably(_policy_dir(paths) / name)


def _config_for(args: Any, paths: Any):
    from auditagent.commands import CommandError
    from auditagent.config import ConfigError, load_config

    try:
        return load_config(paths.config, required=bool(getattr(args, "config", None)))
    except ConfigError as exc:
        raise CommandError("the agent config cannot be used:\n" + "\n".join(f"  {p}" for p in exc.problems)) \
            from None


def organisation_policy(args: Any, paths: Any) -> Policy | None:
    """For ``auditagent check``: agent.yaml's local policy, else the cached verified
    organisation policy, else None (the shipped policy). No network."""
    config = _config_for(args, paths)
    if config.policy is None and not config.policy_public_key:
        return None
    key = _policy_key(config)
    if config.policy is not None:
        return load_local_policy(config.policy, key)
    return load_cached(paths, key)


def _policy_key(config: Any) -> Any:
    from auditagent.config import ConfigError

    try:
        return config.policy_key()
    except ConfigError as exc:
        raise PolicyError(exc.problems) from None


def refresh(*, paths: Any, config: Any, enrollment: Any, client: Any, log: Any, now: str,
            device_key: Any = None) -> PolicyOutcome:
    """For ``auditagent run``: fetch the unit's signed policy (the request signed with
    ``device_key``) and decide which policy judges this report."""
    key = _policy_key(config)
    if config.policy is not None:
        return PolicyOutcome(load_local_policy(config.policy, key), "local")
    if key is None:
        return PolicyOutcome(None, "shipped", notes=["no policy_public_key in agent.yaml: the collector's policy "
                                                     "cannot be verified, so the shipped policy is used"])

    from auditagent.policy_parsed import seal_key

    seal = seal_key(device_key) if device_key is not None else None
    cache_integrity: dict[str, Any] | None = None
    verified: list[Policy | None] = []  # the cached copy, verified once this run (not twice)

    def fallback(integrity: dict[str, Any] | None, note: str) -> PolicyOutcome:
        integrity = integrity or cache_integrity
        try:
            cached = verified[0] if verified else load_cached(paths, key, seal)
        except PolicyError as exc:
            detail = "; ".join(str(p) for p in exc.problems)
            log.error("policy_cache_invalid", detail=detail)
            integrity = integrity or {"policy_signature": "invalid", "source": "cache", "detail": detail}
            cached = None
        if cached is not None:
            return PolicyOutcome(cached, "cache", integrity, [note])
        return PolicyOutcome(None, "shipped", integrity, [note])

    if enrollment is None or client is None or device_key is None:
        return fallback(None, "not fetched (not enrolled or no collector)")
    # A cached copy that no longer verifies (edited on disk) is dropped and fetched anew —
    # and the collector is told, since someone changed the agent's state.
    try:
        verified.append(load_cached(paths, key, seal))
    except PolicyError as exc:
        detail = "; ".join(str(p) for p in exc.problems)[:1000]
        log.error("policy_cache_invalid", detail=detail)
        cache_integrity = {"policy_signature": "invalid", "source": "cache", "detail": detail}
        clear_cache(paths)
        verified.append(None)
    meta = cached_meta(paths)
    etag = meta.get("etag") if (_policy_dir(paths) / ENVELOPE_FILE).is_file() else None
    from auditagent.send import ConnectionProblem, TransportError

    try:
        r = client.get_policy(enrollment.device_id, etag, device_key)
    except (ConnectionProblem, TransportError) as exc:
        log.warning("policy_fetch_failed", error=str(exc))
        return fallback(None, f"collector unreachable, cached policy used ({exc})")
    if r.status == 304:
        return fallback(None, "policy unchanged (304)")
    if r.status == 404:
        code, _ = r.error()
        if code == "no_policy":
            clear_cache(paths)
            return PolicyOutcome(None, "shipped", notes=["the collector has no policy for this unit: shipped "
                                                         "policy used"])
        log.warning("policy_fetch_failed", http_status=r.status, code=code)
        return fallback(None, f"policy fetch failed ({r.status} {code})")
    if r.status == 401:
        # The collector did not take this device's signature (revoked, re-keyed elsewhere,
        # a clock far off): never a reason to trust anything else; the last verified policy judges.
        code, message = r.error()
        log.error("policy_request_refused", http_status=r.status, code=code, message=message)
        return fallback(None, f"the collector refused the signed policy request ({code}: {message})")
    if r.status != 200:
        code, message = r.error()
        log.warning("policy_fetch_failed", http_status=r.status, code=code, message=message)
        return fallback(None, f"policy fetch failed ({r.status} {code})")
    from auditagent.signed_request import policy_path

    where = enrollment.server.rstrip("/") + policy_path(enrollment.device_id)
    envelope = r.json()
    try:
        policy, _ = verify_policy_envelope(envelope, key, where)
    except PolicySignatureError as exc:
        log.error("policy_signature_invalid", code=exc.code, detail=exc.detail, url=where)
        integrity = {"policy_signature": "invalid", "code": exc.code, "detail": exc.detail, "source": "collector",
                     "etag": r.headers.get("etag")}
        return fallback(integrity, f"REFUSED the collector's policy: {exc.problems[0].message}")
    except PolicyError as exc:
        detail = "; ".join(str(p) for p in exc.problems)[:1000]
        log.error("policy_invalid", detail=detail, url=where)
        integrity = {"policy_signature": "valid", "policy": "unusable", "detail": detail, "source": "collector"}
        return fallback(integrity, f"the collector's policy is signed but cannot be used: {detail}")
    store_cache(paths, envelope, r.headers.get("etag"), policy, now)
    _keep_parsed(paths, envelope, key, seal)
    log.info("policy_updated", policy_id=policy.id, version=policy.version, sha256=policy.digest[:16])
    return PolicyOutcome(policy, "collector", cache_integrity)
