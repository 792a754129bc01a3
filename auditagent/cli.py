"""``auditagent``: the agent's command line.

Each command lives in ``auditagent/commands/<name>.py`` with ``register(subparsers)``
that adds its parser and sets ``func``. Exit codes: 0 ready/ok, 1 not ready/invalid,
2 error — always with a clear message, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn, Sequence

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
        if os.environ.get("AUDITAGENT_DEBUG"):
            raise
        return 2


def leave(code: int) -> NoReturn:
    """End this process with ``code`` without the interpreter's teardown. Freeing every
    module and object at exit cost the hourly run about a sixth of its CPU (50-60 ms on a
    busy 2-core machine) for a process that is ending anyway. What teardown does that
    matters runs first: the exit handlers (logging's flush among them) and flushing stdout
    and stderr (a scheduled run's log file). Everything the agent keeps is written, fsynced
    and closed before a command returns. With another thread still running, a flush that
    fails, or a Python without ``atexit._run_exitfuncs`` (CPython's, not a public API; it
    has been there since 3.0), the ordinary exit decides, as it would have."""
    import atexit
    import threading

    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if threading.active_count() == 1 and callable(run_exit_handlers):
        try:
            run_exit_handlers()
            for stream in (sys.stdout, sys.stderr):
                if stream is not None:
                    stream.flush()
        except Exception:  # noqa: BLE001 - e.g. a closed pipe: Python's own exit reports it
            sys.exit(code)
        os._exit(code)
    sys.exit(code)


def short_lived_process() -> None:
    """For a process that runs one command and ends: no cyclic garbage collection. Reference
    counting frees nearly everything at once, what is left goes with the process, and the
    collector's passes over the ~200 modules a run imports cost it 15-20 ms of CPU."""
    import gc

    gc.disable()


def console() -> NoReturn:
    """The ``auditagent`` command (and ``python -m auditagent.cli``)."""
    short_lived_process()
    leave(main())


if __name__ == "__main__":  # pragma: no cover
    console()
