"""Notifications (server/notify/) on SQLite and PostgreSQL: subscriptions through the
API (scoped like every route), the daily digest from the one definition of device
state, e-mail to a real SMTP server on loopback (aiosmtpd, STARTTLS required, the
certificate verified against a test CA), webhooks to a real HTTP receiver on loopback
(HMAC-SHA256 over timestamp + body), retried with backoff from the outbox in the
database — across a "restart" (new engine, nothing kept in memory) and a crash after
claiming."""
from __future__ import annotations

import datetime as dt
import email
import hashlib
import hmac
import json
import ssl
import threading
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest
from sqlalchemy import select

from collector_fixtures import free_port, make_test_ca
from readiness_fleet import AO, EB, IFO, NOW, PASSWORD
from server import readiness as rd
from server.db import make_engine, notify_outbox, notify_subscriptions
from server.notify import channels, outbox, subscriptions, worker
from server.notify.config import NotifyConfig, SmtpConfig

DAY = dt.timedelta(days=1)


# ------------------------------------------------------------------ real servers on loopback


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.tls_seen: list[bool] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd handler
        self.tls_seen.append(session.ssl is not None)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email_policy))
        return "250 OK"


@pytest.fixture(scope="module")
def smtp(tmp_path_factory) -> Iterator[Any]:
    from aiosmtpd.controller import Controller

    tls = make_test_ca(tmp_path_factory.mktemp("smtp-tls"))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(tls.cert), str(tls.key))
    inbox = Inbox()
    port = free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True)
    ctl.start()
    inbox.port, inbox.ca = port, str(tls.ca)  # type: ignore[attr-defined]
    try:
        yield inbox
    finally:
        ctl.stop()


class Receiver:
    """A webhook receiver: records each request, answers with the next queued status."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.server.shutdown()


def _config(smtp: Any = None) -> NotifyConfig:
    return NotifyConfig(smtp=SmtpConfig(host="127.0.0.1", port=smtp.port, sender="auditagent@kommun.test",
                                        ca_file=smtp.ca) if smtp else None,
                        webhook_allowed_hosts=("127.0.0.1",), digest_hour_utc=6, max_attempts=3)


def _fresh_engine(fleet: Any) -> Any:
    """A new engine on the same database: what a restarted collector has."""
    return make_engine(str(fleet.store.engine.url.render_as_string(hide_password=False)), pool_size=1,
                       max_overflow=2)


def _reset(fleet: Any) -> None:
    with fleet.store.engine.begin() as conn:
        conn.execute(notify_outbox.delete())
        conn.execute(notify_subscriptions.delete())


# ------------------------------------------------------------------ subscriptions


def test_subscribe_is_scoped_and_validated(fleet):
    _reset(fleet)
    so_ifo = fleet.users["so_ifo"]
    cfg = _config()
    with fleet.store.engine.begin() as conn:
        with pytest.raises(rd.NotFound):  # a unit outside the officer's subtree is "not found"
            subscriptions.subscribe(conn, so_ifo, unit_id=fleet.units[AO], channel="email",
                                    target="ifo@kommun.test", events=["not_ready"], config=cfg)
        bad = [dict(channel="fax", target="x"), dict(channel="email", target="not an address"),
               dict(channel="email", target="a@b.se", events=["everything"]),
               dict(channel="email", target="a@b.se", events=["below_target"]),
               dict(channel="email", target="a@b.se", exception_days=0),
               dict(channel="email", target="a@b.se", lang="fi"),
               dict(channel="webhook", target="http://siem.example/hook"),
               dict(channel="webhook", target="https://not-allowed.example/hook")]
        for kw in bad:
            args = dict(unit_id=fleet.units[IFO], events=["not_ready"], config=cfg) | kw
            with pytest.raises(Exception) as err:
                subscriptions.subscribe(conn, so_ifo, **args)
            assert getattr(err.value, "status", None) == 422, kw
        info, secret = subscriptions.subscribe(conn, so_ifo, unit_id=fleet.units[IFO], channel="webhook",
                                               target="http://127.0.0.1:9/hook", events=["silent"], config=cfg)
        assert secret and len(secret) >= 40 and info.unit == IFO and info.lang == so_ifo.lang
        assert [s.id for s in subscriptions.list_subscriptions(conn, so_ifo.id)] == [info.id]
        assert subscriptions.list_subscriptions(conn, fleet.users["so_all"].id) == []
        with pytest.raises(Exception) as err:  # someone else's subscription: not found
            subscriptions.unsubscribe(conn, fleet.users["so_all"], info.id)
        assert err.value.status == 404
        subscriptions.unsubscribe(conn, so_ifo, info.id)
        assert subscriptions.list_subscriptions(conn, so_ifo.id) == []


# ------------------------------------------------------------------ digests and delivery


def _report_now(fleet: Any, name: str, hours_after_now: float, fail: dict[str, str] | None = None) -> None:
    fleet.report(name, -hours_after_now, fail)


def test_daily_digest_by_email_in_the_subscribers_language(fleet, smtp):
    _reset(fleet)
    cfg = _config(smtp)
    engine = fleet.store.engine
    with engine.begin() as conn:
        sv, _ = subscriptions.subscribe(conn, fleet.users["so_ifo"], unit_id=fleet.units[EB], channel="email",
                                        target="ifo-sakerhet@kommun.test", events=["not_ready", "silent",
                                                                                  "below_target"],
                                        target_pct=95, lang="sv", config=cfg, now=NOW)
        da, _ = subscriptions.subscribe(conn, fleet.users["so_all"], unit_id=fleet.units[EB], channel="email",
                                        target="it@kommune.test", events=["not_ready"], lang="da", config=cfg,
                                        now=NOW)
    before = {d.id: d.state for d in _states(fleet, NOW)}
    turning = next(n for n in ("eb1", "eb2", "eb3", "eb4", "eb5", "eb6") if before[fleet.devices[n].id] == rd.READY)
    # Before the digest hour: nothing. Then the first digest only takes the baseline.
    assert worker.run_once(engine, cfg, NOW.replace(hour=5)).digests == 0
    first = worker.run_once(engine, cfg, NOW)
    assert first.digests == 1  # below_target already holds for sv; da has no transition yet
    assert worker.run_once(engine, cfg, NOW + dt.timedelta(hours=3)).digests == 0  # once a day
    n_first = len(smtp.messages)
    # A device turns not ready; a day later the digest says so (and who went silent).
    _report_now(fleet, turning, 2, {"firewall": "fail"})
    day2 = NOW + DAY
    after = {d.id: d for d in _states(fleet, day2)}
    p = worker.run_once(engine, cfg, day2)
    assert p.digests == 2 and p.delivered == 2 and p.failed == 0
    mails = smtp.messages[n_first:]
    assert all(smtp.tls_seen)  # STARTTLS every time
    by_to = {m["To"]: m for m in mails}
    sv_mail, da_mail = by_to["ifo-sakerhet@kommun.test"], by_to["it@kommune.test"]
    assert sv_mail["Subject"] == f"auditagent: dagens sammanfattning för {EB}"
    assert da_mail["Subject"] == f"auditagent: dagens oversigt for {EB}"
    sv_text, da_text = sv_mail.get_content(), da_mail.get_content()
    assert f"{turning}-laptop" in sv_text and f"{turning}-laptop" in da_text
    assert "inte redo" in sv_text and "ikke klar" in da_text
    silent = sorted(after[d].hostname for d in after if after[d].state == rd.STALE and before[d] != rd.STALE)
    for host in silent:
        assert host in sv_text and host not in da_text  # da did not ask for "silent"
    if silent:
        assert "slutat rapportera" in sv_text
    assert "under målet 95 %" in sv_text
    # The device's agent-controlled host name is plain text in a text/plain mail.
    assert sv_mail.get_content_type() == "text/plain"
    with engine.connect() as conn:
        assert outbox.depth(conn) == 0


def _states(fleet: Any, now: dt.datetime) -> list[Any]:
    with fleet.store.engine.connect() as conn:
        q = rd.device_state_rows(conn, rd.Scope(unit_path=EB), now).subquery()
        return list(conn.execute(select(q.c.id, q.c.hostname, q.c.state)))


def _webhook_digest(fleet: Any, receiver: Receiver, now: dt.datetime) -> tuple[NotifyConfig, str, int]:
    _reset(fleet)
    cfg = _config()
    with fleet.store.engine.begin() as conn:
        sub, secret = subscriptions.subscribe(conn, fleet.users["so_all"], unit_id=fleet.units[EB],
                                              channel="webhook", target=receiver.url,
                                              events=["exception_expiring", "below_target"], exception_days=30,
                                              target_pct=100, lang="en", config=cfg, now=now)
    assert worker.make_digests(fleet.store.engine, cfg, now) == 1
    return cfg, secret, sub.id


def test_webhook_signed_retried_and_durable_across_restart(fleet, receiver):
    now = NOW + 3 * DAY
    with fleet.store.engine.begin() as conn:
        e = rd.grant_exception(conn, fleet.users["so_all"], check_id="firewall",
                               device_id=fleet.devices["eb3"].id, expires_at=now + 10 * DAY,
                               justification="replacement laptop on order", now=now)
    cfg, secret, sid = _webhook_digest(fleet, receiver, now)
    receiver.statuses = [503]
    p = worker.deliver_due(fleet.store.engine, cfg, now)
    assert p == (0, 1) and len(receiver.requests) == 1
    with fleet.store.engine.connect() as conn:
        row = conn.execute(select(notify_outbox)).mappings().one()
        assert row["attempts"] == 1 and row["last_error"] == "webhook: HTTP 503" and row["delivered_at"] is None
        assert outbox.next_attempt(conn, row["id"]) == now + outbox.backoff(1)
        assert outbox.depth(conn) == 1
    # "Restart": a new engine, nothing in memory. Not due yet, then due and delivered.
    engine2 = _fresh_engine(fleet)
    try:
        assert worker.deliver_due(engine2, cfg, now + dt.timedelta(seconds=30)) == (0, 0)
        assert worker.deliver_due(engine2, cfg, now + dt.timedelta(minutes=2)) == (1, 0)
        assert worker.deliver_due(engine2, cfg, now + dt.timedelta(hours=1)) == (0, 0)  # once
    finally:
        engine2.dispose()
    assert len(receiver.requests) == 2
    for headers, body in receiver.requests:
        ts = headers[channels.TIMESTAMP_HEADER.lower()]
        expected = "sha256=" + hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers[channels.SIGNATURE_HEADER.lower()], expected)
        assert headers["content-type"] == "application/json"
    digest = json.loads(receiver.requests[-1][1])
    assert digest["type"] == "auditagent.digest" and digest["unit"] == EB and digest["subscription_id"] == sid
    ending = digest["events"]["exception_expiring"]["exceptions"]
    assert [x["exception_id"] for x in ending] == [e.id] and ending[0]["check_id"] == "firewall"
    assert digest["events"]["below_target"]["target_pct"] == 100
    assert "justification" not in json.dumps(digest)  # nothing beyond what the list shows
    # A tampered body does not verify with the same header.
    headers, body = receiver.requests[-1]
    ts = headers[channels.TIMESTAMP_HEADER.lower()]
    assert channels.signature(secret, int(ts), body + b" ") != headers[channels.SIGNATURE_HEADER.lower()]


def test_claimed_then_crashed_is_retried_after_the_lease(fleet, receiver):
    now = NOW + 5 * DAY
    cfg, _secret, _ = _webhook_digest(fleet, receiver, now)
    with fleet.store.engine.begin() as conn:
        assert len(outbox.claim_due(conn, now)) == 1  # ... and the process dies before sending
    with fleet.store.engine.begin() as conn:
        assert outbox.claim_due(conn, now) == []  # nobody else sends it meanwhile
    assert worker.deliver_due(fleet.store.engine, cfg, now + dt.timedelta(minutes=1)) == (0, 0)
    assert worker.deliver_due(fleet.store.engine, cfg, now + outbox.LEASE) == (1, 0)
    assert len(receiver.requests) == 1


def test_gives_up_after_max_attempts(fleet, receiver):
    now = NOW + 7 * DAY
    cfg, _secret, _ = _webhook_digest(fleet, receiver, now)
    receiver.statuses = [500, 500, 500]
    t = now
    for _ in range(cfg.max_attempts):
        assert worker.deliver_due(fleet.store.engine, cfg, t) == (0, 1)
        t += outbox.MAX_RETRY
    with fleet.store.engine.connect() as conn:
        row = conn.execute(select(notify_outbox)).mappings().one()
        assert row["failed_at"] is not None and row["attempts"] == cfg.max_attempts
        assert outbox.depth(conn) == 0
    assert worker.deliver_due(fleet.store.engine, cfg, t + DAY) == (0, 0)


def test_backoff_doubles_to_a_cap():
    assert [outbox.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [60, 120, 240, 480]
    assert outbox.backoff(30) == outbox.MAX_RETRY


def test_subscriptions_api(fleet):
    from fastapi.testclient import TestClient

    from server.app import Settings, create_app

    app = create_app(Settings(db_url=str(fleet.store.engine.url.render_as_string(hide_password=False)),
                              pool_size=1, max_overflow=2, notify=_config()))
    with TestClient(app, base_url="https://testserver") as http:
        r = http.post("/api/v1/login", json={"username": "mgr_eb", "password": PASSWORD})
        http.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        body = {"unit_id": fleet.units[EB], "channel": "email", "target": "eb@kommun.test", "events": ["silent"]}
        r = http.post("/api/v1/subscriptions", json=body)
        assert r.status_code == 201 and r.json()["webhook_secret"] is None
        sid = r.json()["subscription"]["id"]
        assert http.post("/api/v1/subscriptions", json=body | {"unit_id": fleet.units[AO]}).status_code == 404
        r = http.post("/api/v1/subscriptions", json=body | {"events": ["nope"]})
        assert r.status_code == 422
        assert [s["id"] for s in http.get("/api/v1/subscriptions").json()] == [sid]
        assert http.delete(f"/api/v1/subscriptions/{sid}").status_code == 204
        assert http.delete(f"/api/v1/subscriptions/{sid}").status_code == 404
    app.state.store.engine.dispose()


def test_becoming_due_and_its_grace_running_out_are_both_told():
    """A device newly failing inside a grace period is told (it has until its deadline);
    when the grace runs out (due → not ready) it is told again; a not-ready device whose
    checks without grace were fixed while one with grace still fails (→ due) is not."""
    from server.notify.digest import transitions
    from server.notify.events import NOT_READY as BECAME
    from server.notify.messages import render_text

    prev = {"a": "ready", "b": "due", "c": "not_ready", "d": "due", "e": "stale"}
    now = {"a": "due", "b": "not_ready", "c": "due", "d": "due", "e": "not_ready"}
    assert transitions(prev, now)[BECAME] == ["a", "b", "e"]
    digest = {"lang": "sv", "unit": "IFO", "day": "2026-12-01", "ready_pct": 90.0, "events": {BECAME: {
        "count": 1, "devices": [{"device_id": "a", "hostname": "a-laptop", "unit": "IFO", "state": "due",
                                 "previous": "ready", "due_until": "2026-12-03T10:00:00+00:00"}]}}}
    assert "a-laptop (IFO): åtgärd krävs, åtgärda senast 2026-12-03 10:00 UTC" in render_text(digest)[1]
