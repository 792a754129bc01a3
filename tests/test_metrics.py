"""Prometheus metrics (server/metrics.py) from a real collector over HTTP on 127.0.0.1,
on SQLite and PostgreSQL: never open by default, behind a token on the main port, or
on a listener of its own; reports counted by outcome and reason, ingest latency,
devices by state per top-level unit agreeing with the API."""
from __future__ import annotations

import base64
import datetime as dt

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector_fixtures import free_port, start_collector

METRICS_TOKEN = "metrics-token-0123456789abcdef"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def test_metrics_closed_by_default(collector_db_url):
    from fastapi.testclient import TestClient

    from collector_fixtures import migrated_app

    app = migrated_app(collector_db_url)
    with TestClient(app, base_url="https://testserver") as http:
        assert http.get("/metrics").status_code == 404
        assert http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 404
        assert "/metrics" not in http.get("/openapi.json").text
    app.state.store.engine.dispose()


@pytest.fixture(scope="module")
def metered(collector_db_url, tmp_path_factory):
    work = tmp_path_factory.mktemp("metered")
    token_file = work / "metrics.token"
    token_file.write_text(METRICS_TOKEN + "\n")
    token_file.chmod(0o600)
    port = free_port()
    c = start_collector(collector_db_url, work, extra_args=("--metrics-token-file", str(token_file),
                                                            "--metrics-listen", f"127.0.0.1:{port}"))
    c.metrics_port = port
    try:
        yield c
    finally:
        c.stop()


def test_metrics_count_reports_and_devices(metered):
    c = metered
    dev = c.enroll("Socialförvaltningen/IFO/Ekonomiskt bistånd")
    c.enroll("Arbetsmarknad/Jobbcenter")  # never reports
    with c.client() as http:
        env = dev.sign()
        assert http.post("/v1/reports", json=env).status_code == 201
        assert http.post("/v1/reports", json=env).status_code == 200  # the same again: duplicate
        forged = dev.sign()
        forged["signatures"] = [{"keyid": env["signatures"][0]["keyid"], "sig": base64.b64encode(b"\0" * 64).decode()}]
        refused = http.post("/v1/reports", json=forged)
        assert refused.status_code in (400, 403, 422)
        reason = refused.json()["error"]["code"]
        assert http.post("/v1/reports", content=b"{not json").status_code == 400
        # One digest waiting in the notification outbox.
        _queue_one_digest(c)
        # Token on the main port: none, a wrong one, the right one.
        assert http.get("/metrics").status_code == 401
        assert http.get("/metrics", headers={"Authorization": "Bearer wrong-token-000000000"}).status_code == 401
        r = http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = _samples(r.text)
    assert m["auditagent_reports_total", (("outcome", "stored"), ("reason", ""))] == 1
    assert m["auditagent_reports_total", (("outcome", "duplicate"), ("reason", ""))] == 1
    assert m["auditagent_reports_total", (("outcome", "refused"), ("reason", reason))] == 1
    assert m["auditagent_reports_total", (("outcome", "refused"), ("reason", "malformed_json"))] == 1
    assert m["auditagent_report_ingest_seconds_count", ()] == 4
    assert m["auditagent_notification_queue_depth", ()] == 1
    # Devices by state per top-level unit, as the API's unit tree counts them.
    with c.engine.connect() as conn:
        from server import readiness as rd

        tree = {u.path: u for u in rd.unit_tree(conn, rd.Scope(None), dt.datetime.now(dt.timezone.utc))}
    for top in ("Socialförvaltningen", "Arbetsmarknad"):
        counts = tree[top].counts
        for state in ("ready", "never_reported"):
            assert m["auditagent_devices", (("state", state), ("unit", top))] == getattr(counts, state)
    assert m["auditagent_devices", (("state", "ready"), ("unit", "Socialförvaltningen"))] == 1
    assert m["auditagent_devices", (("state", "never_reported"), ("unit", "Arbetsmarknad"))] == 1
    assert not any(k[0] == "auditagent_devices" and dict(k[1])["unit"].count("/") for k in m)  # top level only
    # The separate listener needs no token and shows the same figures.
    side = httpx.get(f"http://127.0.0.1:{c.metrics_port}/metrics", timeout=10)
    assert side.status_code == 200
    assert _samples(side.text)["auditagent_reports_total", (("outcome", "stored"), ("reason", ""))] == 1
    assert METRICS_TOKEN not in side.text and METRICS_TOKEN not in c.log_path.read_text(errors="replace")


def _queue_one_digest(c) -> None:
    from server import auth
    from server.notify import outbox, subscriptions

    now = dt.datetime.now(dt.timezone.utc)
    unit_id = next(u["id"] for u in c.store.list_units() if u["path"] == "Arbetsmarknad")
    with c.engine.begin() as conn:
        officer = auth.create_user(conn, username="metrics-officer", role="security_officer",
                                   password="metrics officer password")
        sub, _ = subscriptions.subscribe(conn, officer, unit_id=unit_id, channel="email", target="o@kommun.test",
                                         events=["silent"])
        assert outbox.enqueue(conn, sub.id, now.date(), {"type": "auditagent.digest"}, now)


def test_metrics_token_file_must_be_private(tmp_path, capsys):
    from server import cli

    f = tmp_path / "open.token"
    f.write_text(METRICS_TOKEN)
    f.chmod(0o644)
    code = cli.main(["serve", "--db", f"sqlite:///{tmp_path / 'c.db'}", "--port", str(free_port()),
                     "--metrics-token-file", str(f)])
    assert code == 2 and "chmod 600" in capsys.readouterr().err
    f.chmod(0o600)
    f.write_text("short")
    with pytest.raises(ValueError, match="at least 16"):
        from server import metrics

        metrics.read_token_file(str(f))


def test_database_errors_are_counted(collector_db_url):
    from sqlalchemy import text

    from collector_fixtures import migrated_app

    app = migrated_app(collector_db_url)
    with pytest.raises(Exception):
        with app.state.store.engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))
    data, _ = app.state.metrics.exposition()
    kinds = {dict(k[1])["kind"]: v for k, v in _samples(data.decode()).items()
             if k[0] == "auditagent_database_errors_total"}
    assert sum(kinds.values()) == 1 and set(kinds) <= {"OperationalError", "UndefinedTable", "ProgrammingError"}
    app.state.store.engine.dispose()
