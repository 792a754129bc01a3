"""Prometheus metrics (prometheus-client), never open by default.

Exposed either at ``/metrics`` on the collector's own port, for a scraper that sends
``Authorization: Bearer <metrics token>`` (``serve --metrics-token-file F``: the token
is read once, only its sha256 is kept, compared in constant time), or on a separate
listener with no token (``serve --metrics-listen 127.0.0.1:9464``), meant for an
address only the monitoring network reaches. With neither, ``/metrics`` answers 404.

What is measured:

* ``auditagent_reports_total{outcome, reason}`` — POST /v1/reports answers: outcome
  ``stored`` / ``duplicate`` / ``refused``, reason the error code of a refusal
  (``bad_signature``, ``payload_too_large`` ...), ``""`` otherwise;
* ``auditagent_report_ingest_seconds`` — how long those answers took (histogram);
* ``auditagent_devices{unit, state}`` — devices by state per top-level unit, counted
  at scrape time by the one definition of a device's state (server.readiness);
* ``auditagent_notification_queue_depth`` — undelivered messages in the outbox;
* ``auditagent_database_errors_total{kind}`` — errors the database driver raised.

Each app has its own registry (no global state), so several apps in one process
(tests) do not collide. With several worker processes each counts its own requests;
the gauges come from the database and agree.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import time
from typing import Any, Callable, Iterable

from fastapi import Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import event
from sqlalchemy.engine import Engine

from server.store import ApiError

REPORTS_PATH = "/v1/reports"
INGEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


class _StateCollector:
    """Gauges read from the database when scraped."""

    def __init__(self, engine: Engine, default_max_age_hours: int,
                 queue_depth: Callable[[Any], int] | None) -> None:
        self.engine = engine
        self.default_max_age_hours = default_max_age_hours
        self.queue_depth = queue_depth

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from server import readiness as rd

        devices = GaugeMetricFamily("auditagent_devices", "Devices by state per top-level unit (sub-units included)",
                                    labels=["unit", "state"])
        with self.engine.connect() as conn:
            now = dt.datetime.now(dt.timezone.utc)
            for unit in rd.unit_tree(conn, rd.Scope(None), now, default_max_age_hours=self.default_max_age_hours):
                if unit.parent_id is not None:
                    continue
                for f in dataclasses.fields(unit.counts):
                    devices.add_metric([unit.path, f.name], getattr(unit.counts, f.name))
            yield devices
            depth = GaugeMetricFamily("auditagent_notification_queue_depth",
                                      "Notification messages waiting in the outbox (e-mail and webhook)")
            depth.add_metric([], self.queue_depth(conn) if self.queue_depth else 0)
            yield depth


class Metrics:
    def __init__(self, engine: Engine, *, default_max_age_hours: int,
                 queue_depth: Callable[[Any], int] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.reports = Counter("auditagent_reports", "Report submissions by outcome and refusal reason",
                               ["outcome", "reason"], registry=self.registry)
        self.ingest_seconds = Histogram("auditagent_report_ingest_seconds", "Time to answer POST /v1/reports",
                                        buckets=INGEST_BUCKETS, registry=self.registry)
        self.db_errors = Counter("auditagent_database_errors", "Errors raised by the database driver", ["kind"],
                                 registry=self.registry)
        self.registry.register(_StateCollector(engine, default_max_age_hours, queue_depth))  # type: ignore[arg-type]
        event.listen(engine, "handle_error", self._on_db_error)

    def _on_db_error(self, context: Any) -> None:
        self.db_errors.labels(kind=type(context.original_exception).__name__).inc()

    def record_report(self, status: int, body: bytes, seconds: float) -> None:
        self.ingest_seconds.observe(seconds)
        if status == 201:
            self.reports.labels(outcome="stored", reason="").inc()
        elif status == 200:
            self.reports.labels(outcome="duplicate", reason="").inc()
        else:
            self.reports.labels(outcome="refused", reason=_error_code(body, status)).inc()

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def serve_separately(self, host: str, port: int) -> Any:
        """A listener of its own (a thread) for the scraper; returns the server."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server


def _error_code(body: bytes, status: int) -> str:
    """The ``error.code`` of the collector's own JSON error body; a fixed label set, not
    the client's text (the codes are the collector's, never echoed input)."""
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return f"http_{status}"
    return code if isinstance(code, str) and code.isidentifier() and len(code) <= 40 else f"http_{status}"


class ReportMetricsMiddleware:
    """ASGI middleware: times POST /v1/reports and counts its answers, whichever layer
    answered (the body limit, validation or the store)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") != REPORTS_PATH:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        body = bytearray()

        async def watching_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status >= 400 and len(body) < 4096:
                body.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            self.metrics.record_report(status, bytes(body), time.perf_counter() - started)


def authorised(expected_sha256: str, authorization: str | None) -> bool:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    return hmac.compare_digest(token_sha256(token), expected_sha256)


def install(app: Any, engine: Engine, settings: Any, queue_depth: Callable[[Any], int] | None = None) -> Metrics:
    """Measure the app; add ``/metrics`` only when a metrics token is configured."""
    metrics = Metrics(engine, default_max_age_hours=settings.default_max_report_age_hours, queue_depth=queue_depth)
    app.add_middleware(ReportMetricsMiddleware, metrics=metrics)
    app.state.metrics = metrics
    expected = getattr(settings, "metrics_token_sha256", None)
    if expected is None:
        return metrics

    @app.get("/metrics", tags=["ops"], responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    def prometheus_metrics(request: Request) -> Response:
        """Prometheus text format; needs ``Authorization: Bearer <metrics token>``."""
        if not authorised(expected, request.headers.get("authorization")):
            raise ApiError(401, "not_authenticated", "send the metrics token as Authorization: Bearer")
        data, ctype = metrics.exposition()
        return Response(data, media_type=ctype)

    return metrics


def read_token_file(path: str | None) -> str | None:
    """sha256 of the token in ``path`` (first line); refuses a file others can read."""
    if path is None:
        return None
    import os
    import stat

    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"{path}: the metrics token file must be readable by its owner only (chmod 600)")
    with open(path, encoding="utf-8") as f:
        token = f.readline().strip()
    if len(token) < 16:
        raise ValueError(f"{path}: the metrics token must be at least 16 characters")
    return token_sha256(token)


def parse_listen(text: str) -> tuple[str, int]:
    """'127.0.0.1:9464' or '[::1]:9464' → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"--metrics-listen {text!r}: use HOST:PORT, e.g. 127.0.0.1:9464")
    return host.strip("[]"), int(port)
