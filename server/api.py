"""The readiness JSON API under /api/v1 (session cookie, or an API token sent as
``Authorization: Bearer``; see :mod:`server.auth` and :mod:`server.api_tokens`).

Every route needs a logged-in user (401 otherwise). What a user sees is limited to
their unit subtree: a unit, device, report or exception outside it answers 404, the
same as a missing one. A role that may not use a route gets 403. State-changing
requests need the session's CSRF token (``X-CSRF-Token`` header or ``csrf_token``
form field); API tokens need none.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Iterator

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection

from server import auth, oidc, throttle
from server import readiness as rd
from server.auth import User, current_user, require_role
from server.db import write_audit
from server.error_models import error_responses as _errors
from server.local_time import DEFAULT_ZONE
from server.store import ApiError, parse_duration
from server.strict_json import StrictJsonRoute


READ = _errors(401, 404)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _settings(request: Request) -> Any:
    return request.app.state.settings


def _kw(request: Request) -> dict[str, Any]:
    s = _settings(request)
    return {"default_max_age_hours": getattr(s, "default_max_report_age_hours", rd.DEFAULT_MAX_REPORT_AGE_HOURS)}


def db(request: Request) -> Iterator[Connection]:
    """A read connection for one request."""
    with request.app.state.store.engine.connect() as conn:
        yield conn


def db_tx(request: Request) -> Iterator[Connection]:
    """A connection in a transaction, committed if the route returns normally."""
    with request.app.state.store.engine.begin() as conn:
        yield conn


# ------------------------------------------------------------------ models


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1024)


@dataclass(frozen=True)
class Me:
    id: int
    username: str
    role: str
    unit_id: int | None
    unit: str | None
    lang: str
    csrf_token: str
    can_grant_exceptions: bool
    can_export: bool
    is_admin: bool


class GrantRequest(BaseModel):
    check_id: str = Field(min_length=1, max_length=200)
    device_id: str | None = Field(default=None, max_length=64)
    unit_id: int | None = None
    expires_at: dt.datetime = Field(description="when it ends by itself (ISO-8601 with time zone; ≤ 180 days ahead)")
    justification: str = Field(min_length=1, max_length=4000)


class RevokeRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=4000)


class UnitCreate(BaseModel):
    path: str = Field(min_length=1, max_length=2000, description='e.g. "Socialförvaltningen/IFO/Ekonomiskt bistånd"')
    max_report_age_hours: int | None = Field(default=None, ge=1, le=24 * 90)


class UnitCreated(BaseModel):
    id: int
    path: str
    max_report_age_hours: int | None


class TokenCreate(BaseModel):
    unit: str = Field(min_length=1, max_length=2000)
    expires_in: str = Field(default="7d", description="e.g. 30m, 12h, 7d, 2w")
    uses: int = Field(default=1, ge=1, le=100000)
    note: str | None = Field(default=None, max_length=500)


class TokenCreated(BaseModel):
    token: str = Field(description="shown once; only its hash is stored")
    unit: str
    max_uses: int
    expires_at: dt.datetime


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    role: str = Field(description="admin | security_officer | unit_manager")
    unit: str | None = Field(default=None, description="unit path of the user's subtree; none = all units")
    lang: str = "sv"
    password: str | None = Field(default=None, min_length=12, max_length=1024,
                                 description="omit to have one generated (returned once)")


@dataclass(frozen=True)
class UserCreated:
    user: auth.UserInfo
    password: str | None  # only when generated


def _me(session: auth.Session) -> Me:
    u = session.user
    return Me(id=u.id, username=u.username, role=u.role, unit_id=u.scope_unit_id, unit=u.scope_path, lang=u.lang,
              csrf_token=session.csrf_token, can_grant_exceptions=u.can_grant_exceptions, can_export=u.can_export,
              is_admin=u.is_admin)


# ------------------------------------------------------------------ routes

router = APIRouter(prefix="/api/v1", route_class=StrictJsonRoute)


@router.post("/login", response_model=Me, tags=["session"], responses=_errors(401, 415, 422, 429))
def api_login(body: LoginRequest, request: Request, response: Response) -> Me:
    """Log in; sets the session cookie ``aa_session`` and returns the CSRF token to send as
    ``X-CSRF-Token`` on every POST. JSON only (``Content-Type: application/json``)."""
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise ApiError(415, "unsupported_media_type", "send the log-in as application/json")
    if not oidc.local_login_allowed(_settings(request)):
        raise ApiError(403, "local_login_disabled", "password log-in is turned off; log in with single sign-on, "
                                                    "or use an API token")
    result = auth.login_with_engine(request.app.state.store.engine, body.username, body.password, _now(),
                                    source=throttle.source_of(request))
    auth.set_session_cookie(response, result.token, secure=auth.cookies_secure(request))
    session = auth.Session(user=result.user, csrf_token=result.csrf_token, token_sha256="",
                           created_at=_now(), expires_at=result.expires_at)
    return _me(session)


@router.post("/logout", status_code=204, tags=["session"], responses=_errors(401, 403, 409))
def api_logout(request: Request, session: auth.Session = Depends(auth.current_session),
               conn: Connection = Depends(db_tx)) -> Response:
    if session.via_token:
        raise ApiError(409, "not_a_session", "an API token has no session to end; an administrator revokes it")
    auth.logout(conn, request.cookies.get(auth.COOKIE_NAME))
    response = Response(status_code=204)
    auth.clear_session_cookie(response, secure=auth.cookies_secure(request))
    return response


@router.get("/me", response_model=Me, tags=["session"], responses=_errors(401))
def api_me(session: auth.Session = Depends(auth.current_session)) -> Me:
    return _me(session)


@router.get("/units", response_model=list[rd.UnitSummary], tags=["readiness"], responses=_errors(401))
def api_units(request: Request, user: User = Depends(current_user),
              conn: Connection = Depends(db)) -> list[rd.UnitSummary]:
    """Every unit the user may see with device counts by state (rolled up over sub-units)."""
    return rd.unit_tree(conn, user.scope, _now(), **_kw(request))


@router.get("/units/{unit_id}", response_model=rd.UnitDetail, tags=["readiness"], responses=READ)
def api_unit(unit_id: int, request: Request, state: str | None = Query(None, description="|".join(rd.STATES)),
             check: str | None = Query(None, max_length=200, description="devices failing this check"),
             os: str | None = Query(None, max_length=500, description="platform (linux, windows, macos) or OS name"),
             page: int = Query(1, ge=1), per_page: int = Query(50, ge=1, le=rd.MAX_PER_PAGE),
             user: User = Depends(current_user), conn: Connection = Depends(db)) -> rd.UnitDetail:
    return rd.unit_detail(conn, user.scope, unit_id, _now(), state=state, check=check, os=os, page=page,
                          per_page=per_page, min_agent_version=getattr(_settings(request), "min_agent_version", None),
                          **_kw(request))


@router.get("/units/{unit_id}/trend", response_model=list[rd.TrendPoint], tags=["readiness"], responses=READ)
def api_trend(unit_id: int, request: Request, days: int = Query(90, ge=1, le=366),
              user: User = Depends(current_user), conn: Connection = Depends(db)) -> list[rd.TrendPoint]:
    """The subtree's devices by state (ready, due, not_ready, stale, never_reported) and the
    readiness % ((ready + due) / devices) at the end of each day in the organisation's time zone, oldest first;
    the last point is now and matches the unit's summary."""
    zone = getattr(_settings(request), "time_zone", None) or DEFAULT_ZONE
    points = rd.trend(conn, user.scope, unit_id, _now(), days, zone=zone, **_kw(request))
    conn.commit()  # keeps the closed days the trend counted (its cache)
    return points


def _export_filters(state: str | None, check: str | None, os: str | None) -> rd.ExportFilters:
    """The filters of an export, checked before the first byte is sent."""
    if state and state not in rd.STATES:
        raise rd.Invalid("state", f"must be one of {', '.join(rd.STATES)}")
    return rd.ExportFilters(state=state or None, check=(check or "").strip()[:200] or None, os=os or None)


def _export_args(request: Request, unit_id: int, user: User) -> tuple[Any, dict[str, Any], str]:
    """(engine, export keyword arguments, the unit's path) — a 404 outside the user's scope."""
    engine = request.app.state.store.engine
    with engine.connect() as conn:
        unit = rd.visible_unit(conn, user.scope, unit_id)
    return engine, dict(_kw(request), min_agent_version=getattr(_settings(request), "min_agent_version", None)), \
        unit["path"]


EXPORT_QUERY = {"state": Query(None, description="only devices in this state"),
                "check": Query(None, max_length=200, description="only devices failing this check"),
                "os": Query(None, max_length=100, description="only devices of this platform or OS")}


@router.get("/units/{unit_id}/export.csv", tags=["readiness"], responses={
    200: {"content": {"text/csv": {}}, "description": "one row per device"}, **_errors(401, 403, 404, 422)})
def api_export(unit_id: int, request: Request, state: str | None = EXPORT_QUERY["state"],
               check: str | None = EXPORT_QUERY["check"], os: str | None = EXPORT_QUERY["os"],
               user: User = Depends(require_role("security_officer", "admin"))) -> StreamingResponse:
    """The unit's devices (with sub-units) that pass the filters, as RFC 4180 CSV (every
    cell quoted, column keys as header): state, last seen, failing checks, OS, agent
    version. Cells that a spreadsheet would evaluate start with '."""
    filters = _export_filters(state, check, os)
    engine, kw, path = _export_args(request, unit_id, user)
    now = _now()

    def body() -> Iterator[str]:
        with engine.connect() as conn:
            yield from rd.export_csv(conn, user.scope, unit_id, now, filters=filters, **kw)

    return StreamingResponse(body(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{rd.export_filename(path, now, "csv")}"'})


@router.get("/units/{unit_id}/export.xlsx", tags=["readiness"], responses={
    200: {"content": {rd.XLSX_TYPE: {}}, "description": "one row per device"},
    **_errors(401, 403, 404, 422)})  # 422 too_many_rows too: more devices than an Excel sheet holds
def api_export_xlsx(unit_id: int, request: Request, state: str | None = EXPORT_QUERY["state"],
                    check: str | None = EXPORT_QUERY["check"], os: str | None = EXPORT_QUERY["os"],
                    user: User = Depends(require_role("security_officer", "admin"))) -> StreamingResponse:
    """The same rows and columns as export.csv, as an Excel workbook (text cells are text,
    never formulas; times are UTC date cells). More devices than an Excel sheet holds
    (1,048,575 under the header): 422 ``too_many_rows``, before any byte; use export.csv."""
    filters = _export_filters(state, check, os)
    engine, kw, path = _export_args(request, unit_id, user)
    now = _now()
    with engine.connect() as conn:  # refused before the first byte, not cut off after it
        if not rd.export_fits(conn, user.scope, unit_id, now, rd.xlsx_max_devices(), filters=filters, **kw):
            raise ApiError(422, "too_many_rows",
                           f"more than {rd.xlsx_max_devices():,} devices: more rows than an Excel sheet holds; "
                           "export.csv has the same rows and columns and no row limit")

    def body() -> Iterator[bytes]:  # streamed as the rows are read, like the CSV
        with engine.connect() as conn:
            yield from rd.export_machine_xlsx(conn, user.scope, unit_id, now, filters=filters, **kw)

    return StreamingResponse(body(), media_type=rd.XLSX_TYPE, headers={
        "Content-Disposition": f'attachment; filename="{rd.export_filename(path, now, "xlsx")}"'})


@router.get("/devices/{device_id}", response_model=rd.DeviceDetail, tags=["readiness"], responses=READ)
def api_device(device_id: str, request: Request, page: int = Query(1, ge=1),
               per_page: int = Query(50, ge=1, le=rd.MAX_PER_PAGE), user: User = Depends(current_user),
               conn: Connection = Depends(db)) -> rd.DeviceDetail:
    return rd.device_detail(conn, user.scope, device_id, _now(), page=page, per_page=per_page,
                            min_agent_version=getattr(_settings(request), "min_agent_version", None), **_kw(request))


@router.get("/devices/{device_id}/reports", response_model=rd.Timeline, tags=["readiness"], responses=READ)
def api_device_reports(device_id: str, page: int = Query(1, ge=1),
                       per_page: int = Query(50, ge=1, le=rd.MAX_PER_PAGE), user: User = Depends(current_user),
                       conn: Connection = Depends(db)) -> rd.Timeline:
    """The device's reports, newest first."""
    return rd.device_timeline(conn, user.scope, device_id, page=page, per_page=per_page)


@router.get("/devices/{device_id}/public-key", tags=["reports"], responses={
    200: {"content": {"application/x-pem-file": {}}, "description": "Ed25519 public key, SubjectPublicKeyInfo PEM"},
    **READ})
def api_device_key(device_id: str, user: User = Depends(current_user), conn: Connection = Depends(db)) -> Response:
    """The device's current public key, to verify its report envelopes offline with any
    DSSE tool (keyid = hex sha256 of the raw key)."""
    keyid, pem = rd.device_public_key(conn, user.scope, device_id)
    return Response(pem, media_type="application/x-pem-file", headers={
        "Content-Disposition": f'attachment; filename="device-{keyid[:16]}.pub.pem"', "X-Keyid": keyid})


@router.get("/reports/{report_id}/envelope", tags=["reports"], responses={
    200: {"content": {"application/json": {}}, "description": "the DSSE envelope exactly as the device sent it"},
    **READ})
def api_report_envelope(report_id: str, user: User = Depends(current_user),
                        conn: Connection = Depends(db)) -> Response:
    """The signed report, byte for byte as received (verify it offline with the device's
    public key: DSSE, Ed25519, payloadType application/vnd.in-toto+json)."""
    rep = rd.report_envelope(conn, user.scope, report_id)
    return Response(rep.envelope, media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="report-{rep.report_id}.dsse.json"', "X-Keyid": rep.keyid})


@router.get("/exceptions", response_model=list[rd.ExceptionInfo], tags=["exceptions"], responses=READ)
def api_exceptions(include_expired: bool = False, unit_id: int | None = None, device_id: str | None = None,
                   user: User = Depends(current_user), conn: Connection = Depends(db)) -> list[rd.ExceptionInfo]:
    return rd.list_exceptions(conn, user.scope, _now(), include_expired=include_expired, unit_id=unit_id,
                              device_id=device_id)


@router.post("/exceptions", status_code=201, response_model=rd.ExceptionInfo, tags=["exceptions"],
             responses=_errors(401, 403, 404, 422))
def api_grant(body: GrantRequest, user: User = Depends(require_role("security_officer")),
              conn: Connection = Depends(db_tx)) -> rd.ExceptionInfo:
    """Grant a time-limited exception for one check on a device or a unit's subtree
    (security officers, inside their subtree). Written to the audit log."""
    return rd.grant_exception(conn, user, check_id=body.check_id, device_id=body.device_id, unit_id=body.unit_id,
                              expires_at=body.expires_at, justification=body.justification, now=_now())


@router.post("/exceptions/{exception_id}/revoke", response_model=rd.ExceptionInfo, tags=["exceptions"],
             responses=_errors(401, 403, 404, 409, 422))
def api_revoke(exception_id: int, body: RevokeRequest, user: User = Depends(require_role("security_officer")),
               conn: Connection = Depends(db_tx)) -> rd.ExceptionInfo:
    return rd.revoke_exception(conn, user, exception_id, body.reason, _now())


# -- administration (admin only)


@router.post("/units", status_code=201, response_model=UnitCreated, tags=["admin"], responses=_errors(401, 403, 422))
def api_unit_create(body: UnitCreate, request: Request, user: User = Depends(require_role("admin"))) -> UnitCreated:
    store = request.app.state.store
    unit = store.add_unit(body.path)
    if body.max_report_age_hours is not None:
        unit = store.set_unit_max_age(unit["path"], body.max_report_age_hours)
    with store.engine.begin() as conn:
        write_audit(conn, user.id, "unit.create", "unit", unit["id"], {"path": unit["path"]}, _now())
    return UnitCreated(id=unit["id"], path=unit["path"], max_report_age_hours=unit.get("max_report_age_hours"))


@router.post("/tokens", status_code=201, response_model=TokenCreated, tags=["admin"],
             responses=_errors(401, 403, 404, 422))
def api_token_create(body: TokenCreate, request: Request,
                     user: User = Depends(require_role("admin"))) -> TokenCreated:
    try:
        expires_in = parse_duration(body.expires_in)
    except ValueError as exc:
        raise ApiError(422, "invalid", f"expires_in: {exc}", field="expires_in") from None
    store = request.app.state.store
    token, row = store.create_token(body.unit, expires_in=expires_in, uses=body.uses, note=body.note)
    with store.engine.begin() as conn:
        write_audit(conn, user.id, "token.create", "unit", row["unit_id"],
                    {"unit": row["unit"], "uses": row["max_uses"], "expires_at": row["expires_at"].isoformat()},
                    _now())
    return TokenCreated(token=token, unit=row["unit"], max_uses=row["max_uses"], expires_at=row["expires_at"])


@router.get("/users", response_model=list[auth.UserInfo], tags=["admin"], responses=_errors(401, 403))
def api_users(user: User = Depends(require_role("admin")), conn: Connection = Depends(db)) -> list[auth.UserInfo]:
    return auth.list_users(conn)


@router.post("/users", status_code=201, response_model=UserCreated, tags=["admin"],
             responses=_errors(401, 403, 404, 409, 422))
def api_user_create(body: UserCreate, user: User = Depends(require_role("admin")),
                    conn: Connection = Depends(db_tx)) -> UserCreated:
    password = body.password or auth.generate_password()
    created = auth.create_user(conn, username=body.username, role=body.role, password=password, unit_path=body.unit,
                               lang=body.lang, actor_id=user.id, now=_now())
    info = next(u for u in auth.list_users(conn) if u.id == created.id)
    return UserCreated(user=info, password=None if body.password else password)


@router.get("/audit", response_model=list[rd.AuditEntry], tags=["admin"], responses=_errors(401, 403))
def api_audit(object_type: str | None = None, object_id: str | None = None, limit: int = Query(200, ge=1, le=1000),
              user: User = Depends(require_role("admin")), conn: Connection = Depends(db)) -> list[rd.AuditEntry]:
    """The audit log (exception grants and revokes, users, tokens, units), newest first."""
    return rd.audit_entries(conn, object_type=object_type, object_id=object_id, limit=limit)


def not_authenticated_handler(request: Request, exc: auth.NotAuthenticated) -> Response:
    """401 JSON for the API; pages redirect to /login?next=<path> (303)."""
    from fastapi.responses import RedirectResponse
    from urllib.parse import quote

    if request.url.path.startswith("/api/") or request.url.path.startswith("/v1/") \
            or "application/json" in request.headers.get("accept", "") and "text/html" not in request.headers.get("accept", ""):
        return JSONResponse(exc.body(), status_code=401)
    nxt = request.url.path + (("?" + request.url.query) if request.url.query else "")
    return RedirectResponse("/login?next=" + quote(nxt, safe="/?=&"), status_code=303)


__all__ = ["router", "not_authenticated_handler", "json"]
