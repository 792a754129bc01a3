"""``auditagent policy …``: validate (and, with delivery, sign) policies."""
from __future__ import annotations

import argparse
import sys

from auditagent.commands import add_common, optional_module
from auditagent.policy import PolicyError, validate_files


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("policy", help="validate or sign policy files")
    psub = p.add_subparsers(dest="policy_command", metavar="ACTION")
    psub.required = True
    v = psub.add_parser("validate", help="check policy files; exit 0 if all are valid, 1 otherwise")
    add_common(v)
    v.add_argument("files", nargs="+", metavar="FILE")
    v.set_defaults(func=validate)
    policy_sign = optional_module("policy_sign")
    if policy_sign is not None:
        policy_sign.register(psub)


def validate(args: argparse.Namespace) -> int:
    bad = 0
    for path, outcome in validate_files(args.files):
        if isinstance(outcome, PolicyError):
            bad += 1
            print(f"✘ {path}: {len(outcome.problems)} problem(s)", file=sys.stderr)
            for problem in outcome.problems:
                print(f"  {problem}", file=sys.stderr)
        else:
            print(f"✔ {path}: {outcome.id} {outcome.version}, {len(outcome.checks)} checks, sha256 {outcome.digest}")
    return 1 if bad else 0
