"""``auditagent check``: the staff self-check."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from auditagent.commands import CommandError, add_common
from auditagent.i18n import LANGS, detect_language
from auditagent.policy import Policy, PolicyError, default_policy_path, load_policy


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check this computer against the policy and show what to fix",
                       description="Check this computer and show, in your language, what to fix. "
                                   "Exit 0 ready, 1 not ready, 2 error.")
    add_common(p)
    p.add_argument("--policy", metavar="FILE", help="policy file (default: the organisation's, else the shipped "
                                                   "casework-confidential policy)")
    p.add_argument("--lang", choices=LANGS, help="language (default: from the locale)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="machine-readable output")
    out.add_argument("--html", nargs="?", const="", metavar="FILE",
                     help="write a self-check page (default: in the agent's state folder) and open it")
    p.add_argument("--no-open", action="store_true", help="with --html: do not open the browser")
    p.set_defaults(func=run)


def host_from_args(args: argparse.Namespace):
    if getattr(args, "replay_host", None):
        from auditagent.host import load_replay_host

        return load_replay_host(args.replay_host)
    from auditagent.host import RealHost

    return RealHost()


def resolve_policy(args: argparse.Namespace, paths: Any = None) -> Policy:
    """--policy, else the organisation's verified policy (cached from the collector), else the shipped one."""
    try:
        if getattr(args, "policy", None):
            return load_policy(args.policy)
        try:
            from auditagent.policy_cache import organisation_policy  # delivery: signed policy from the collector
        except ModuleNotFoundError:
            organisation_policy = None
        if organisation_policy is not None and paths is not None:
            policy = organisation_policy(args, paths)
            if policy is not None:
                return policy
        return load_policy(default_policy_path())
    except PolicyError as exc:
        raise CommandError("the policy cannot be used:\n" + "\n".join(f"  {p}" for p in exc.problems)) from None


def agent_paths(args: argparse.Namespace):
    from auditagent.paths import default_paths

    paths = default_paths()
    if getattr(args, "config", None):
        paths = type(paths)(config=Path(args.config), state=paths.state)
    return paths


def selfcheck_page_path(paths: Any) -> Path:
    """Where ``check --html`` writes by default: the agent's state folder when this person
    may write there (root, per-user installs), else their own cache folder — staff on
    Windows and macOS are not administrators, and the machine's state folder is not theirs."""
    state = paths.state
    probe = state if state.is_dir() else state.parent
    if os.access(probe, os.W_OK):
        return state / "selfcheck.html"
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "auditagent" / "selfcheck.html"


def run(args: argparse.Namespace) -> int:
    from auditagent.audit import run_check

    paths = agent_paths(args)
    policy = resolve_policy(args, paths)
    host = host_from_args(args)
    cache = None if getattr(args, "replay_host", None) else paths.cache
    facts, evaluation = run_check(policy, host, cache)
    lang = args.lang or detect_language()
    code = 0 if evaluation.verdict == "ready" else 1
    if args.json:
        from auditagent.view import as_json

        json.dump(as_json(policy, facts, evaluation, lang), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return code
    if args.html is not None:
        from auditagent.view import render_html

        target = Path(args.html) if args.html else selfcheck_page_path(paths)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(render_html(policy, facts, evaluation, lang), encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {target}: {exc.strerror or exc}") from None
        print(target)
        if not args.no_open:
            import webbrowser

            webbrowser.open(target.resolve().as_uri())
        return code
    from auditagent.view import render_text

    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    sys.stdout.write(render_text(policy, evaluation, lang, colour))
    return code
