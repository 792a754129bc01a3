"""No traceback reaches a person: every subcommand of ``auditagent`` and
``auditagent-collector``, given wrong arguments, a database that cannot be used or a
collector that does not answer, exits 2 with a one-line message saying what to do.

The tables below name sample arguments for every subcommand; a subcommand added
without an entry fails :func:`test_every_subcommand_is_covered`, so new commands get
the same treatment."""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from collector_fixtures import REPO, free_port

# Arguments that get each collector command past argument parsing to its database.
COLLECTOR_ARGS: dict[str, list[str]] = {
    "serve": ["--port", "0"],
    "db upgrade": [],
    "unit add": ["Socialförvaltningen/IFO"],
    "unit list": [],
    "unit set-max-age": ["Socialförvaltningen", "48"],
    "user add": ["anna", "--role", "admin", "--password-stdin"],
    "user list": [],
    "user disable": ["anna"],
    "token create": ["--unit", "Socialförvaltningen"],
    "token list": [],
    "token revoke": ["1"],
    "device list": [],
    "device revoke": ["dev-1"],
    "policy set": ["--unit", "Socialförvaltningen", "{signed}"],
    "api-token create": ["siem-export", "--role", "security_officer", "--unit", "Socialförvaltningen"],
    "api-token list": [],
    "api-token revoke": ["1"],
    "retention apply": [],
    "sweep": [],
}
# Commands that keep their data elsewhere (checked separately below).
COLLECTOR_OWN_STORAGE = {"preview", "ca init", "ca rotate", "ca show", "ca bundle", "retention show"}  # show: no database

AGENT_NEEDS_ENROLMENT = {"run": [], "report": ["--out", "{tmp}/r.json"], "keys show": [], "resend": []}
AGENT_OTHER = {"check", "status", "enroll", "verify", "capture", "policy validate", "policy keygen", "policy sign",
               "policy verify"}


def leaves(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every runnable subcommand, as 'unit add' → its parser."""
    out: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.update(leaves(sub, f"{prefix}{name} "))
    if not out and prefix:
        out[prefix.strip()] = parser
    return out


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITAGENT_")}
    env["PYTHONPATH"] = str(REPO)
    env["AUDITAGENT_HOME"] = str(home)
    return env


def run(tool: str, args: list[str], home: Path, stdin: str = "") -> subprocess.CompletedProcess:
    """The real entry point in a new process (as a person runs it)."""
    module = {"collector": "server.cli", "agent": "auditagent.cli"}[tool]
    return subprocess.run([sys.executable, "-m", module, *args], env=_env(home), input=stdin, capture_output=True,
                          text=True, timeout=120)


def run_here(tool: str, args: list[str], home: Path, monkeypatch, stdin: str = "") -> subprocess.CompletedProcess:
    """The same ``main`` in this process (the matrix of commands × databases would take
    minutes as processes); any exception escaping ``main`` fails the test."""
    import contextlib
    import io

    from auditagent.cli import main as agent_main
    from server.cli import main as collector_main

    for k in [k for k in os.environ if k.startswith("AUDITAGENT_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("AUDITAGENT_HOME", str(home))
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = {"collector": collector_main, "agent": agent_main}[tool](args)
        except SystemExit as exc:  # argparse
            code = exc.code
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def assert_one_line_error(p: subprocess.CompletedProcess, *expected: str) -> None:
    out = p.stdout + p.stderr
    assert p.returncode == 2, out
    assert "Traceback" not in out and 'File "' not in out, out
    message = [line for line in p.stderr.splitlines() if line.strip()]
    assert message, "no message on stderr"
    for text in expected:
        assert text in p.stderr, p.stderr


def closed_port() -> int:
    port = free_port()  # nothing listens there (bound and released at once)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    return port


def test_every_subcommand_is_covered():
    from auditagent.cli import build_parser as agent_parser
    from server.cli import build_parser as collector_parser

    assert set(leaves(collector_parser())) == set(COLLECTOR_ARGS) | COLLECTOR_OWN_STORAGE
    assert set(leaves(agent_parser())) <= set(AGENT_NEEDS_ENROLMENT) | AGENT_OTHER
    assert set(AGENT_NEEDS_ENROLMENT) | {"check", "enroll", "verify"} <= set(leaves(agent_parser()))


@pytest.mark.parametrize("tool", ["collector", "agent"])
def test_wrong_arguments_print_usage_and_exit_2(tool, tmp_path):
    from auditagent.cli import build_parser as agent_parser
    from server.cli import build_parser as collector_parser

    parser = {"collector": collector_parser, "agent": agent_parser}[tool]()
    # One process for all: argparse errors are checked in-process (SystemExit 2, usage on stderr).
    for name in leaves(parser):
        wrong = [name.split() + ["--no-such-option"]]
        if " " in name:  # an action of a command group
            wrong.append(name.split()[:1] + ["no-such-action"])
        for argv in wrong:
            with pytest.raises(SystemExit) as exc:
                import contextlib
                import io

                err = io.StringIO()
                with contextlib.redirect_stderr(err):
                    parser.parse_args(argv)
            assert exc.value.code == 2, (argv, err.getvalue())
            assert "usage:" in err.getvalue() and "error:" in err.getvalue(), argv
    # And through the real entry point once: no traceback, exit 2.
    assert_one_line_error(run(tool, ["no-such-command"], tmp_path), "invalid choice")


def _collector_argv(name: str, db: str, tmp_path: Path) -> list[str]:
    signed = tmp_path / "p.signed.json"
    signed.write_text("{}")
    args = [a.replace("{signed}", str(signed)) for a in COLLECTOR_ARGS[name]]
    return [*name.split(), *args, "--db", db]


@pytest.mark.parametrize("name", sorted(COLLECTOR_ARGS))
def test_collector_commands_with_a_database_that_cannot_be_used(name, tmp_path, monkeypatch):
    def run(tool, argv, home, stdin=""):
        return run_here(tool, argv, home, monkeypatch, stdin)

    missing = tmp_path / "no-such-folder" / "collector.db"
    p = run("collector", _collector_argv(name, f"sqlite:///{missing}", tmp_path), tmp_path, stdin="pw-1234567890\n")
    assert_one_line_error(p, "no-such-folder", "does not exist")
    assert not missing.parent.exists()
    # A PostgreSQL server that does not answer; the password never shows.
    url = f"postgresql+psycopg://auditor:s3cret-pw@127.0.0.1:{closed_port()}/collector"
    p = run("collector", _collector_argv(name, url, tmp_path), tmp_path, stdin="pw-1234567890\n")
    assert_one_line_error(p, "cannot connect to the database", "127.0.0.1")
    assert "s3cret-pw" not in p.stdout + p.stderr
    # Not a database URL at all.
    p = run("collector", _collector_argv(name, "mysql+nosuchdriver://x", tmp_path), tmp_path, stdin="pw\n")
    assert_one_line_error(p, "not a usable database URL")


@pytest.mark.parametrize("name", ["unit add", "unit list", "token list", "user list", "device list"])
def test_collector_commands_create_and_migrate_a_fresh_database(name, tmp_path, monkeypatch):
    db = tmp_path / "fresh.db"
    p = run_here("collector", [*name.split(), *COLLECTOR_ARGS[name], "--db", f"sqlite:///{db}"], tmp_path,
                 monkeypatch)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    p = run_here("collector", ["db", "upgrade", "--db", f"sqlite:///{db}"], tmp_path, monkeypatch)
    from server.migrate import head_revision

    assert p.stdout.strip() == f"database at revision {head_revision()}"


def test_collector_argument_errors_name_the_fix(tmp_path, monkeypatch):
    def run(tool, argv, home, stdin=""):
        return run_here(tool, argv, home, monkeypatch, stdin)

    db = f"sqlite:///{tmp_path / 'c.db'}"
    assert_one_line_error(run("collector", ["token", "create", "--unit", "No/Such", "--db", db], tmp_path),
                          "'No/Such' does not exist", "unit add")
    assert_one_line_error(run("collector", ["unit", "set-max-age", "A", "soon", "--db", db], tmp_path),
                          "whole number of hours")
    assert_one_line_error(run("collector", ["policy", "set", "--unit", "A", str(tmp_path / "none.json"),
                                            "--db", db], tmp_path), "none.json", "cannot read")
    assert_one_line_error(run("collector", ["user", "add", "x", "--role", "admin", "--password-file",
                                            str(tmp_path / "pw.txt"), "--db", db], tmp_path),
                          "pw.txt", "No such file")
    assert_one_line_error(run("collector", ["serve", "--tls-cert", "c.pem", "--db", db], tmp_path),
                          "--tls-key go together")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert_one_line_error(run("collector", ["serve", "--port", str(port), "--db", db], tmp_path),
                              f"127.0.0.1:{port}", "in use", "--port")


def test_preview_with_an_unusable_data_folder(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_one_line_error(run("collector", ["preview", "--data-dir", str(blocker / "data")], tmp_path),
                          str(blocker / "data"))


@pytest.mark.parametrize("name", ["ca init", "ca rotate", "ca show", "ca bundle"])
def test_readiness_ca_with_an_unusable_folder(name, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_one_line_error(run("collector", [*name.split(), "--dir", str(blocker / "ca")], tmp_path),
                          str(blocker / "ca"))


@pytest.mark.parametrize("name", sorted(AGENT_NEEDS_ENROLMENT))
def test_agent_commands_on_a_device_not_enrolled(name, tmp_path, monkeypatch):
    def run(tool, argv, home, stdin=""):
        return run_here(tool, argv, home, monkeypatch, stdin)

    args = [a.replace("{tmp}", str(tmp_path)) for a in AGENT_NEEDS_ENROLMENT[name]]
    assert_one_line_error(run("agent", [*name.split(), *args], tmp_path / "home"),
                          "not enrolled" if name != "keys show" else "enrol")


def test_agent_enrol_against_a_collector_that_does_not_answer(tmp_path):
    p = run("agent", ["enroll", "--server", f"http://127.0.0.1:{closed_port()}", "--token", "aaenr_x"],
            tmp_path / "home")
    assert_one_line_error(p, "127.0.0.1")
    p = run("agent", ["enroll", "--server", "http://127.0.0.1:1", "--token-file", str(tmp_path / "none.txt")],
            tmp_path / "home")
    assert_one_line_error(p, "none.txt")


def test_agent_argument_errors_name_the_file(tmp_path, monkeypatch):
    def run(tool, argv, home, stdin=""):
        return run_here(tool, argv, home, monkeypatch, stdin)

    assert_one_line_error(run("agent", ["check", "--policy", str(tmp_path / "none.yaml")], tmp_path), "none.yaml")
    assert_one_line_error(run("agent", ["policy", "sign", "--key", str(tmp_path / "k"), str(tmp_path / "p.yaml")],
                              tmp_path), "p.yaml")
    assert_one_line_error(run("agent", ["policy", "verify", "--key", str(tmp_path / "k.pem"),
                                        str(tmp_path / "p.json")], tmp_path), "k.pem")
