"""``auditagent``: the agent's command line.

Each command lives in ``auditagent/commands/<name>.py`` with ``register(subparsers)``
that adds its parser and sets ``func``. Exit codes: 0 ready/ok, 1 not ready/invalid,
2 error — always with a clear message, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from auditagent import __version__
from auditagent.commands import CommandError, optional_module

COMMANDS = ("check", "policy_cmd", "delivery", "capture", "verify")
# Which module registers each command, so a run imports only the module of the command
# it runs (the hourly `run` need not load the policy tools, `check` not the delivery
# code). A command missing here still works: then every module is registered.
COMMAND_MODULES = {"check": "check", "policy": "policy_cmd", "enroll": "delivery", "run": "delivery",
                   "status": "delivery", "resend": "delivery", "report": "delivery", "keys": "delivery",
                   "capture": "capture", "verify": "verify"}


def _modules_for(argv: Sequence[str] | None) -> tuple[str, ...]:
    args = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in args if not a.startswith("-")), None)
    if first in COMMAND_MODULES and "--version" not in args:
        return (COMMAND_MODULES[first],)
    return COMMANDS


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given the command line, with only the module of its command loaded."""
    parser = argparse.ArgumentParser(prog="auditagent",
                                     description="Remote-work readiness self-check and reporting agent.")
    parser.add_argument("--version", action="version", version=f"auditagent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _modules_for(argv) if argv is not None else COMMANDS:
        module = optional_module(name)
        if module is not None:
            module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"auditagent: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - never a traceback for staff
        print(f"auditagent: internal error: {type(exc).__name__}: {exc}\n"
              "Please tell your IT department; run with AUDITAGENT_DEBUG=1 for details.", file=sys.stderr)
        import os

        if os.environ.get("AUDITAGENT_DEBUG"):
            raise
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
