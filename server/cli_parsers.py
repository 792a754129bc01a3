"""The shapes every ``auditagent-collector`` subcommand parser takes (server/cli.py and the
command modules it adds: server/ca_cli.py, server/retention_cli.py): a COMMAND with its
ACTIONs, one of which is required, and an ACTION that runs one function."""
from __future__ import annotations

import argparse
from typing import Callable, Sequence


def command_group(sub: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """``auditagent-collector NAME ACTION``: the group the ACTIONs are added to."""
    group = sub.add_parser(name, help=help).add_subparsers(dest=f"{name.replace('-', '_')}_command",
                                                           metavar="ACTION")
    group.required = True
    return group


def action(group: argparse._SubParsersAction, name: str, func: Callable[[argparse.Namespace], int], help: str,
           parents: Sequence[argparse.ArgumentParser] = (), **defaults: object) -> argparse.ArgumentParser:
    """An ACTION of ``group`` that runs ``func(args)``, with the options of ``parents``."""
    p = group.add_parser(name, parents=list(parents), help=help)
    p.set_defaults(func=func, **defaults)
    return p
