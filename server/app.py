"""The collector's HTTP API (FastAPI; OpenAPI document at /openapi.json, docs at /docs).

JSON everywhere; every error is ``{"error": {"code": "...", "message": "..."}}`` with a
precise 4xx status.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from starlette._utils import get_route_path
from starlette.exceptions import HTTPException as StarletteHTTPException

from auditagent import __version__
from auditagent import report as wire
from auditagent import signed_request
from server import device_auth
from server.db import make_engine, now
from server.local_time import DEFAULT_ZONE
from server.error_models import error_responses as _errors
from server.migrate import head_revision
from server.report_endpoint import LeanReports, ReportEndpoint
from server.strict_json import StrictJsonRoute
from server.store import ApiError, Limits, Store


log = structlog.get_logger("auditagent.collector")


@dataclass(frozen=True)
class Settings:
    db_url: str
    limits: Limits = field(default_factory=Limits)
    pool_size: int = 10
    max_overflow: int = 30
    # Drop the Secure flag of the session cookie: only for http on loopback (tests, local
    # preview); `serve` refuses it otherwise. See server/auth.py.
    insecure_cookies: bool = False
    default_max_report_age_hours: int = 24  # units (and their ancestors) without their own
    min_agent_version: str | None = None  # agents below it are flagged outdated (else: below the newest seen)
    metrics_token_sha256: str | None = None  # /metrics for a scraper with this token (server/metrics.py)
    oidc: Any = None  # server.oidc.OidcConfig: single sign-on; None = password log-in only
    notify: Any = None  # server.notify.config.NotifyConfig: SMTP and webhook settings; None = no delivery
    readiness_ca: str | None = None  # folder of the readiness CA (server/readiness_ca.py); None: no certificates
    certificate_lifetime: dt.timedelta | None = None  # None: the unit's max report age (never above 24 h)
    readiness_target: float = 95.0  # % of ready devices a unit should reach; the overview marks units below
    time_zone: str = DEFAULT_ZONE  # the organisation's zone: times and dates on the dashboard (stored UTC)


class DeviceIdentity(BaseModel):
    hostname: str = Field(min_length=1, max_length=255)
    serial: str | None = Field(default=None, max_length=255)
    os: str | dict[str, Any] | None = None
    platform: str | None = Field(default=None, max_length=32)
    agent_version: str | None = Field(default=None, max_length=64)


class EnrollRequest(BaseModel):
    token: str = Field(min_length=1, max_length=512)
    public_key: str = Field(min_length=1, max_length=4096, description="Ed25519 public key, SubjectPublicKeyInfo PEM")
    device: DeviceIdentity
    device_id: str | None = Field(default=None, max_length=64,
                                  description="re-enrolment: the same device, a new key (token of the same unit, "
                                              "with rekey_proof; or the device's own re-enrol token)")
    rekey_proof: dict[str, Any] | None = Field(default=None, description="re-enrolment: DSSE envelope (payloadType "
                                               + wire.REKEY_PAYLOAD_TYPE + ") signed with the device's current key")


class EnrollResponse(BaseModel):
    device_id: str
    unit: str
    keyid: str
    policy_url: str
    next_sequence: int


class ReportAccepted(BaseModel):
    report_id: str
    status: str = Field(description="stored | history (older than the latest state; kept, not latest) | duplicate")
    sequence: int


# Responses other than the dashboard's pages (which set their own, stricter set): JSON,
# CSV, PEM, the OpenAPI document. Nothing in them is ever to be run or framed.
API_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
DB_RETRY_AFTER = 5  # seconds an agent waits before trying again when the database is away


class SecurityHeaders:
    """ASGI middleware: :data:`API_SECURITY_HEADERS` on every response that has not set them."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._headers = [(k.lower().encode(), v.encode()) for k, v in API_SECURITY_HEADERS.items()]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", ())}
                message["headers"] = list(message.get("headers", ())) + [
                    (k, v) for k, v in self._headers if k not in present]
            await send(message)

        await self.app(scope, receive, with_headers)


REPORT_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "title": "DSSE envelope",
            "type": "object",
            "required": ["payloadType", "payload", "signatures"],
            "properties": {
                "payloadType": {"type": "string", "const": wire.PAYLOAD_TYPE},
                "payload": {"type": "string", "description": "base64 of an in-toto Statement v1 with predicateType "
                                                             + wire.PREDICATE_TYPE},
                "signatures": {"type": "array", "items": {"type": "object", "required": ["keyid", "sig"],
                                                          "properties": {"keyid": {"type": "string"},
                                                                         "sig": {"type": "string"}}}},
            },
        }}},
    }
}


POLICY_AUTH_DOC = {
    "parameters": [{"name": "Authorization", "in": "header", "required": True, "schema": {"type": "string"},
                    "description": signed_request.SCHEME + " <base64url of a DSSE envelope, payloadType "
                                   + signed_request.PAYLOAD_TYPE + ", over {device_id, method, path, issued_at}, "
                                   "signed with the device key>"}],
}


class BodyLimit:
    """ASGI middleware: no request body larger than ``max_bytes`` on any route — checked on
    Content-Length up front, and on the bytes actually received (chunked or lying
    clients). Answers 413 payload_too_large."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    await _send_error(send, 400, "malformed_request", "Content-Length is not a number")
                    return
                if too_big:
                    await _send_error(send, 413, "payload_too_large",
                                      f"body of {int(value)} bytes exceeds the limit of {self.max_bytes} bytes")
                    return
        seen = 0
        started = False
        refused = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Answer now and tell the app the client is gone; whatever it does next is dropped.
                    refused = True
                    if not started:
                        await tracking_send(None)
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: dict[str, Any] | None) -> None:
            nonlocal started
            if message is None:
                started = True
                await _send_error(send, 413, "payload_too_large", f"body exceeds the limit of {self.max_bytes} bytes")
                return
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except Exception:
            if not refused:
                raise


async def _send_error(send: Any, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class CollectorApp(FastAPI):
    """The collector's FastAPI app, with routes served ahead of FastAPI's own stack from
    one table, :meth:`serve_lean` (POST /v1/reports, server/report_endpoint.py): the same
    middleware, handlers and answers, less CPU per report."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lean: dict[tuple[str, str], LeanReports] = {}  # (method, route path) -> endpoint

    def serve_lean(self, method: str, path: str, endpoint: Any) -> None:
        """Serve the documented route ``method path`` by ``endpoint`` ahead of the router.
        The router's route points at the same endpoint (it is matched only for what the
        table does not take: another method, a trailing slash), so one table decides."""
        route = next(r for r in self.router.routes
                     if getattr(r, "path", None) == path and method in getattr(r, "methods", ()))
        route.app = endpoint
        self.lean[(method, path)] = LeanReports(self, endpoint)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            # The path as the router matches it (without a proxy's root_path).
            lean = self.lean.get((scope["method"], get_route_path(scope)))
            if lean is not None:
                await lean(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings) -> CollectorApp:
    engine = make_engine(settings.db_url, pool_size=settings.pool_size, max_overflow=settings.max_overflow)
    store = Store(engine, settings.limits, time_zone=settings.time_zone)
    head = head_revision()
    max_body = settings.limits.max_body_bytes

    # No Swagger UI (it would load script from a CDN); the OpenAPI document is served
    # below, to logged-in users only.
    app = CollectorApp(title="auditagent collector", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=None,
                  description="Receives signed readiness reports (in-toto Statement v1 in a DSSE envelope, Ed25519) "
                              "from enrolled devices, and serves each unit's signed policy.")
    app.router.route_class = StrictJsonRoute
    app.add_middleware(BodyLimit, max_bytes=max_body)
    app.add_middleware(SecurityHeaders)
    app.state.store = store
    app.state.settings = settings
    from server import metrics

    from server.notify import outbox

    metrics.install(app, engine, settings, queue_depth=outbox.depth)
    from server import access_api
    from server.readiness_ca import load_ca_from_env

    app.state.readiness_ca = load_ca_from_env(settings.readiness_ca)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or "body"
        code = "malformed_json" if first.get("type") == "json_invalid" else "schema_violation"
        status = 400 if code == "malformed_json" else 422
        if code == "malformed_json":
            return JSONResponse({"error": {"code": code, "message": str((first.get("ctx") or {}).get("error")
                                                                       or "body is not valid JSON")}},
                                status_code=status)
        return JSONResponse({"error": {"code": code, "message": f"{where}: {first.get('msg', 'invalid')}"}},
                            status_code=status)

    @app.exception_handler(DataError)
    async def _data_error(_request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value the checks before it let through: still the
        # client's input, and the transaction was rolled back.
        return JSONResponse({"error": {"code": "invalid_value", "message": "a value cannot be stored "
                                       f"({type(exc.orig).__name__})"}}, status_code=422)

    @app.exception_handler(OperationalError)
    async def _db_unavailable(_request: Request, exc: DBAPIError) -> JSONResponse:
        log.warning("database.unavailable", error=type(exc.orig).__name__)
        return JSONResponse({"error": {"code": "database_unavailable",
                                       "message": "the collector's database is not reachable; try again later"}},
                            status_code=503, headers={"Retry-After": str(DB_RETRY_AFTER)})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": {"code": code, "message": str(exc.detail)}}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    from server import api, auth, throttle

    app.add_exception_handler(auth.NotAuthenticated, api.not_authenticated_handler)  # type: ignore[arg-type]
    app.include_router(api.router)
    app.include_router(access_api.router)
    from server import gateway

    app.include_router(gateway.router)
    from server import api_tokens

    app.include_router(api_tokens.router)
    from server.notify import api as notify_api

    app.include_router(notify_api.router)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_document(_user: auth.User = Depends(auth.current_user)) -> JSONResponse:
        """The OpenAPI document, for logged-in users (it maps every route)."""
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def docs(_user: auth.User = Depends(auth.current_user)) -> Response:
        return RedirectResponse("/openapi.json", status_code=303)

    @app.get("/healthz", tags=["ops"], responses=_errors(503))
    def healthz() -> JSONResponse:
        """200 once the database is reachable and migrated to the code's schema."""
        if store.ready(head):
            return JSONResponse({"status": "ok", "schema": head})
        return JSONResponse({"error": {"code": "not_ready", "message": "database unreachable or not migrated"}},
                            status_code=503)

    @app.post("/v1/enroll", status_code=201, response_model=EnrollResponse, tags=["devices"],
              responses=_errors(400, 401, 403, 404, 409, 422, 429))
    def enroll(req: EnrollRequest, request: Request) -> dict[str, Any]:
        """Register a device's Ed25519 public key with an enrolment token. With ``device_id``
        (re-enrolment) the device keeps its id and the old key stops being accepted; that
        needs ``rekey_proof`` signed by the current key, or the device's own re-enrol
        token. An address whose enrolments keep failing waits (429, Retry-After)."""
        keys = throttle.enroll_keys(throttle.source_of(request))
        t = now()
        with store.engine.connect() as conn:
            wait = throttle.retry_after(conn, keys, t)
        if wait is not None:
            raise throttle.TooManyAttempts(wait)
        try:
            return store.enroll(token=req.token, public_key_pem=req.public_key, device=req.device.model_dump(),
                                device_id=req.device_id, rekey_proof=req.rekey_proof)
        except ApiError as exc:
            if exc.status in (401, 403):  # a wrong token or a takeover attempt: counted
                with store.engine.begin() as conn:
                    for key in keys:
                        throttle.record_failure(conn, key, t)
            raise

    @app.post("/v1/reports", status_code=201, tags=["reports"], openapi_extra=REPORT_BODY_DOC,
              responses={201: {"model": ReportAccepted, "description": "stored"},
                         200: {"model": ReportAccepted, "description": "already stored (idempotent resend)"},
                         **_errors(400, 403, 409, 413, 422)})
    async def post_report() -> None:
        """Verify a report envelope against the device's enrolled key and store it
        (append-only, verbatim) with the device's latest state, in one transaction."""

    # This route is documented here and served by the lean endpoint (server/report_endpoint.py),
    # which the app takes ahead of its router.
    endpoint = ReportEndpoint(
        store, max_body, after=lambda body, status, result: access_api.after_report(app, body, status, result))
    app.serve_lean("POST", "/v1/reports", endpoint)

    @app.get("/v1/devices/{device_id}/policy", tags=["devices"], responses=_errors(400, 401, 404),
             openapi_extra=POLICY_AUTH_DOC)
    def device_policy(device_id: str, request: Request) -> Response:
        """The current signed policy (DSSE envelope) of the device's unit, inherited from the
        nearest ancestor unit that has one. ETag is the sha256 of the policy YAML. Only for
        a request signed with the device's current key (auditagent.signed_request): an
        unknown, a revoked and an unproven device all get the same 401 not_authenticated."""
        device_auth.authenticate(store.engine, device_id, request.headers.get("authorization"), method="GET",
                                 path=signed_request.policy_path(device_id), now=now(), limits=settings.limits)
        pol = store.policy_for_device(device_id)
        etag = f'"{pol["sha256"]}"'
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        inm = request.headers.get("if-none-match")
        if inm:
            tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
            if etag in tags or "*" in tags:
                return Response(status_code=304, headers=headers)
        return Response(pol["envelope"], media_type="application/json", headers=headers)

    # The dashboard (server-rendered HTML; server/web.py).
    from server import web

    dashboard = web.mount(app, store, settings)
    from server import oidc_web

    oidc_web.mount(app, dashboard, settings)
    return app
