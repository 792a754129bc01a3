"""Debian's nginx for tests, for real: run unprivileged in the foreground from a temp
prefix on 127.0.0.1, with a shipped site config adapted only where a test must (ports,
file paths, upstreams, tokens), each swap checked to hit, so a config that changes
shape fails its test instead of being tested half."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx not installed (apt install nginx)")


def adapt(conf: str, swaps: list[tuple[str, str]], name: str, *, exactly_once: bool = True) -> str:
    """``conf`` with each (regex, replacement) applied; each must match (exactly once, or
    at least once when a config repeats the line in several server blocks)."""
    for pattern, repl in swaps:
        conf, n = re.subn(pattern, repl, conf)
        assert (n == 1) if exactly_once else (n >= 1), f"{name} changed shape: {pattern!r} matched {n} times"
    return conf


def _main_conf(prefix: Path, site_file: Path) -> str:
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/logs/access.log;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {site_file};
}}
"""


@contextlib.contextmanager
def running_nginx(prefix: Path, site: str, *, wait_port: int, site_name: str = "site.conf") -> Iterator[Path]:
    """nginx serving ``site`` from ``prefix`` until the block ends (then a graceful
    stop); yields the prefix (logs/ holds error.log and access.log). Ready once
    127.0.0.1:``wait_port`` accepts connections."""
    for d in ("logs", "tmp", "conf"):
        (prefix / d).mkdir(parents=True, exist_ok=True)
    site_file = prefix / "conf" / site_name
    site_file.write_text(site)
    conf = prefix / "conf" / "nginx.conf"
    conf.write_text(_main_conf(prefix, site_file))
    assert NGINX is not None
    check = subprocess.run([NGINX, "-t", "-p", str(prefix), "-c", str(conf)], capture_output=True, text=True,
                           check=False)
    assert check.returncode == 0, check.stderr
    with open(prefix / "logs" / "stderr.log", "wb") as err:
        proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 120  # generous for a loaded machine; an nginx that exits fails at once
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", wait_port)) == 0:
                    break
            assert proc.poll() is None, (prefix / "logs" / "error.log").read_text()
            assert time.monotonic() < deadline, f"nginx did not listen on 127.0.0.1:{wait_port}"
            time.sleep(0.1)
        yield prefix
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
