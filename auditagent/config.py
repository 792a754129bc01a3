"""The agent's config file (``agent.yaml``), written by IT and deployed with the agent.

Every key is validated on the YAML nodes (auditagent.schema), so a mistake is
reported as ``file:line: field: what is wrong`` with the nearest valid key for a
typo. The file is optional: without it the agent self-checks against the shipped
policy and can still be enrolled from the command line.

Example::

    server: https://audit.example.org          # the collector (enrolment may set it too)
    ca_bundle: /etc/auditagent/ca.pem          # trust this CA for the collector
    # pinned_sha256: 9f86d0…                   # or pin the collector's certificate
    policy_public_key: /etc/auditagent/policy-signing.pub.pem
    spool_max_reports: 500
    spool_max_bytes: 50 MiB
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from auditagent.schema import (F, Bool, Ctx, Enum, Map, Problem, Scalar, SchemaError, Str, compose,
                               find_node, node_line)

DEFAULT_SPOOL_MAX_REPORTS = 500
DEFAULT_SPOOL_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_SEND_TIMEOUT = 30.0
DEFAULT_SEND_ATTEMPTS = 5
DEFAULT_SEND_MAX_DELAY = 300.0


class ConfigError(SchemaError):
    """The agent config cannot be used; ``problems`` name file, line and field."""


def _url(v: Any) -> str | None:
    parts = urlsplit(v)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "expected a URL such as https://audit.example.org"
    return None


def _pin(v: Any) -> str | None:
    return None if re.fullmatch(r"[0-9a-fA-F]{64}", normalise_pin(v)) else \
        "expected the sha256 of the server's DER certificate: 64 hex digits (colons allowed)"


def normalise_pin(value: str) -> str:
    return value.replace(":", "").replace(" ", "").strip().lower()


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.I)
_UNITS = {None: 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3, "gib": 1024**3}


def parse_size(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = _SIZE.match(str(value))
    if not m:
        return None
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower() or None])


def _size(v: Any) -> str | None:
    n = parse_size(v)
    if n is None:
        return "expected a size in bytes, or with a unit such as 50 MiB"
    return "must be at least 64 KiB" if n < 64 * 1024 else None


Url = Scalar((str,), "a URL", _url)
Pin = Scalar((str,), "a sha256 fingerprint", _pin)
Size = Scalar((int, str), "a size", _size)
PositiveInt = Scalar((int,), "a whole number ≥ 1", lambda v: "must be ≥ 1" if v < 1 else None)
Seconds = Scalar((int, float), "a number of seconds", lambda v: "must be > 0" if v <= 0 else None)

CONFIG_FIELDS = {
    "server": F(Url, doc="collector URL, e.g. https://audit.example.org"),
    "ca_bundle": F(Str, doc="PEM file of CA certificates to trust for the collector (instead of the system's)"),
    "pinned_sha256": F(Pin, doc="trust exactly this server certificate (sha256 of its DER form)"),
    "insecure_http": F(Bool, default=False, doc="allow plain http to a non-loopback collector (never in production)"),
    "policy_public_key": F(Str, doc="the organisation's policy-signing public key: PEM text or a PEM file"),
    "policy": F(Str, doc="a local policy file to use instead of the collector's"),
    "unit": F(Str, doc="unit hint sent at enrolment"),
    "spool_max_reports": F(PositiveInt, default=DEFAULT_SPOOL_MAX_REPORTS,
                           doc="reports kept while the collector is unreachable"),
    "spool_max_bytes": F(Size, default=DEFAULT_SPOOL_MAX_BYTES, doc="size cap of the outbox, e.g. 50 MiB"),
    "send_timeout": F(Seconds, default=DEFAULT_SEND_TIMEOUT, doc="seconds per HTTP request"),
    "send_attempts": F(PositiveInt, default=DEFAULT_SEND_ATTEMPTS, doc="tries per report in one run"),
    "send_max_delay": F(Seconds, default=DEFAULT_SEND_MAX_DELAY, doc="longest wait between tries (seconds)"),
    "log_format": F(Enum("keyvalue", "json"), default="keyvalue"),
}


@dataclass(frozen=True)
class AgentConfig:
    """agent.yaml, validated: the collector, trust settings, policy and delivery options."""

    source: str = "<defaults>"
    base: Path = field(default_factory=Path.cwd)  # relative paths are relative to the config file
    server: str | None = None
    ca_bundle: Path | None = None
    pinned_sha256: str | None = None
    insecure_http: bool = False
    policy_public_key: str | None = None
    policy: Path | None = None
    unit: str | None = None
    spool_max_reports: int = DEFAULT_SPOOL_MAX_REPORTS
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES
    send_timeout: float = DEFAULT_SEND_TIMEOUT
    send_attempts: int = DEFAULT_SEND_ATTEMPTS
    send_max_delay: float = DEFAULT_SEND_MAX_DELAY
    log_format: str = "keyvalue"
    lines: dict[str, int] = field(default_factory=dict)  # field → line, for later errors

    def where(self, key: str) -> str:
        line = self.lines.get(key)
        return f"{self.source}:{line}: {key}" if line else f"{self.source}: {key}"

    def policy_key(self):
        """The organisation's policy public key, or None if not configured. ConfigError
        (naming file:line) if it is configured but unusable."""
        if not self.policy_public_key:
            return None
        from auditagent.keys import KeyProblem, load_public_key

        try:
            return load_public_key(self.policy_public_key, self.base, where=self.where("policy_public_key"))
        except KeyProblem as exc:
            msg = str(exc)
            prefix = self.where("policy_public_key")
            raise ConfigError([Problem(self.source, self.lines.get("policy_public_key"), "policy_public_key",
                                       msg[len(prefix) + 2:] if msg.startswith(prefix) else msg)]) from None


def _resolve(base: Path, value: str | None) -> Path | None:
    if not value:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _validated(text: str, filename: str) -> tuple[dict[str, Any], dict[str, int]] | None:
    """The file's values (defaults filled in) and the line of each given key; None for an
    empty file. ConfigError naming file, line and field if any value is wrong."""
    try:
        root = compose(text, filename)
    except SchemaError as exc:
        raise ConfigError(exc.problems) from None
    if root is None:
        return None
    ctx = Ctx(filename)
    values = Map(CONFIG_FIELDS).check(root, "", ctx)
    if ctx.problems or values is None:
        raise ConfigError(ctx.problems)
    return values, {k: node_line(find_node(root, k)) or 0 for k in values if find_node(root, k) is not None}


# The hourly run reads the same agent.yaml every time: its validated values are kept in the
# agent's owner-only cache folder, looked up by the digest of the file's text, its path and
# the code that validated it (auditagent/code_stamp.py), so neither yaml nor the schema check
# runs again until the file or the agent changes. The folder is the state folder's, whose
# enrolment record (collector, CA, pin) is trusted the same way; an entry whose body does not
# match its digest (a damaged file) is made again from the file.
KEPT_FILE = "agent-config.parsed.json"


def _digest(*parts: str) -> str:
    import hashlib

    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def _validated_kept(text: str, filename: str, base: Path,
                    keep_in: Path | None) -> tuple[dict[str, Any], dict[str, int]] | None:
    if keep_in is None:
        return _validated(text, filename)
    import json

    from auditagent import schema
    from auditagent.code_stamp import code_stamp

    key = _digest(code_stamp([Path(__file__), Path(schema.__file__)]), filename, str(base), text)
    try:
        entry = json.loads((keep_in / KEPT_FILE).read_bytes())
        if entry["key"] == key and entry["sha256"] == _digest(entry["body"]):
            values, lines = json.loads(entry["body"])
            if isinstance(values, dict) and isinstance(lines, dict):
                return values, lines
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none kept yet, or damaged: validate the file
    found = _validated(text, filename)
    body = json.dumps(found)
    if found is not None and json.loads(body) == list(found):  # JSON gives back the same values
        from auditagent.durable import atomic_write, ensure_dir

        try:
            atomic_write(ensure_dir(keep_in, 0o700) / KEPT_FILE,
                         json.dumps({"key": key, "body": body, "sha256": _digest(body)}).encode("utf-8"), mode=0o600)
        except OSError:
            pass  # validated again next time
    return found


def parse_config(text: str, filename: str, base: Path | None = None, keep_in: Path | None = None) -> AgentConfig:
    """``keep_in``: a folder where the validated values may be kept for the next run."""
    base = base or Path(filename).resolve().parent
    found = _validated_kept(text, filename, base, keep_in)
    if found is None:
        return AgentConfig(source=filename, base=base)
    values, lines = found
    try:
        return _built(values, lines, filename, base)
    except (KeyError, TypeError, ValueError):
        if keep_in is None:
            raise
        return parse_config(text, filename, base)  # a kept entry that does not fit: validate the file


def _built(values: dict[str, Any], lines: dict[str, int], filename: str, base: Path) -> AgentConfig:
    ca = _resolve(base, values.get("ca_bundle"))
    if ca is not None and not ca.is_file():
        raise ConfigError([Problem(filename, lines.get("ca_bundle"), "ca_bundle", f"no such file: {ca}")])
    if values.get("ca_bundle") and values.get("pinned_sha256"):
        raise ConfigError([Problem(filename, lines.get("pinned_sha256"), "pinned_sha256",
                                   "give either ca_bundle or pinned_sha256, not both")])
    return AgentConfig(
        source=filename, base=base, server=(values.get("server") or None) and values["server"].rstrip("/"),
        ca_bundle=ca,
        pinned_sha256=normalise_pin(values["pinned_sha256"]) if values.get("pinned_sha256") else None,
        insecure_http=bool(values.get("insecure_http")),
        policy_public_key=values.get("policy_public_key"),
        policy=_resolve(base, values.get("policy")), unit=values.get("unit"),
        spool_max_reports=values["spool_max_reports"], spool_max_bytes=parse_size(values["spool_max_bytes"]) or 0,
        send_timeout=float(values["send_timeout"]), send_attempts=values["send_attempts"],
        send_max_delay=float(values["send_max_delay"]), log_format=values["log_format"], lines=lines)


def load_config(path: Path, required: bool = False, keep_in: Path | None = None) -> AgentConfig:
    """The config at ``path``; defaults if it does not exist and ``required`` is false
    (``--config FILE`` makes it required). ``keep_in``: see parse_config."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ConfigError([Problem(str(path), None, "", "no such config file")]) from None
        return AgentConfig(source=str(path), base=path.parent)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), None, "", f"cannot read the config: {exc}")]) from None
    return parse_config(text, str(path), base=path.resolve().parent, keep_in=keep_in)


__all__ = ["AgentConfig", "ConfigError", "load_config", "parse_config", "normalise_pin", "parse_size"]
