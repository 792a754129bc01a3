"""The dashboard's log-in, log-out and session look-up: thin adapters over
:mod:`server.auth` (scrypt, sessions in the database, per-session CSRF tokens).

* ``GET /login`` shows the form with a double-submit CSRF token (cookie
  ``aa_login_csrf`` + hidden field), ``POST /login`` checks it and the password and
  sets ``aa_session`` (HttpOnly, SameSite=Strict, Secure unless the collector runs
  with insecure cookies on loopback), then 303 to ``next`` — a local path only.
* ``POST /logout`` needs the session's CSRF token, ends the session, clears the cookie.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from server import auth, throttle
from server.web_common import SECURITY_HEADERS, safe_next


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def session_user(web: Any, request: Request) -> tuple[Any, str] | None:
    """(User, CSRF token) of the request's live session, or None."""
    token = request.cookies.get(auth.COOKIE_NAME)
    if not token:
        return None
    with web.engine.begin() as conn:
        session = auth.session_for_token(conn, token, _now())
    if session is None:
        return None
    return session.user, session.csrf_token


def login_page(web: Any, ctx: Any, nxt: str, *, error: str | None = None, username: str = "",
               status: int = 200) -> Response:
    secure = auth.cookies_secure(ctx.request)
    holder = Response()
    token = auth.login_csrf_token(ctx.request, holder, secure=secure)
    ctx.csrf = token
    resp: HTMLResponse = web.render(ctx, "login.html", status=status, error=error, next=nxt, username=username)
    for key, value in holder.headers.items():
        if key.lower() == "set-cookie":
            resp.headers.append("set-cookie", value)
    resp.headers.update(SECURITY_HEADERS)
    return resp


def login_post(web: Any, request: Request, form: dict[str, str]) -> Response:
    ctx = web.ctx(request)
    nxt = safe_next(form.get("next"))
    username = (form.get("username") or "")[:100]
    try:
        auth.check_login_csrf(request, form.get("csrf_token"))
    except auth.CsrfFailed:
        return login_page(web, ctx, nxt, error=ctx.t("csrf.failed"), username=username, status=403)
    try:
        result = auth.login_with_engine(web.engine, username, form.get("password") or "", _now(),
                                        source=throttle.source_of(request))
    except auth.LoginFailed:
        return login_page(web, ctx, nxt, error=ctx.t("login.failed"), username=username, status=401)
    except throttle.TooManyAttempts as exc:
        resp = login_page(web, ctx, nxt, error=ctx.t("login.throttled", seconds=exc.retry_after), username=username,
                          status=429)
        resp.headers.update(exc.headers)
        return resp
    resp = RedirectResponse(nxt, status_code=303, headers=SECURITY_HEADERS)
    secure = auth.cookies_secure(request)
    auth.set_session_cookie(resp, result.token, secure=secure)
    resp.delete_cookie(auth.LOGIN_CSRF_COOKIE, httponly=True, secure=secure, samesite="strict", path="/")
    return resp


def logout_post(web: Any, request: Request, form: dict[str, str]) -> Response:
    token = request.cookies.get(auth.COOKIE_NAME)
    sess = session_user(web, request)
    if sess is not None and not auth.csrf_ok(sess[1], form.get("csrf_token")):
        ctx = web.ctx(request, sess[0], sess[1])
        return web.error_page(ctx, 403, ctx.t("csrf.failed"))
    if token:
        with web.engine.begin() as conn:
            auth.logout(conn, token)
    resp = RedirectResponse("/login", status_code=303, headers=SECURITY_HEADERS)
    auth.clear_session_cookie(resp, secure=auth.cookies_secure(request))
    return resp
