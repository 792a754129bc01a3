"""``auditagent check``: the staff self-check."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from auditagent.commands import CommandError, add_common, agent_paths, host_from_args  # noqa: F401 - re-exported
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
    out.add_argument("--html", nargs="?", const="", metavar="FOLDER",
                     help="write the self-check as web pages, one per language, into FOLDER (default: the agent's "
                          "state folder, else your own cache folder) and open yours")
    p.add_argument("--no-open", action="store_true", help="with --html: do not open the browser")
    p.set_defaults(func=run)


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
    return base / "auditagent" / "selfcheck.html"  # its folder takes the pages


def outgoing_statement(paths: Any, policy: Policy, facts: dict[str, Any], evaluation: Any) -> dict[str, Any] | None:
    """The Statement the next `auditagent run` would sign, if this computer is enrolled and
    its state can be read (None otherwise). Built by the same function as the report."""
    try:
        from auditagent.config import ConfigError, load_config
        from auditagent.delivery import make_spool, report_statement, sequence_counter
        from auditagent.enrollment import EnrollmentProblem, load_enrollment
    except ModuleNotFoundError:
        return None
    try:
        enrollment = load_enrollment(paths.state)
        if enrollment is None:
            return None
        spool = make_spool(paths, load_config(paths.config))
        # As `run` numbers it, without writing anything (the self-check only reads).
        sequence = max(sequence_counter(paths.state).peek_next(), spool.highest_sequence() + 1)
        spool_note = {**spool.eviction_note(), "pending": spool.depth()}
    except (EnrollmentProblem, ConfigError, OSError, ValueError):
        return None
    return report_statement(policy=policy, facts=facts, evaluation=evaluation, enrollment=enrollment,
                            public_key=enrollment.keyid, sequence=sequence, spool_note=spool_note)


def write_pages(args: argparse.Namespace, paths: Any, policy: Policy, facts: dict[str, Any], evaluation: Any,
                lang: str, code: int, deadlines: dict[str, Any] | None = None) -> int:
    """``--html``: one page per language (selfcheck.sv.html …, linked to each other) in one
    folder; opens the person's and says in words what was done."""
    from auditagent.i18n import translate
    from auditagent.view import page_name, render_html

    # A FILE.html (as older installers pass) names the folder it is in.
    folder = Path(args.html) if args.html else selfcheck_page_path(paths).parent
    if folder.suffix.lower() in (".html", ".htm"):
        folder = folder.parent
    statement = outgoing_statement(paths, policy, facts, evaluation)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for other in LANGS:
            (folder / page_name(other)).write_text(
                render_html(policy, facts, evaluation, other, statement=statement, languages=LANGS,
                            deadlines=deadlines),
                encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot write the self-check pages into {folder}: {exc.strerror or exc}") from None
    page = (folder / page_name(lang)).resolve()
    names = [translate("lang." + other, None, lang) for other in LANGS]
    listed = translate("html.and", {"first": ", ".join(names[:-1]), "last": names[-1]}, lang)
    opened = False
    if not args.no_open:
        import webbrowser

        opened = webbrowser.open(page.as_uri())
    if opened:
        print(translate("html.wrote", {"languages": listed, "folder": str(folder.resolve()),
                                       "language": translate("lang." + lang, None, lang)}, lang))
    else:
        print(translate("html.wrote_no_open", {"languages": listed, "folder": str(folder.resolve()),
                                               "page": str(page)}, lang))
    return code


def run(args: argparse.Namespace) -> int:
    from auditagent.audit import run_check

    paths = agent_paths(args)
    policy = resolve_policy(args, paths)
    host = host_from_args(args)
    cache = None if getattr(args, "replay_host", None) else paths.cache
    facts, evaluation = run_check(policy, host, cache)
    lang = args.lang or detect_language()
    code = 0 if evaluation.verdict == "ready" else 1
    due = grace_deadlines(paths, evaluation)
    if args.json:
        from auditagent.view import as_json

        from auditagent.textsafe import json_shown

        sys.stdout.write(json_shown(json.dumps(as_json(policy, facts, evaluation, lang, due), indent=2,
                                               ensure_ascii=False)) + "\n")
        return code
    if args.html is not None:
        return write_pages(args, paths, policy, facts, evaluation, lang, code, due)
    from auditagent.view import render_text

    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    sys.stdout.write(render_text(policy, evaluation, lang, colour, due))
    return code


def grace_deadlines(paths: Any, evaluation: Any) -> dict[str, Any]:
    """Each failing check's grace deadline as it stands if this computer reported now:
    a run already reported keeps its deadline; a new one starts now (auditagent.grace)."""
    import datetime as dt

    from auditagent.grace import deadlines, load_runs, next_runs

    state = getattr(paths, "state", None)
    previous = load_runs(state) if state is not None else {}
    return deadlines(next_runs(previous, evaluation.results, dt.datetime.now(dt.timezone.utc)))
