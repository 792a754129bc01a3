"""Helpers for the Windows/macOS probe tests (not a test module)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from auditagent.host import ReplayHost
from auditagent.probes.sources.windows_snapshot import ARGV

PS_ARGV = list(ARGV[:-1]) + ["*"]


def windows_host(snapshot: dict[str, Any] | bytes | Path | None = None, **kw: Any) -> ReplayHost:
    """A Windows ReplayHost whose one PowerShell run answers ``snapshot``."""
    host = ReplayHost(platform="windows", **kw)
    if snapshot is not None:
        if isinstance(snapshot, dict):
            snapshot = json.dumps(snapshot).encode()
        host.add_command(PS_ARGV, snapshot)
    return host


def uncomment(text: str) -> str:
    """A capture that stands in a script's comment: undo exactly its "# " / "#" per line."""
    return "\n".join(line[2:] if line.startswith("# ") else line[1:] if line.startswith("#") else line
                     for line in text.splitlines())
