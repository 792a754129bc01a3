"""The collector behind the shipped reverse-proxy config (packaging/collector/
nginx-auditagent.conf), for real: nginx (Debian's package, run unprivileged in the
foreground from a temp prefix) terminates TLS on 127.0.0.1 with a certificate from a test
CA; an agent enrols through it with ``--ca-bundle`` and ``run`` delivers a report that the
collector stores. The config is used as shipped, with only its listen ports, certificate
paths and upstream port swapped for the test's.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from collector_fixtures import free_port, make_test_ca, start_collector
from conftest import REPO
from nginx_harness import adapt, needs_nginx, running_nginx

CONF = REPO / "packaging" / "collector" / "nginx-auditagent.conf"

pytestmark = [needs_nginx]


def adapt_site(conf: str, *, https: int, http: int, upstream: int, cert: Path, key: Path) -> str:
    """The shipped config with the test's ports and certificate; each swap must hit."""
    return adapt(conf, [
        (r"listen 443 ssl;", f"listen 127.0.0.1:{https} ssl;"),
        (r"listen \[::\]:443 ssl;\n", ""),
        (r"listen 80;", f"listen 127.0.0.1:{http};"),
        (r"listen \[::\]:80;\n", ""),
        (r"server 127\.0\.0\.1:8080;", f"server 127.0.0.1:{upstream};"),
        (r"ssl_certificate +/etc/ssl/auditagent/fullchain\.pem;", f"ssl_certificate {cert};"),
        (r"ssl_certificate_key +/etc/ssl/auditagent/privkey\.pem;", f"ssl_certificate_key {key};"),
    ], CONF.name)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("nginx")
    tls = make_test_ca(work / "tls")
    collector = start_collector(f"sqlite:///{work / 'collector.db'}", work / "collector")
    https, http = free_port(), free_port()
    site = adapt_site(CONF.read_text(), https=https, http=http, upstream=collector.port, cert=tls.cert, key=tls.key)
    try:
        with running_nginx(work / "prefix", site, wait_port=https, site_name="auditagent.conf") as prefix:
            yield {"url": f"https://127.0.0.1:{https}", "http": f"http://127.0.0.1:{http}", "tls": tls,
                   "collector": collector, "prefix": prefix}
    finally:
        collector.stop()


def agent(home: Path, *args: str, expect: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    env = dict(os.environ, AUDITAGENT_HOME=str(home), PYTHONPATH=str(REPO))
    env.pop("AUDITAGENT_ENROLL_TOKEN", None)
    proc = subprocess.run([sys.executable, "-m", "auditagent.cli", *args], env=env, capture_output=True, text=True,
                          timeout=180, cwd=REPO, check=False)
    assert proc.returncode in expect, f"auditagent {args[0]} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_agent_enrols_and_reports_through_nginx(stack, tmp_path):
    collector = stack["collector"]
    unit = "Testförvaltningen/Proxy"
    collector.cli("unit", "add", unit)
    token = collector.cli("token", "create", "--unit", unit).stdout.strip().splitlines()[-1]
    home = tmp_path / "home"
    (home).mkdir()
    (home / "agent.yaml").write_text("send_attempts: 2\nsend_timeout: 15\n")
    r = agent(home, "enroll", "--server", stack["url"], "--token", token, "--ca-bundle", str(stack["tls"].ca))
    assert "enrolled: device" in r.stdout and token not in r.stdout + r.stderr
    device = json.loads((home / "enrollment.json").read_text())["device_id"]
    r = agent(home, "run", expect=(0, 1))
    assert "sent 1" in r.stdout, r.stdout + r.stderr
    assert collector.count("reports", device_id=device) == 1
    devices = json.loads(collector.cli("device", "list", "--unit", unit, "--json").stdout)
    assert [d["id"] for d in devices] == [device] and devices[0]["last_report_at"]
    # The request went through nginx (its access log has the enrolment and the report).
    access = (stack["prefix"] / "logs" / "access.log").read_text()
    assert "POST /v1/enroll" in access and "POST /v1/reports" in access
    assert token not in access


def test_proxy_headers_limits_and_redirect(stack):
    import ssl

    import httpx

    with httpx.Client(verify=ssl.create_default_context(cafile=str(stack["tls"].ca)), timeout=30) as c:
        r = c.get(stack["url"] + "/healthz")
        assert r.status_code == 200
        assert r.headers["strict-transport-security"].startswith("max-age=")
        # Over 256 KiB but under nginx's cap: the collector itself answers (its own limit).
        r = c.post(stack["url"] + "/v1/reports", content=b"x" * (300 * 1024),
                   headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.headers["content-type"].startswith("application/json"), r.text[:300]
        # Far over the cap: nginx stops it before the collector.
        r = c.post(stack["url"] + "/v1/reports", content=b"x" * (2 * 1024 * 1024),
                   headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.headers["content-type"].startswith("text/html"), r.text[:300]
    r = httpx.get(stack["http"] + "/healthz", follow_redirects=False, timeout=10)
    assert r.status_code == 301 and r.headers["location"].startswith("https://")


def test_edge_rate_limit_on_login_answers_429_with_retry_after(stack):
    import concurrent.futures
    import ssl

    import httpx

    # Rate 10/min, burst 10: of 25 guesses at once, at most 11 pass the edge. At once, so
    # that slow answers on a busy machine do not leave the bucket time to refill (one per 6 s).
    # (Other user names each time, so the collector's own per-account throttle stays out of it.)
    with httpx.Client(verify=ssl.create_default_context(cafile=str(stack["tls"].ca)), timeout=60) as c:
        with concurrent.futures.ThreadPoolExecutor(25) as pool:
            answers = list(pool.map(lambda i: c.post(stack["url"] + "/api/v1/login",
                                                     json={"username": f"nobody{i}", "password": "wrong password"}),
                                    range(25)))
    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) <= {401, 429}, statuses
    # The edge's answers (the collector's own throttle says too_many_attempts).
    edge = [r for r in answers if r.status_code == 429 and r.json()["error"]["code"] == "too_many_requests"]
    assert len(edge) >= 25 - 11, statuses
    assert all(r.headers["content-type"].startswith("application/json") and r.headers["retry-after"] == "60"
               for r in edge)