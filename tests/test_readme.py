"""The README's IT path, executed: its shell blocks under *Reporting to a collector*,
*For auditors* and *For security officers*, in order, literally, in a fresh folder, by
one bash process (so ``export`` carries over as in a terminal), with the installed
``auditagent`` and ``auditagent-collector`` on PATH. ``serve`` runs in the background
until the end. The one change: port 8080 becomes a free port (other collectors may run
on the test machine). Each command must exit 0 and print what the README says it does;
every command in those sections needs an expectation here, so the README and this test
cannot drift apart. Then the collector is stopped and ``auditagent run`` must say in
one line that it is unreachable, keeping the report for the next run (exit 1: done, but
a report is waiting — the scheduler's contract), without a traceback."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from collector_fixtures import REPO, free_port
from readme_blocks import commands, shell_blocks, without_comment, words

IT_SECTIONS = ("Reporting to a collector", "For auditors: verifying a report", "For security officers: the dashboard")
UNIT = "Socialförvaltningen/IFO/Ekonomiskt bistånd"

# (the command starts with these words) → what its output (stdout + stderr) must show.
EXPECT: list[tuple[tuple[str, ...], list[str]]] = [
    (("auditagent-collector", "unit", "add"), [rf"(?m)^{UNIT}$"]),
    (("auditagent", "policy", "keygen"), [r"private key: keys/policy-signing.key", r"public key: +keys/policy-signing.pub.pem"]),
    (("auditagent", "policy", "sign"), [r"signed casework-confidential \S+ .*→ policies/casework-confidential.signed.json"]),
    (("auditagent-collector", "policy", "set"), [r"policy casework-confidential \S+ set for unit Socialförvaltningen \(sha256"]),
    (("auditagent-collector", "token", "create"), [rf"enrolment token for unit {UNIT}: 50 use\(s\)"]),
    (("auditagent-collector", "serve"), []),
    (("mkdir", "-p", "laptop"), []),
    (("printf",), []),
    (("auditagent", "enroll"), [rf"enrolled: device \S+ in unit {UNIT} at http://127\.0\.0\.1:\d+"]),
    (("auditagent", "run", "--dry-run"), [r'"predicateType": "https://auditagent.dev/readiness-report/v1"',
                                          r'"device": \{', r"report 2 was not spooled or sent"]),
    (("auditagent", "run"), [r"report 1 \((ready|not_ready)\) spooled; sent 1; 0 waiting in the spool"]),
    (("auditagent", "status"), [r"enrolled: +yes", rf"unit {UNIT}", r"last sent: +report 1 ",
                                r"policy: +casework-confidential \S+ \(from collector\)"]),
    (("auditagent", "resend"), [r"resent 0 report\(s\): delivered 0, refused 0, 0 waiting"]),
    (("auditagent", "report"), [r"signed report \S+ \(sequence 2, (ready|not_ready)\) written to report.json; not sent"]),
    (("auditagent", "keys", "show"), []),
    (("auditagent", "verify"), [r"✔ report.json: signature valid", r"✔ subject device:\S+, digest = sha256",
                                r"verdict: +(ready|NOT READY)"]),
    (("auditagent-collector", "user", "add", "anna"), [r"# user anna: security_officer, unit Socialförvaltningen",
                                                       r"generated password"]),
    (("auditagent-collector", "user", "add", "it-admin"), [r"# user it-admin: admin, all units"]),
    (("auditagent-collector", "user", "add", "chef-ifo"), [r"# user chef-ifo: unit_manager, unit Socialförvaltningen/IFO"]),
]


def expectation(command: str) -> list[str]:
    w = words(command)
    for prefix, patterns in EXPECT:
        if tuple(w[: len(prefix)]) == prefix:
            return patterns
    raise AssertionError(f"README command without an expectation in {__file__}: {command}")


def it_path() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return [c for b in shell_blocks(text) if b.section in IT_SECTIONS for c in commands(b)]


def script(cmds: list[str], port: int) -> str:
    """One bash script: each command between markers, its exit status recorded; serve in the background."""
    lines = ["set -u", "trap 'kill $(cat serve.pid 2>/dev/null) 2>/dev/null' EXIT"]
    for i, cmd in enumerate(cmds):
        cmd = cmd.replace("8080", str(port))
        lines.append(f"echo '@@@ {i}'; echo '@@@ {i}' >&2")
        if words(cmd)[:2] == ["auditagent-collector", "serve"]:
            lines.append(f"{without_comment(cmd)} > serve.log 2>&1 & echo $! > serve.pid")
            # Up to 300 s for serve to listen (a loaded 2-core machine); a serve that never does fails here.
            lines.append(f"for _ in $(seq 600); do (echo > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; "
                         "sleep 0.5; done; (echo > /dev/tcp/127.0.0.1/%d) 2>/dev/null" % port)
        else:
            lines.append(cmd)
        lines.append(f"echo \"@@@rc {i} $?\"")
    # The laptop with its collector gone: one line, exit 2.
    lines.append("kill $(cat serve.pid); wait")
    lines.append("echo '@@@ down'; echo '@@@ down' >&2; auditagent run; echo \"@@@rc down $?\"")
    return "\n".join(lines) + "\n"


def split(output: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    key = None
    for line in output.splitlines():
        m = re.fullmatch(r"@@@ (\S+)", line)
        if m:
            key = m.group(1)
            continue
        if key is not None:
            parts[key] = parts.get(key, "") + line + "\n"
    return parts


def test_readme_names_the_files_the_commands_write():
    cmds = " ".join(it_path())
    assert "policies/casework-confidential.signed.json" in cmds  # what `policy sign` writes
    assert ".yaml.signed.json" not in (REPO / "README.md").read_text(encoding="utf-8")
    assert "../shared/" not in (REPO / "README.md").read_text(encoding="utf-8"), "the README must be self-contained"


@pytest.mark.timeout(900)
def test_the_it_path_of_the_readme_runs_as_written(tmp_path):
    cmds = it_path()
    assert any("8080" in c for c in cmds)
    work = tmp_path / "fresh"
    work.mkdir()
    shutil.copytree(REPO / "policies", work / "policies")  # a clone has them; nothing else is needed
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITAGENT_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = str(REPO)
    p = subprocess.run(["bash", "-c", script(cmds, port)], cwd=work, env=env, capture_output=True, text=True,
                       timeout=840, start_new_session=True)
    out, err = split(p.stdout), split(p.stderr)
    for i, cmd in enumerate(cmds):
        shown = out.get(str(i), "") + err.get(str(i), "")
        rc = re.search(rf"@@@rc {i} (\d+)", p.stdout)
        assert rc, f"not reached: {cmd}\n{p.stderr[-2000:]}"
        assert rc.group(1) == "0", f"{cmd}\nexit {rc.group(1)}\n{shown}\nserve.log:\n{_log(work)}"
        assert "Traceback" not in shown, shown
        for pattern in expectation(cmd):
            assert re.search(pattern, shown), f"{cmd}\nshould show {pattern!r}, showed:\n{shown}"
    # What the commands left behind, as the README says.
    assert re.fullmatch(r"aaenr_\S+\n", (work / "token.txt").read_text())
    assert (work / "device.pem").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert oct((work / "keys" / "policy-signing.key").stat().st_mode & 0o777) == "0o600"
    assert (work / "auditagent-collector.db").is_file()
    down = out.get("down", "") + err.get("down", "")
    assert "@@@rc down 1" in p.stdout, down
    assert "Traceback" not in down and re.search(rf"(?m)^auditagent: collector unavailable .*127\.0\.0\.1:{port}.*"
                                                 r"stays in the spool", down), down


def _log(work: Path) -> str:
    try:
        return (work / "serve.log").read_text()[-3000:]
    except OSError:
        return "(none)"


def test_the_collector_commands_in_docs_deploying_run_as_written(tmp_path):
    """docs/deploying.md's collector commands (the rest needs dpkg, systemd, msiexec or a
    Mac; tests/test_packaging_* run those where they can), in the order of the page, in a
    fresh folder. ``ID`` and ``…`` are the page's placeholders: the token just made, the unit."""
    text = (REPO / "docs" / "deploying.md").read_text(encoding="utf-8")
    cmds = list(dict.fromkeys(re.findall(r"`(auditagent-collector [^`]*)`", text)))
    assert any(" unit add " in c for c in cmds) and any(" token create " in c for c in cmds)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITAGENT_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = str(REPO)
    order = sorted(cmds, key=lambda c: (" token revoke " in c, " token create " in c, " device list " in c))
    for cmd in order:
        cmd = cmd.replace("token revoke ID", "token revoke 1").replace("--unit …", '--unit "Socialförvaltningen"')
        p = subprocess.run(cmd, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0 and "Traceback" not in p.stderr, f"{cmd}\n{p.stdout}\n{p.stderr}"
        if " token create " in cmd:
            assert re.fullmatch(r"aaenr_\S+", p.stdout.strip().splitlines()[-1]) and "500 use(s)" in p.stderr
        if " token revoke " in cmd:
            assert p.stdout.strip() == "token 1 revoked"
