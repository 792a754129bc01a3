"""Where the agent keeps its config and state on each OS.

``AUDITAGENT_HOME`` moves everything (config, keys, policy cache, spool, probe
cache) into one folder — for tests and per-user installs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from auditagent.host import current_platform


@dataclass(frozen=True)
class AgentPaths:
    """Where this agent keeps its config and its state."""

    config: Path  # the IT-provided agent.yaml
    state: Path  # keys, enrolment, spool, caches: owner-only

    @property
    def cache(self) -> Path:
        return self.state / "cache"

    @property
    def keys(self) -> Path:
        return self.state / "keys"

    @property
    def spool(self) -> Path:
        return self.state / "spool"

    @property
    def policy_cache(self) -> Path:
        return self.state / "policy"


def default_paths(env: dict[str, str] | None = None, platform: str | None = None) -> AgentPaths:
    env = dict(os.environ) if env is None else env
    home = env.get("AUDITAGENT_HOME")
    if home:
        base = Path(home)
        return AgentPaths(config=base / "agent.yaml", state=base)
    platform = platform or current_platform()
    if platform == "windows":
        base = Path(env.get("ProgramData", r"C:\ProgramData")) / "auditagent"
        return AgentPaths(config=base / "agent.yaml", state=base / "state")
    if platform == "macos":
        base = Path("/Library/Application Support/auditagent")
        return AgentPaths(config=base / "agent.yaml", state=base / "state")
    if os.geteuid() == 0 if hasattr(os, "geteuid") else False:
        return AgentPaths(config=Path("/etc/auditagent/agent.yaml"), state=Path("/var/lib/auditagent"))
    # A person running the self-check without root keeps a per-user cache.
    xdg = Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return AgentPaths(config=Path("/etc/auditagent/agent.yaml"), state=xdg / "auditagent")
