"""Sources every machine of an OS certainly has, so an unknown there is our bug, not the
machine's: Windows always has hot fixes with dates, BitLocker status (the feature may be
off, never unreadable to an administrator), firewall profiles and a version; a Mac always
has FileVault status, the application firewall, install history and a version.

CI runs ``auditagent check --json`` on real Windows and macOS runners and then
``python -m auditagent.probes.certain facts.json``, which fails on any of these unknown.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

Getter = Callable[[dict[str, Any]], Any]


def _system_encrypted(facts: dict[str, Any]) -> Any:
    vols = [v for v in (facts.get("disk") or {}).get("volumes") or [] if v.get("role") == "system"]
    return vols[0].get("state") if vols and all(v.get("state") is not None for v in vols) else None


def _get(section: str, key: str) -> Getter:
    return lambda facts: (facts.get(section) or {}).get(key)


CERTAIN: dict[str, dict[str, Getter]] = {
    "windows": {
        "patches.last_update (QFE InstalledOn dates)": _get("patches", "last_update"),
        "disk system volume state (BitLocker)": _system_encrypted,
        "firewall.profiles": lambda f: (f.get("firewall") or {}).get("profiles") or None,
        "os.version": _get("os", "version"),
        "os.build": _get("os", "build"),
    },
    "macos": {
        "disk system volume state (FileVault)": _system_encrypted,
        "firewall.enabled": _get("firewall", "enabled"),
        "patches.last_update (InstallHistory.plist)": _get("patches", "last_update"),
        "os.version": _get("os", "version"),
        "os.build": _get("os", "build"),
    },
}


def missing(facts: dict[str, Any]) -> list[str]:
    """What this OS certainly has and the facts do not show (with the section's reasons)."""
    out = []
    for label, get in CERTAIN.get(str(facts.get("platform")), {}).items():
        if get(facts) is None:
            section = facts.get(label.split(".")[0].split(" ")[0], {})
            reasons = "; ".join((section or {}).get("reasons") or []) if isinstance(section, dict) else ""
            out.append(f"{label}: unknown" + (f" ({reasons})" if reasons else ""))
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m auditagent.probes.certain CHECK_JSON", file=sys.stderr)
        return 2
    data = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    facts = data.get("facts", data)  # `check --json` output, or bare facts
    gaps = missing(facts)
    for gap in gaps:
        print(f"{facts.get('platform')}: {gap}")
    if facts.get("platform") not in CERTAIN:
        print(f"no certain sources declared for {facts.get('platform')!r}", file=sys.stderr)
        return 2
    return 1 if gaps else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
