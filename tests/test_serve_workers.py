"""``auditagent-collector serve --workers 2``: two collector processes behind one port
(uvicorn's supervisor), each built from the same settings; concurrent reports are each
stored exactly once, in sequence, and refusals still answer with the precise 4xx."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from auditagent import report as wire
from collector_fixtures import refused_while_sending, start_collector
from server.cli import WORKER_HEALTHCHECK_SECONDS


def test_two_workers_store_each_report_once(collector_db_url, tmp_path):
    # A generous health-check bound: at load 15+ a worker still importing can miss the 30 s
    # default, and the supervisor then kills it with this test's requests in flight.
    c = start_collector(collector_db_url, tmp_path / "workers",
                        extra_args=("--workers", "2", "--worker-healthcheck-timeout", "300"))
    try:
        workers = [p for p in psutil.Process(c.proc.pid).children(recursive=True) if "python" in p.name()]
        assert len(workers) >= 2, workers
        devices = [c.enroll(hostname=f"w-{i}") for i in range(4)]
        per_device = [[wire.envelope_bytes(d.sign(s)) for s in range(1, 9)] for d in devices]

        def send_all(bodies):
            with httpx.Client(base_url=c.url, timeout=60) as client:  # one connection per device, in order
                return [client.post("/v1/reports", content=b, headers={"content-type": "application/json"}).status_code
                        for b in bodies]

        with ThreadPoolExecutor(len(devices)) as pool:
            statuses = list(pool.map(send_all, per_device))
        assert statuses == [[201] * 8] * len(devices)
        for d in devices:
            assert c.count("reports", device_id=d.id) == 8
        # A resend is recognised whichever worker takes it; a forged body is refused.
        with c.client() as client:
            again = client.post("/v1/reports", content=per_device[0][-1], headers={"content-type": "application/json"})
            bad = client.post("/v1/reports", content=b"{not json", headers={"content-type": "application/json"})
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "malformed_json"
        # Each worker closes lingering: a refused client still sending gets its whole answer.
        for _ in range(4):
            assert refused_while_sending(c, 10 * 1024 * 1024, 2 * 1024 * 1024) == (413, "payload_too_large")
        assert c.count("reports") >= 32
    finally:
        c.stop()


@pytest.mark.parametrize("extra, expected", [
    ((), WORKER_HEALTHCHECK_SECONDS),
    (("--worker-healthcheck-timeout", "45"), 45),
])
def test_the_worker_health_check_timeout_reaches_uvicorn(monkeypatch, tmp_path, extra, expected):
    """uvicorn's supervisor gives a worker that long to answer its health check (its own
    default, 5 s, killed workers still starting on a busy host): the option goes into the
    uvicorn Config that serve --workers 2 runs."""
    import uvicorn

    from server import cli
    from server.asgi import SETTINGS_ENV

    ran = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: ran.append(uvicorn.Config(app, **options)))
    for name in (SETTINGS_ENV, "AUDITAGENT_COLLECTOR_LOG_LEVEL"):  # serve --workers sets them; restored after
        monkeypatch.setenv(name, "")
    assert cli.main(["serve", "--db", f"sqlite:///{tmp_path / 'c.db'}", "--port", "0", "--workers", "2", *extra]) == 0
    [config] = ran
    assert config.workers == 2 and config.timeout_worker_healthcheck == expected
    assert WORKER_HEALTHCHECK_SECONDS > 5  # above uvicorn's own default, the cause of the kills


@pytest.mark.parametrize("argv, says", [
    (("--workers", "2", "--worker-healthcheck-timeout", "0"), "--worker-healthcheck-timeout must be at least 1"),
    (("--tls-cert", "c.pem"), "--tls-key go together"),
    (("--insecure-cookies", "--host", "0.0.0.0"), "--insecure-cookies is only for plain http"),
    (("--workers", "2", "--metrics-listen", "127.0.0.1:0"), "need --workers 1"),
])
def test_a_wrong_serve_command_line_is_refused_before_any_work(monkeypatch, tmp_path, capsys, argv, says):
    """Judged from the arguments alone: refused (exit 2, one line) before uvicorn is
    checked or the database is created and migrated."""
    from server import cli, http_server

    checked = []
    monkeypatch.setattr(http_server, "check_uvicorn_hooks", lambda *a: checked.append(a))
    db = tmp_path / "c.db"
    assert cli.main(["serve", "--db", f"sqlite:///{db}", "--port", "0", *argv]) == 2
    assert says in capsys.readouterr().err
    assert not checked and not db.exists()
