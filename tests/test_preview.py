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


def test_preview_start_login_stop_start_keeps_data(tmp_path: Path) -> None:
    data = tmp_path / "preview-data"
    log = tmp_path / "preview.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(data, port, log)
    try:
        wait_for(lambda: httpx.get(base + "/healthz", timeout=2).status_code == 200, "/healthz", proc, log)
        wait_for(lambda: "Log in:" in log.read_text(errors="replace"), "the printed login", proc, log)
        user, password = printed_login(log)
        login_file = data / "login.txt"
        assert login_file.read_text().split() == [user, password]
        assert stat.S_IMODE(login_file.stat().st_mode) == 0o600
        # This machine's own agent enrols and reports in the background.
        wait_for(lambda: "this machine" in log.read_text(errors="replace"), "this machine's agent", proc, log)
        assert "could not enrol" not in log.read_text(errors="replace"), log.read_text()
        c = login(base, user, password)
        overview = c.get("/").text
        for unit in ("Socialförvaltningen", "Arbetsmarknadsförvaltningen", "Hälso- och sjukvård",
                     "Kommunledningsförvaltningen"):
            assert unit in overview
        devices_before = device_count(c)
        assert devices_before == DEVICES + 1
        m = re.search(r"/devices/([0-9a-f-]{36})", log.read_text())
        assert m, log.read_text()
        me = c.get(f"/devices/{m.group(1)}")
        assert me.status_code == 200
        assert socket.gethostname() in me.text or m.group(1) in me.text
        c.close()
    finally:
        assert stop(proc) in (0, -signal.SIGTERM)

    # Second start: same data, same login; no second simulation.
    proc = start(data, port, log)
    try:
        wait_for(lambda: httpx.get(base + "/healthz", timeout=2).status_code == 200, "/healthz again", proc, log)
        wait_for(lambda: log.read_text(errors="replace").count("Log in:") == 2, "the login again", proc, log)
        assert log.read_text().count("simulating") == 1
        assert printed_login(log) == (user, password)
        c = login(base, user, password)
        assert device_count(c) == devices_before
        c.close()
    finally:
        assert stop(proc) in (0, -signal.SIGTERM)
