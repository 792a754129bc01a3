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

COMMANDS = ("check", "policy_cmd", "delivery", "capture")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auditagent",
                                     description="Remote-work readiness self-check and reporting agent.")
    parser.add_argument("--version", action="version", version=f"auditagent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        module = optional_module(name)
        if module is not None:
            module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
