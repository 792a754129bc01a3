"""Delivery with retry, against a tiny scripted HTTP server on 127.0.0.1: backoff with
full jitter, Retry-After (seconds and HTTP date), idempotent acknowledgement,
permanent refusals kept, the plain-http rule enforced before any connection."""
from __future__ import annotations

import datetime as dt
import email.utils
import json
import random
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from auditagent.send import (DELIVERED, DUPLICATE, FATAL, REJECTED, RETRY, Client, Response, TransportError,
                             MAX_FAILED_RUNS, TransportSettings, backoff_delay, check_url, classify, deliver_spool,
                             is_loopback, parse_retry_after)
from auditagent.spool import Spool


class Scripted:
    """Answers POSTs with a script of (status, headers, body); records what it received."""

    def __init__(self, script):
        self.script = script[0] if len(script) == 1 and callable(script[0]) else list(script)
        self.received: list[bytes] = []
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.received.append(body)
                outer.paths.append(self.path)
                if callable(outer.script):  # an answer per request body
                    status, headers, payload = outer.script(body)
                else:
                    status, headers, payload = outer.script.pop(0) if outer.script else (201, {}, None)
                if payload is None:
                    rid = json.loads(body).get("id", "x") if body.startswith(b"{") else "x"
                    payload = {"report_id": rid, "status": "stored"}
                data = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted():
    servers = []

    def make(*script):
        s = Scripted(script)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def spool_with(tmp_path, n):
    spool = Spool(tmp_path / "spool")
    ids = []
    for seq in range(1, n + 1):
        r = str(uuid.uuid4())
        spool.add(json.dumps({"id": r, "seq": seq}).encode(), seq, r)
        ids.append(r)
    return spool, ids


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def err(code, message="x"):
    return {"error": {"code": code, "message": message}}


# ------------------------------------------------------------------ pure parts


@pytest.mark.parametrize("host,expected", [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True),
                                           ("[::1]", True), ("localhost", True), ("10.0.0.1", False),
                                           ("audit.example.org", False), ("", False)])
def test_is_loopback(host, expected):
    assert is_loopback(host) is expected


def test_plain_http_only_to_loopback_or_with_insecure_flag():
    check_url("https://audit.example.org")
    check_url("http://127.0.0.1:8080")
    check_url("http://localhost/x")
    with pytest.raises(TransportError, match="refusing plain http to audit.example.org"):
        check_url("http://audit.example.org")
    check_url("http://audit.example.org", insecure_http=True)
    with pytest.raises(TransportError, match="not a collector URL"):
        check_url("ftp://audit.example.org")


def test_plain_http_refused_before_any_connection():
    # A listening socket that would record any connection attempt.
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.3)
    with pytest.raises(TransportError):
        # 10.255.255.1 is not loopback: refused without resolving or connecting anywhere.
        Client(TransportSettings(server="http://10.255.255.1:9"))
    with pytest.raises(socket.timeout):
        listener.accept()
    listener.close()


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("120") == 120.0
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    date = email.utils.format_datetime(now + dt.timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(date, now) == pytest.approx(90.0)
    assert parse_retry_after(email.utils.format_datetime(now - dt.timedelta(seconds=5), usegmt=True), now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_backoff_is_exponential_with_full_jitter():
    rng = random.Random(1)
    for attempt in range(8):
        ceiling = min(30.0, 0.5 * 2 ** attempt)
        samples = [backoff_delay(attempt, 0.5, 30.0, rng) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8 and min(samples) < ceiling * 0.2  # spread over the whole range


@pytest.mark.parametrize("status,body,kind", [
    (201, {"report_id": "r", "status": "stored"}, DELIVERED),
    (200, {"report_id": "r", "status": "duplicate"}, DUPLICATE),
    (409, err("report_id_conflict"), DUPLICATE),
    (409, err("replayed_sequence"), REJECTED),
    (403, err("bad_signature"), REJECTED),
    (413, err("payload_too_large"), REJECTED),
    (422, err("clock_skew"), REJECTED),
    (429, err("rate_limited"), RETRY),
    (503, err("unavailable"), RETRY),
    (500, b"<html>oops</html>", RETRY),
    (301, b"", FATAL),
    (404, err("not_found"), FATAL),
    (404, b"<html>Not Found</html>", FATAL),
])
def test_classify(status, body, kind):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    assert classify(Response(status, {}, raw)).kind == kind


# ------------------------------------------------------------------ against a real local server


def test_503_with_retry_after_is_honoured_then_delivered(tmp_path, scripted):
    srv = scripted((503, {"Retry-After": "2"}, err("unavailable")), (429, {"Retry-After": "1"}, err("slow_down")))
    spool, ids = spool_with(tmp_path, 2)
    client = Client(TransportSettings(server=srv.url))
    sleeps = Sleeps()
    summary = deliver_spool(spool, client.send_report, attempts=5, base_delay=0.01, max_delay=60, sleep=sleeps,
                            rng=random.Random(0))
    assert summary.delivered == 2 and summary.remaining == 0 and spool.depth() == 0
    assert sleeps[0] >= 2.0 and sleeps[1] >= 1.0  # at least what the server asked for
    # Oldest first, the first report three times (503, 429, 201), then the second once.
    assert [json.loads(b)["seq"] for b in srv.received] == [1, 1, 1, 2]
    assert srv.paths == ["/v1/reports"] * 4


def test_duplicate_acknowledgement_removes_the_report(tmp_path, scripted):
    srv = scripted((200, {}, {"report_id": "r", "status": "duplicate"}))
    spool, _ = spool_with(tmp_path, 1)
    summary = deliver_spool(spool, Client(TransportSettings(server=srv.url)).send_report, sleep=Sleeps())
    assert summary.duplicates == 1 and summary.delivered == 0 and spool.depth() == 0


def test_permanent_refusal_moves_to_rejected_and_continues(tmp_path, scripted):
    srv = scripted((422, {}, err("schema_violation", "predicate.facts: must be an object")), (201, {}, None))
    spool, ids = spool_with(tmp_path, 2)
    summary = deliver_spool(spool, Client(TransportSettings(server=srv.url)).send_report, sleep=Sleeps())
    assert summary.delivered == 1 and spool.depth() == 0
    assert [r["code"] for r in summary.rejected] == ["schema_violation"]
    assert [e.report_id for e in spool.rejected()] == [ids[0]]


def test_bounded_attempts_keep_the_report_and_the_order(tmp_path, scripted):
    srv = scripted(*[(503, {}, err("unavailable"))] * 3)
    spool, ids = spool_with(tmp_path, 3)
    sleeps = Sleeps()
    summary = deliver_spool(spool, Client(TransportSettings(server=srv.url)).send_report, attempts=3,
                            base_delay=1.0, max_delay=30, sleep=sleeps, rng=random.Random(3))
    assert summary.delivered == 0 and summary.remaining == 3
    assert len(srv.received) == 3  # only the oldest was tried; nothing overtakes it
    assert len(sleeps) == 2 and sleeps[0] <= 1.0 and sleeps[1] <= 2.0
    assert "after 3 tries" in summary.stopped


def test_one_report_the_collector_fails_on_does_not_hold_back_the_others(tmp_path, scripted):
    spool, ids = spool_with(tmp_path, 3)
    poison = ids[0]
    srv = scripted(lambda body: (500, {}, err("internal")) if poison.encode() in body else (201, {}, None))
    send = Client(TransportSettings(server=srv.url)).send_report
    summary = deliver_spool(spool, send, attempts=2, base_delay=0.01, sleep=Sleeps())
    assert summary.delivered == 2 and [e.report_id for e in spool.entries()] == [poison]
    assert [d["report_id"] for d in summary.deferred] == [poison] and not summary.stopped
    for run in range(2, MAX_FAILED_RUNS + 1):  # later runs: new reports keep getting through
        new = str(uuid.uuid4())
        spool.add(json.dumps({"id": new, "seq": 10 + run}).encode(), 10 + run, new)
        summary = deliver_spool(spool, send, attempts=2, base_delay=0.01, sleep=Sleeps())
        assert summary.delivered == 1
    # Set aside after MAX_FAILED_RUNS runs: never retried forever, kept and inspectable.
    assert spool.depth() == 0 and [e.report_id for e in spool.rejected()] == [poison]
    assert spool.reason(spool.rejected()[0])["code"] == "undeliverable"
    assert [r["code"] for r in summary.rejected] == ["undeliverable"]


def test_a_collector_failing_on_everything_counts_no_report_as_bad(tmp_path, scripted):
    srv = scripted(lambda body: (500, {}, err("internal")))
    spool, ids = spool_with(tmp_path, 3)
    for _ in range(MAX_FAILED_RUNS + 1):
        summary = deliver_spool(spool, Client(TransportSettings(server=srv.url)).send_report, attempts=1,
                                sleep=Sleeps())
        assert summary.stopped and summary.delivered == 0
    assert [e.report_id for e in spool.entries()] == ids and spool.rejected() == []


def test_retry_after_longer_than_the_cap_defers_to_the_next_run(tmp_path, scripted):
    srv = scripted((503, {"Retry-After": "3600"}, err("maintenance")))
    spool, _ = spool_with(tmp_path, 1)
    sleeps = Sleeps()
    summary = deliver_spool(spool, Client(TransportSettings(server=srv.url)).send_report, max_delay=300,
                            sleep=sleeps)
    assert sleeps == [] and spool.depth() == 1 and "3600" in summary.stopped


def test_collector_down_keeps_everything(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    spool, _ = spool_with(tmp_path, 2)
    summary = deliver_spool(spool, Client(TransportSettings(server=f"http://127.0.0.1:{port}", timeout=2)).send_report,
                            attempts=2, base_delay=0.01, sleep=Sleeps())
    assert summary.remaining == 2 and summary.last_error["code"] == "connection"


def test_sending_does_not_load_requests_until_needed():
    import subprocess
    import sys

    from conftest import REPO

    code = ("import sys\nimport auditagent.send, auditagent.spool, auditagent.policy_cache, auditagent.delivery\n"
            "print('requests' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def _top_level_imports(root) -> dict[str, set[str]]:
    """Top-level package names each .py file under ``root`` imports."""
    import ast

    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            found.setdefault(str(path), set()).update(n.split(".")[0] for n in names)
    return found


@pytest.mark.parametrize("library, also", [("requests", ("urllib3",)), ("structlog", ())])
def test_collector_only_libraries_are_neither_used_nor_declared_by_the_agent(library, also):
    """The agent speaks http.client (proxy included: CONNECT via set_tunnel) and writes its own
    log lines (auditagent/log.py); requests (OpenID, webhooks) and structlog (JSON logs) are
    the collector's, declared in its extra, so they are not installed on laptops."""
    import tomllib

    from conftest import REPO

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.lower().startswith(library)]
    assert any(d.startswith(library) for d in project["optional-dependencies"]["server"])
    for path, names in _top_level_imports(REPO / "auditagent").items():
        assert not names & {library, *also}, path
    assert any(library in names for names in _top_level_imports(REPO / "server").values())
