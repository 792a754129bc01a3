"""Agent commands, one module each; shared bits for their parsers."""
from __future__ import annotations

import argparse
from pathlib import Path


class CommandError(Exception):
    """A failure the person can act on; printed without a traceback, exit 2."""


def add_common(p: argparse.ArgumentParser) -> None:
    """Options every agent command takes."""
    p.add_argument("--config", metavar="FILE",
                   help="agent config file (default: per OS, or $AUDITAGENT_HOME/agent.yaml)")
    # Test-only: run against a captured machine instead of this one.
    p.add_argument("--replay-host", metavar="MANIFEST", help=argparse.SUPPRESS)


def optional_module(name: str):
    """A command module that may not exist in this build (None then)."""
    import importlib
    import importlib.util

    full = f"auditagent.commands.{name}"
    return importlib.import_module(full) if importlib.util.find_spec(full) else None


def host_from_args(args: argparse.Namespace):
    if getattr(args, "replay_host", None):
        from auditagent.host_replay import load_replay_host

        return load_replay_host(args.replay_host)
    from auditagent.host import RealHost

    return RealHost()


def agent_paths(args: argparse.Namespace):
    from auditagent.paths import default_paths

    paths = default_paths()
    if getattr(args, "config", None):
        paths = type(paths)(config=Path(args.config), state=paths.state)
    return paths
