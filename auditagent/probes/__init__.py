"""Probes gather facts; policies judge them.

Every probe is declared here (osquery's way: what it answers, readable without the
code) and implemented in one package per concern, one module per OS beside the parsers
it uses (``disk_encryption/linux.py``, ``disk_encryption/windows.py``,
``disk_encryption/windows_bitlocker.py`` …), each OS module with ``probe(ctx)``.
``sources/`` holds what several concerns of one OS read (the PowerShell snapshot, the
registry). A probe returns a JSON-able dict, its *section* of the fact tree. Conventions every section follows (docs/facts.md):

* ``status``: ``ok`` (everything asked was seen), ``partial`` (some values are
  ``None``), ``unknown`` (nothing could be seen) or ``not_applicable``;
* ``reasons``: coded strings saying why something is unknown (``tool.not_found:
  fdesetup``; auditagent/reasons.py, translated for staff) — never a guess dressed as a value;
* a value of ``None`` means *not seen*. A probe never reports a pass it did not see.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from auditagent.host import Host
from auditagent.reasons import reason


@dataclass(frozen=True)
class ProbeSpec:
    """One probe: the fact section it fills, its module and the platforms it runs on."""

    name: str
    module: str
    summary: str
    platforms: tuple[str, ...] = ("linux", "windows", "macos")


# The declarations. The package named holds one module per platform, each with probe(ctx).
PROBES: dict[str, ProbeSpec] = {
    spec.name: spec
    for spec in (
        ProbeSpec("os", "os_info", "OS name, version, build, kernel; whether the vendor still supports it"),
        ProbeSpec("disk", "disk_encryption", "volumes holding the system, home, other fixed data and swap, and whether each is encrypted"),
        ProbeSpec("patches", "patches", "when OS updates were last installed, pending (security) updates, reboot pending"),
        ProbeSpec("cloud", "cloud_storage", "file-sync clients installed or running, and the account/tenant/server each is tied to"),
        ProbeSpec("firewall", "firewall", "whether a host firewall actually filters inbound traffic"),
        ProbeSpec("screen_lock", "screen_lock", "whether the screen locks by itself, and after how many idle seconds"),
        ProbeSpec("antimalware", "antimalware", "real-time malware protection and signature age", ("windows",)),
    )
}


class Cache:
    """Small JSON file cache for slow queries (package managers). Entries say when
    they were made, so facts can state their age and lifetime."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def get_or_compute(self, key: str, ttl: float, compute: Callable[[], Any],
                       now: float | None = None, inputs: str | None = None) -> tuple[Any, dict[str, Any]]:
        """Returns (value, meta) with meta = {cached_at, cache_ttl_seconds, from_cache}.
        ``now``: the host's clock (a replayed machine's time), else this machine's. With
        ``inputs`` (a digest of what the value depends on), the entry is reused for as
        long as the digest is unchanged and recomputed as soon as it changes; without
        it, for ``ttl`` seconds."""
        now = time.time() if now is None else now
        path = self.directory / f"{key}.json" if self.directory else None
        if path is not None and path.is_file():
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
                fresh = entry.get("inputs") == inputs if inputs is not None else now - float(entry["cached_at"]) < ttl
                if fresh:
                    return entry["value"], {"cached_at": _iso(entry["cached_at"]), "cache_ttl_seconds": int(ttl),
                                            "from_cache": True}
            except (ValueError, KeyError, OSError):
                pass  # a damaged cache entry is recomputed, never trusted
        value = compute()
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps({"cached_at": now, "value": value, "inputs": inputs}), encoding="utf-8")
                os.replace(tmp, path)
            except OSError:
                pass
        return value, {"cached_at": _iso(now), "cache_ttl_seconds": int(ttl), "from_cache": False}

    def load(self, key: str) -> Any:
        path = self.directory / f"{key}.json" if self.directory else None
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path else None
        except (OSError, ValueError):
            return None

    def store(self, key: str, value: Any) -> None:
        if not self.directory:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.directory / f"{key}.tmp"
            tmp.write_text(json.dumps(value), encoding="utf-8")
            os.replace(tmp, self.directory / f"{key}.json")
        except OSError:
            pass


def _iso(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class ProbeContext:
    """What a probe is given: the Host seam and the agent's input-keyed cache."""

    host: Host
    cache: Cache = field(default_factory=lambda: Cache(None))
    # Parameters a policy passes down (e.g. approved cloud servers are not needed here:
    # probes stay policy-free). Kept for per-run options such as "no network".
    options: dict[str, Any] = field(default_factory=dict)


def unknown(reason: str, **extra: Any) -> dict[str, Any]:
    return {"status": "unknown", "reasons": [reason], **extra}


def not_applicable(name: str) -> dict[str, Any]:
    """The section of a check that does not apply to this OS."""
    return {"status": "not_applicable", "reasons": [reason("not_checked_here", name)]}


def section_status(values: Iterable[Any], reasons: list[str]) -> str:
    """``ok`` when every core value was seen, ``unknown`` when none was, else ``partial``.
    A reason alone (e.g. a fallback that was needed) does not lower ``ok``: the values decide."""
    seen = [v is not None for v in values]
    if seen and all(seen):
        return "ok"
    if any(seen):
        return "partial"
    return "unknown"


def run_probe(name: str, ctx: ProbeContext) -> dict[str, Any]:
    """One section of facts. A probe that raises is reported as unknown, never as pass."""
    spec = PROBES[name]
    platform = ctx.host.platform
    if platform not in spec.platforms:
        return not_applicable(name)
    module_name = f"auditagent.probes.{spec.module}.{platform}"
    if importlib.util.find_spec(module_name) is None:
        return unknown(reason("probe.none", name))
    fn = importlib.import_module(module_name).probe
    try:
        section = fn(ctx)
    except Exception as exc:  # noqa: BLE001 - a probe bug must not become a pass
        return unknown(reason("probe.failed", name, f"{type(exc).__name__}: {exc}"))
    section.setdefault("status", "ok")
    section.setdefault("reasons", [])
    return section


def collect(ctx: ProbeContext, sections: list[str] | None = None) -> dict[str, Any]:
    """Facts for the sections asked for (all by default), plus when and where they were seen."""
    names = sections if sections is not None else list(PROBES)
    facts: dict[str, Any] = {
        "collected_at": ctx.host.now().isoformat(timespec="seconds"),
        "platform": ctx.host.platform,
    }
    for name in names:
        facts[name] = run_probe(name, ctx)
    return facts
