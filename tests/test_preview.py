"""``auditagent-collector preview`` as a person would run it: a subprocess with its own
data folder and a free port; the simulated fleet and this machine's own agent appear
on the dashboard behind the printed login; SIGTERM stops it; a second start keeps the
data (same devices, same login)."""
from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from collector_fixtures import REPO, free_port

DEVICES = 40  # a small fleet keeps the test quick; the default is 300


def start(data_dir: Path, port: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITAGENT_")}
    env["PYTHONPATH"] = str(REPO)
    out = open(log, "ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "server.cli", "preview", "--data-dir", str(data_dir),
                                 "--port", str(port), "--devices", str(DEVICES), "--days", "5"],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=data_dir.parent)
    finally:
        out.close()


def wait_for(predicate, what: str, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"preview exited {proc.returncode} before {what}:\n{log.read_text(errors='replace')}")
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text(errors='replace')[-4000:]}")


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        raise


def login(base: str, user: str, password: str) -> httpx.Client:
    c = httpx.Client(base_url=base, timeout=30, follow_redirects=False)
    r = c.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
    r = c.post("/login", data={"username": user, "password": password, "csrf_token": token, "next": "/"})
    assert r.status_code == 303, r.text
    return c


def printed_login(log: Path) -> tuple[str, str]:
    m = re.search(r"Log in:\s+(\S+) / (\S+)", log.read_text(errors="replace"))
    assert m, log.read_text(errors="replace")
    return m.group(1), m.group(2)


def device_count(c: httpx.Client) -> int:
    text = c.get("/").text
    m = re.search(r'<span class="n">(\d+)</span><span class="l">(Datorer|Devices)</span>', text)
    assert m, text[:3000]
    return int(m.group(1))


def announced_port(log: Path, proc: subprocess.Popen, wanted: int) -> int:
    wait_for(lambda: "Dashboard:" in log.read_text(errors="replace"), "the dashboard URL", proc, log)
    text = log.read_text(errors="replace")
    m = re.findall(r"Dashboard: +http://127\.0\.0\.1:(\d+)/", text)
    return int(m[-1])


def test_preview_start_login_stop_start_keeps_data(tmp_path: Path) -> None:
    data = tmp_path / "preview-data"
    log = tmp_path / "preview.log"
    wanted = free_port()
    # Something else holds the port asked for: the preview takes another one and says so.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", wanted))
        squatter.listen()
        proc = start(data, wanted, log)
        try:
            port = announced_port(log, proc, wanted)
        except BaseException:
            stop(proc)
            raise
    assert port != wanted
    assert f"port {wanted} on 127.0.0.1 cannot be used (the port is in use); using port {port} instead" in log.read_text()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(base + "/healthz", timeout=30).status_code == 200, "/healthz", proc, log)
        wait_for(lambda: "Log in:" in log.read_text(errors="replace"), "the printed login", proc, log)
        user, password = printed_login(log)
        login_file = data / "login.txt"
        assert login_file.read_text().split() == [user, password]
        assert stat.S_IMODE(login_file.stat().st_mode) == 0o600
        # The database URL and the command to add a user, as printed, work from another terminal.
        text = log.read_text()
        db_url = re.search(r"Database: +(\S+)", text).group(1)
        assert db_url == f"sqlite:///{(data / 'collector.db').resolve()}"
        add = re.search(r"Add a user: +(.+)", text).group(1).replace("NAME", "kim")
        assert add.startswith("auditagent-collector user add kim --role security_officer --db ")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITAGENT_")}
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        added = subprocess.run(add, shell=True, env=env, capture_output=True, text=True, timeout=120)
        assert added.returncode == 0, added.stderr
        login(base, "kim", added.stdout.strip().splitlines()[-1]).close()
        # This machine's own agent enrols and reports in the background; the line says it in words.
        wait_for(lambda: "this machine" in log.read_text(errors="replace"), "this machine's agent", proc, log)
        assert "could not enrol" not in log.read_text(errors="replace"), log.read_text()
        m = re.search(rf"this machine \(.+\) reported: (ready|not ready) — {re.escape(base)}/devices/([0-9a-f-]{{36}})$",
                      log.read_text(), re.M)
        assert m, log.read_text()
        c = login(base, user, password)
        overview = c.get("/").text
        for unit in ("Socialförvaltningen", "Arbetsmarknadsförvaltningen", "Hälso- och sjukvård",
                     "Kommunledningsförvaltningen"):
            assert unit in overview
        devices_before = device_count(c)
        assert devices_before == DEVICES + 1
        me = c.get(f"/devices/{m.group(2)}")
        assert me.status_code == 200
        assert socket.gethostname() in me.text or m.group(2) in me.text
        c.close()
    finally:
        assert stop(proc) in (0, -signal.SIGTERM)

    # Second start, on the port now free: same data, same login; no second simulation.
    proc = start(data, wanted, log)
    base = f"http://127.0.0.1:{wanted}"
    try:
        wait_for(lambda: httpx.get(base + "/healthz", timeout=30).status_code == 200, "/healthz again", proc, log)
        wait_for(lambda: log.read_text(errors="replace").count("Log in:") == 2, "the login again", proc, log)
        assert log.read_text().count("simulating") == 1
        assert printed_login(log) == (user, password)
        c = login(base, user, password)
        assert device_count(c) == devices_before
        c.close()
    finally:
        assert stop(proc) in (0, -signal.SIGTERM)


def test_preview_help_is_plain_text() -> None:
    p = subprocess.run([sys.executable, "-m", "server.cli", "preview", "--help"], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert p.returncode == 0
    assert "``" not in p.stdout and ":mod:" not in p.stdout and "database URL" in p.stdout


def test_the_test_command_cannot_replace_the_previews_installation() -> None:
    """The README's preview keeps its own virtual environment, so running the README's test
    command (which reinstalls the package, editable, into .venv) while it runs leaves it alone."""
    from readme_blocks import commands, shell_blocks

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = shell_blocks(readme)
    preview = next(c for b in blocks for c in commands(b) if "auditagent-collector preview" in c)
    test_cmd = readme.split("<!-- test-command", 1)[1].split("```sh\n", 1)[1].split("\n", 1)[0]
    venv = re.search(r"python3 -m venv (\S+)", preview).group(1)
    test_venv = re.search(r"python3 -m venv (\S+)", test_cmd).group(1)
    assert venv != test_venv and f"{venv}/bin/auditagent-collector preview" in preview
    assert f"{test_venv}/bin/pip install -q -e" in test_cmd
    assert (REPO / ".gitignore").read_text().count(venv + "/") == 1
