"""Install-time and scheduler-side helper shipped with every auditagent package.

The installers (Debian postinst, the Windows MSI, the macOS postinstall) and the
schedulers (systemd timer, Windows scheduled task, launchd) all call this one file
with the packaged Python, so the three OSes share one behaviour:

    configure   --server URL [--sample FILE]   create agent.yaml from the sample (if missing)
                                               and set ``server:``; owner-only ACL on Windows
    stash-token [--token-file F | env AUDITAGENT_ENROLL_TOKEN | stdin]
                                               keep an enrolment token for later, owner-only,
                                               in <state>/enroll-token
    enroll-pending                             enrol with a stashed token (if any) and forget it
    scheduled [--log FILE]                     enroll-pending (best effort), then ``auditagent run``
    register-task --xml F --install-dir D      Windows: register the scheduled task from its XML
    unregister-task                            Windows: remove it
    selfcheck                                  the staff self-check page, written to the
                                               person's own folder, opened in the browser

The token is never printed or logged, and never written anywhere but the state folder,
which only root / SYSTEM and Administrators can read. Paths come from
``auditagent.paths.default_paths`` — the same the agent itself uses — so
``AUDITAGENT_HOME`` moves them all (tests do).

Exit codes: 0 ok (or nothing to do), 1 enrolment pending but failed (kept for the next
run), 2 usage or installation error. ``scheduled`` exits with ``auditagent run``'s code.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

TOKEN_FILE = "enroll-token"
SERVER_LINE = re.compile(r"^#?\s*server:.*$", re.MULTILINE)


def _paths():
    from auditagent.paths import default_paths

    return default_paths()


def _is_windows() -> bool:
    return os.name == "nt"


def restrict_windows_acl(path: Path, directory: bool = False) -> None:
    """Owner-only on Windows: SYSTEM and Administrators, nothing inherited, nobody else."""
    inherit = "(OI)(CI)" if directory else ""
    subprocess.run(["icacls", str(path), "/inheritance:r",
                    "/grant:r", f"*S-1-5-18:{inherit}F", f"*S-1-5-32-544:{inherit}F"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ensure_state_dir(state: Path) -> None:
    state.mkdir(parents=True, exist_ok=True)
    if _is_windows():
        restrict_windows_acl(state, directory=True)
    else:
        os.chmod(state, 0o700)


def set_server(text: str, server: str) -> str:
    """``text`` (agent.yaml) with its ``server:`` line (commented out or not) set to ``server``."""
    line = f"server: {server}"
    if SERVER_LINE.search(text):
        return SERVER_LINE.sub(lambda _m: line, text, count=1)
    return (text.rstrip("\n") + "\n" if text.strip() else "") + line + "\n"


def cmd_configure(args: argparse.Namespace) -> int:
    paths = _paths()
    config = Path(args.config) if args.config else paths.config
    if args.server and not re.match(r"^https?://[^\s/]+", args.server):
        print(f"auditagent-setup: not a collector URL: {args.server!r} (expected https://host[:port])",
              file=sys.stderr)
        return 2
    config.parent.mkdir(parents=True, exist_ok=True)
    if config.exists():
        text = config.read_text(encoding="utf-8")
    elif args.sample and Path(args.sample).is_file():
        text = Path(args.sample).read_text(encoding="utf-8")
    else:
        text = ""
    if args.server:
        text = set_server(text, args.server.rstrip("/"))
    tmp = config.with_name(config.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, config)
    if _is_windows():
        restrict_windows_acl(config.parent, directory=True)
        restrict_windows_acl(config)
    else:
        os.chmod(config, 0o644)  # no secrets in it; the self-check of a person reads it
    # Validate what we wrote with the agent's own parser, so a bad value fails the install.
    from auditagent.config import ConfigError, load_config

    try:
        load_config(config, required=True)
    except ConfigError as exc:
        print("auditagent-setup: the agent config is not valid:\n" + "\n".join(f"  {p}" for p in exc.problems),
              file=sys.stderr)
        return 2
    print(f"auditagent-setup: config {config}" + (f" (server {args.server})" if args.server else ""))
    return 0


def _read_token(args: argparse.Namespace) -> str:
    if args.token_file:
        return Path(args.token_file).read_text(encoding="utf-8").strip()
    env = os.environ.get("AUDITAGENT_ENROLL_TOKEN", "").strip()
    if env:
        return env
    if args.token:
        return args.token.strip()
    if not sys.stdin or sys.stdin.isatty():
        return ""
    return sys.stdin.read().strip()


def cmd_stash_token(args: argparse.Namespace) -> int:
    token = _read_token(args)
    if not token:
        print("auditagent-setup: no enrolment token given; nothing stashed", file=sys.stderr)
        return 0
    if any(c.isspace() for c in token):
        print("auditagent-setup: the enrolment token contains spaces; check how it was passed", file=sys.stderr)
        return 2
    state = _paths().state
    ensure_state_dir(state)
    target = state / TOKEN_FILE
    tmp = state / (TOKEN_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    os.replace(tmp, target)
    if args.token_file and args.remove_source:
        Path(args.token_file).unlink(missing_ok=True)
    print(f"auditagent-setup: enrolment token kept in {target} until enrolment succeeds")
    return 0


def _agent(*argv: str) -> int:
    """Run the agent's CLI in a child process with this same Python (isolated)."""
    return subprocess.call([sys.executable, "-I", "-m", "auditagent.cli", *argv])


def cmd_enroll_pending(args: argparse.Namespace) -> int:
    state = _paths().state
    token = state / TOKEN_FILE
    if not token.is_file():
        return 0
    code = _agent("enroll", "--token-file", str(token))
    if code == 0:
        token.unlink(missing_ok=True)
        return 0
    print("auditagent-setup: enrolment did not succeed yet; the token is kept and the next scheduled "
          "run tries again", file=sys.stderr)
    return 1


def cmd_scheduled(args: argparse.Namespace) -> int:
    if args.log:
        # Task Scheduler keeps no output: the last run's goes to a file (owner-only folder).
        log = Path(args.log)
        log = log if log.is_absolute() else _paths().state / log
        log.parent.mkdir(parents=True, exist_ok=True)
        fh = open(log, "w", encoding="utf-8", errors="replace")  # noqa: SIM115 - for the whole process
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        sys.stdout = sys.stderr = fh
    cmd_enroll_pending(args)
    from auditagent.enrollment import ENROLLMENT_FILE

    if not (_paths().state / ENROLLMENT_FILE).is_file():
        print("auditagent-setup: not enrolled; nothing to send (IT: auditagent enroll --server URL --token T)",
              file=sys.stderr)
        return 0
    sys.stdout.flush()
    # In this process: a second interpreter would cost the hourly run as much CPU again as
    # the start-up it already paid (the run itself imports only what it needs).
    from auditagent.cli import main, short_lived_process

    short_lived_process()
    return main(["run"])


TASK_NAME = "\\auditagent\\Report"


def task_xml(template: str, install_dir: str) -> str:
    """The task XML with the install folder filled in (trailing backslash, as MSI gives it)."""
    install_dir = install_dir.rstrip("\\/") + "\\"
    return template.replace("@INSTALLDIR@", install_dir)


def cmd_register_task(args: argparse.Namespace) -> int:
    import tempfile

    text = task_xml(Path(args.xml).read_text(encoding="utf-8"), args.install_dir)
    # schtasks reads task XML reliably only as UTF-16 with a BOM, as Task Scheduler exports it.
    text = text.replace('encoding="UTF-8"', 'encoding="UTF-16"', 1)
    fd, tmp = tempfile.mkstemp(suffix=".xml")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-16"))
        proc = subprocess.run(["schtasks", "/Create", "/TN", TASK_NAME, "/XML", tmp, "/F"],
                              capture_output=True, text=True, check=False)
    finally:
        os.unlink(tmp)
    if proc.returncode != 0:
        print(f"auditagent-setup: schtasks /Create failed: {proc.stdout}{proc.stderr}", file=sys.stderr)
        return 2
    print(f"auditagent-setup: scheduled task {TASK_NAME} registered")
    return 0


def cmd_unregister_task(args: argparse.Namespace) -> int:
    proc = subprocess.run(["schtasks", "/Delete", "/TN", TASK_NAME, "/F"], capture_output=True, text=True, check=False)
    return 0 if proc.returncode == 0 else 1


def selfcheck_target(env: dict[str, str] | None = None) -> Path:
    """Where a person's self-check page goes: their own folder, never the machine state."""
    env = dict(os.environ) if env is None else env
    if _is_windows():
        base = Path(env.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "auditagent" / "selfcheck.html"


def cmd_selfcheck(args: argparse.Namespace) -> int:
    target = selfcheck_target()
    argv = ["check", "--html", str(target)] + (["--no-open"] if args.no_open else [])
    from auditagent.cli import main

    code = main(argv)
    return 0 if code in (0, 1) else code


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="auditagent-setup", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("configure", help="create agent.yaml from the sample and set server")
    c.add_argument("--config", help="agent.yaml (default: the agent's default for this OS)")
    c.add_argument("--server", help="collector URL")
    c.add_argument("--sample", help="sample agent.yaml to start from when there is none")
    c.set_defaults(func=cmd_configure)
    s = sub.add_parser("stash-token", help="keep an enrolment token for enroll-pending")
    s.add_argument("--token-file", help="read the token from this file")
    s.add_argument("--token", help=argparse.SUPPRESS)  # MSI custom action only; prefer the file or env
    s.add_argument("--remove-source", action="store_true", help="delete --token-file after copying it")
    s.set_defaults(func=cmd_stash_token)
    e = sub.add_parser("enroll-pending", help="enrol with the stashed token, if any")
    e.set_defaults(func=cmd_enroll_pending)
    r = sub.add_parser("scheduled", help="what the scheduler runs: enroll-pending, then auditagent run")
    r.add_argument("--log", help="write this run's output to FILE (relative: in the state folder), "
                   "for schedulers that keep none")
    r.set_defaults(func=cmd_scheduled)
    t = sub.add_parser("register-task", help="Windows: register the scheduled task from its XML")
    t.add_argument("--xml", required=True)
    t.add_argument("--install-dir", required=True)
    t.set_defaults(func=cmd_register_task)
    u = sub.add_parser("unregister-task", help="Windows: remove the scheduled task")
    u.set_defaults(func=cmd_unregister_task)
    h = sub.add_parser("selfcheck", help="the staff self-check page, in the person's own folder")
    h.add_argument("--no-open", action="store_true")
    h.set_defaults(func=cmd_selfcheck)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"auditagent-setup: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    code = main()
    try:
        from auditagent.cli import leave  # without the interpreter's teardown (see there)
    except ImportError:  # the agent is not installed: nothing of it to finish
        sys.exit(code)
    leave(code)
