"""The dashboard's single sign-on routes (the flow itself is in :mod:`server.oidc`).

    GET /login/oidc?next=PATH     → 303 to the provider (sets the aa_oidc binding cookie)
    GET /login/oidc/callback      ← the provider's redirect; opens a session or shows why not

Mounted only when the collector has an OIDC config (``serve --oidc-config FILE``).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import requests
import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from server import auth, oidc
from server.web_common import SECURITY_HEADERS, safe_next

log = structlog.get_logger("auditagent.oidc")
CALLBACK_PATH = "/login/oidc/callback"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _begin(web: Any, provider: oidc.Provider, request: Request) -> Response:
    nxt = safe_next(request.query_params.get("next"))
    try:
        with web.engine.begin() as conn:
            started = oidc.start(conn, provider, nxt, _now())
    except (requests.RequestException, oidc.Refused, ValueError, KeyError) as exc:
        log.warning("oidc_discovery_failed", error=type(exc).__name__)
        return _refused(web, request, oidc.Refused("oidc.provider_error"))
    resp = RedirectResponse(started.url, status_code=303, headers=SECURITY_HEADERS)
    # Lax, not Strict: it must come back on the provider's (cross-site) redirect.
    resp.set_cookie(oidc.BINDING_COOKIE, started.binding, max_age=int(oidc.PENDING_TTL.total_seconds()),
                    httponly=True, secure=auth.cookies_secure(request), samesite="lax", path="/login/oidc")
    return resp


def _callback(web: Any, provider: oidc.Provider, request: Request) -> Response:
    q = request.query_params
    now = _now()
    try:
        with web.engine.begin() as conn:  # the pending row is used up even when the rest fails
            pending = oidc.take_pending(conn, q.get("state"), request.cookies.get(oidc.BINDING_COOKIE), now)
        if q.get("error"):
            raise oidc.Refused("oidc.provider_refused", str(q.get("error"))[:100])
        code = q.get("code")
        if not code or len(code) > 4000:
            raise oidc.Refused("oidc.provider_error", "no code")
        try:
            tokens = provider.exchange(code, pending.verifier)
            jwks = provider.jwks()
        except (requests.RequestException, ValueError, KeyError) as exc:
            raise oidc.Refused("oidc.provider_error", type(exc).__name__) from None
        except Exception as exc:  # noqa: BLE001 - Authlib's OAuth errors: the provider said no
            raise oidc.Refused("oidc.provider_error", type(exc).__name__) from None
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise oidc.Refused("oidc.bad_token", "no id_token")
        claims = oidc.validate_id_token(id_token, jwks, issuer=provider.config.issuer,
                                        client_id=provider.config.client_id, nonce=pending.nonce)
        with web.engine.begin() as conn:
            user = oidc.provision(conn, provider.config, claims, now)
            token, _csrf, _expires = auth.open_session(conn, user.id, now)
    except oidc.Refused as exc:
        log.info("oidc_login_refused", reason=exc.reason)
        return _refused(web, request, exc)
    log.info("oidc_login", user_id=user.id, role=user.role)
    # A page, not a redirect: the Strict session cookie is not sent on a redirect chain
    # that began at the provider; a navigation from this page is same-site.
    ctx = web.ctx(request, user)
    resp = web.render(ctx, "sso_continue.html", next=pending.next_path)
    resp.headers["Refresh"] = "0; url=" + pending.next_path
    secure = auth.cookies_secure(request)
    auth.set_session_cookie(resp, token, secure=secure)
    resp.delete_cookie(oidc.BINDING_COOKIE, httponly=True, secure=secure, samesite="lax", path="/login/oidc")
    return resp


def _refused(web: Any, request: Request, exc: oidc.Refused) -> Response:
    ctx = web.ctx(request)
    return web.render(ctx, "sso_refused.html", status=403, reason=exc.reason,
                      detail=exc.detail if exc.reason in ("oidc.unit_missing", "oidc.name_taken") else "",
                      local_login=oidc.local_login_allowed(web.settings))


def mount(app: FastAPI, web: Any, settings: Any) -> None:
    config = getattr(settings, "oidc", None)
    if config is None:
        app.state.oidc = None
        return
    provider = oidc.Provider(config)
    app.state.oidc = provider
    router = APIRouter(include_in_schema=False)

    @router.get("/login/oidc")
    async def begin(request: Request) -> Response:
        return await run_in_threadpool(_begin, web, provider, request)

    @router.get(CALLBACK_PATH)
    async def callback(request: Request) -> Response:
        return await run_in_threadpool(_callback, web, provider, request)

    app.include_router(router)
