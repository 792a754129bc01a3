"""``auditagent capture --out DIR``: this machine as a replay-host folder (a new fixture)."""
from __future__ import annotations

import argparse
from pathlib import Path

from auditagent.commands import CommandError, add_common


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("capture", help="record what the checks read on this machine, personal data redacted",
                       description="Record every command output, file and registry value the checks read on "
                                   "this machine into DIR, with user names, host name, e-mail addresses, serial "
                                   "numbers (and tenant ids with --redact-tenants) replaced. Replay it with "
                                   "`auditagent check --replay-host DIR/host.yaml`. DIR/REDACTED.md lists "
                                   "what was replaced.")
    add_common(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write (must be empty or new)")
    p.add_argument("--redact-tenants", action="store_true", help="also replace Entra ID / Dropbox tenant ids")
    p.add_argument("--personal", action="append", default=[], metavar="TEXT",
                   help="a further value to replace everywhere (a name, a department); repeatable")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from auditagent.capture import capture
    from auditagent.commands import host_from_args

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise CommandError(f"{out} is not empty: give a new or empty folder")
    _facts, red = capture(host_from_args(args), out, redact_tenants=args.redact_tenants,
                          extra_personal=args.personal)
    kinds = sorted({k for k in red.kinds.values()})
    print(f"Captured into {out} ({len(red.kinds)} value(s) redacted: {', '.join(kinds) or 'none'}; see "
          f"{out / 'REDACTED.md'}).")
    print(f"Replay: auditagent check --replay-host {out / 'host.yaml'}")
    return 0
