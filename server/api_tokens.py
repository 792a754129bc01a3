"""API tokens for scripts and SIEM integrations: created by an administrator, scoped to a
role and a unit subtree exactly like a user, sent as ``Authorization: Bearer aat_...``.

* The token is 32 random bytes (URL-safe base64) after the prefix ``aat_``; it is shown
  once, and the database keeps only its sha256 (a dump authenticates nobody) and its
  first 8 characters, to tell tokens apart in a list.
* Each token acts as its own user row, ``token:NAME``, whose role and unit are the
  token's and whose password no log-in can match. So every route's access rules apply
  to tokens unchanged (:func:`server.auth.current_user` accepts a Bearer token), and the
  audit log and exception grants name the token that acted.
* It expires (at most :data:`MAX_LIFETIME`), records when it was last used (to the
  minute), and is revoked by an administrator; creation and revocation are audit-logged.
* A Bearer request needs no CSRF token: a browser never attaches this header by itself.

``require_token(*roles)`` is for machine-only endpoints (a gateway, a SIEM feed): it
refuses dashboard sessions and wants an API token of one of ``roles``.
"""
from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Any, Callable

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from server import auth
from server.error_models import error_responses as _errors
from server.db import ROLES, api_tokens, units, users, utc, write_audit
from server.store import ApiError, parse_duration

TOKEN_PREFIX = "aat_"
DEFAULT_LIFETIME = dt.timedelta(days=90)
MAX_LIFETIME = dt.timedelta(days=366)
TOKEN_PASSWORD_HASH = "api-token"  # not a scrypt hash: verify_password is False for every password
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,57}$")


@dataclass(frozen=True)
class ApiTokenInfo:
    id: int
    name: str
    prefix: str
    role: str
    unit: str | None
    created_by: str | None
    created_at: dt.datetime
    expires_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None
    note: str | None
    state: str  # active | expired | revoked, when read


@dataclass(frozen=True)
class NewApiToken:
    token: str  # shown once
    info: ApiTokenInfo


def new_token_value() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def create_api_token(conn: Connection, *, name: str, role: str, unit_path: str | None = None,
                     expires_in: dt.timedelta = DEFAULT_LIFETIME, note: str | None = None,
                     actor_id: int | None = None, now: dt.datetime | None = None) -> NewApiToken:
    """A new token and its user row (in the caller's transaction, audit-logged)."""
    now = utc(now) or _now()
    name = (name or "").strip()
    if not _NAME.match(name):
        raise ApiError(422, "invalid", "name: letters, digits and . _ -, at most 58 characters", field="name")
    if expires_in <= dt.timedelta(0) or expires_in > MAX_LIFETIME:
        raise ApiError(422, "invalid", f"expires_in: more than 0 and at most {MAX_LIFETIME.days} days",
                       field="expires_in")
    unit_id = auth.resolve_scope(conn, role, unit_path)
    username = auth.TOKEN_USER_PREFIX + name
    if conn.execute(select(users.c.id).where(users.c.username == username)).first() is not None:
        raise ApiError(409, "token_exists", f"an API token named {name!r} exists (or existed); choose another name")
    user_id = conn.execute(insert(users).values(
        username=username, password_hash=TOKEN_PASSWORD_HASH, role=role, scope_unit_id=unit_id, lang="en",
        failed_logins=0, created_at=now).returning(users.c.id)).scalar_one()
    token = new_token_value()
    token_id = conn.execute(insert(api_tokens).values(
        user_id=user_id, name=name, token_sha256=auth.hash_token(token), prefix=token[:len(TOKEN_PREFIX) + 8],
        created_by=actor_id, created_at=now, expires_at=now + expires_in, note=note).returning(api_tokens.c.id)
    ).scalar_one()
    info = get_api_token(conn, token_id)
    assert info is not None
    write_audit(conn, actor_id, "api_token.create", "api_token", token_id,
                {"name": name, "role": role, "unit": info.unit, "expires_at": info.expires_at.isoformat()}, now)
    return NewApiToken(token=token, info=info)


def _query() -> Any:
    creator = users.alias("creator")
    principal = users.alias("principal")
    return (select(api_tokens, principal.c.role, units.c.path.label("unit"),
                   creator.c.username.label("created_by_name"))
            .join(principal, principal.c.id == api_tokens.c.user_id)
            .outerjoin(units, units.c.id == principal.c.scope_unit_id)
            .outerjoin(creator, creator.c.id == api_tokens.c.created_by))


def _info(row: Any) -> ApiTokenInfo:
    expires_at = utc(row["expires_at"])
    state = ("revoked" if row["revoked_at"] is not None
             else "expired" if expires_at <= _now() else "active")  # type: ignore[operator]
    return ApiTokenInfo(state=state, id=row["id"], name=row["name"], prefix=row["prefix"], role=row["role"], unit=row["unit"],
                        created_by=row["created_by_name"], created_at=utc(row["created_at"]),  # type: ignore[arg-type]
                        expires_at=expires_at, last_used_at=utc(row["last_used_at"]),  # type: ignore[arg-type]
                        revoked_at=utc(row["revoked_at"]), note=row["note"])


def get_api_token(conn: Connection, token_id: int) -> ApiTokenInfo | None:
    row = conn.execute(_query().where(api_tokens.c.id == token_id)).mappings().first()
    return _info(row) if row else None


def list_api_tokens(conn: Connection) -> list[ApiTokenInfo]:
    return [_info(r) for r in conn.execute(_query().order_by(api_tokens.c.id)).mappings()]


def revoke_api_token(conn: Connection, token_id: int, *, actor_id: int | None = None,
                     now: dt.datetime | None = None) -> ApiTokenInfo | None:
    """Revoke (and disable its user row); None if unknown or already revoked."""
    now = utc(now) or _now()
    row = conn.execute(select(api_tokens.c.user_id, api_tokens.c.name)
                       .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))).first()
    if row is None:
        return None
    conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(revoked_at=now))
    conn.execute(update(users).where(users.c.id == row.user_id).values(disabled_at=now))
    write_audit(conn, actor_id, "api_token.revoke", "api_token", token_id, {"name": row.name}, now)
    return get_api_token(conn, token_id)


# ------------------------------------------------------------------ FastAPI


def require_token(*roles: str) -> Callable[..., Any]:
    """Dependency for machine-only endpoints: the API token's principal (a
    :class:`server.auth.User`) if its role is one of ``roles``; a dashboard session is
    refused with 403 ``token_required``, no credentials with 401."""
    for r in roles:
        if r not in ROLES:
            raise ValueError(f"unknown role {r!r}")

    async def dependency(session: auth.Session = Depends(auth.current_session)) -> auth.User:
        if not session.via_token:
            raise ApiError(403, "token_required", "this endpoint takes an API token (Authorization: Bearer), "
                                                  "not a dashboard session")
        if session.user.role not in roles:
            raise auth.RoleForbidden()
        return session.user

    dependency.__name__ = "require_token_" + "_or_".join(roles)
    return dependency


class ApiTokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=58, description="e.g. siem-export (letters, digits, . _ -)")
    role: str = Field(description="admin | security_officer | unit_manager")
    unit: str | None = Field(default=None, max_length=2000, description="unit path of its subtree; none = all units")
    expires_in: str = Field(default="90d", description="e.g. 12h, 30d, 52w (at most 366 days)")
    note: str | None = Field(default=None, max_length=500)


@dataclass(frozen=True)
class ApiTokenCreated:
    token: str  # shown once; only its sha256 is stored
    api_token: ApiTokenInfo


router = APIRouter(prefix="/api/v1/api-tokens", tags=["admin"])


def _tx(request: Request) -> Any:
    """The route's own transaction, committed before the answer is sent (a yield
    dependency would commit after it, and the client's next request could miss it)."""
    return request.app.state.store.engine.begin()


@router.get("", response_model=list[ApiTokenInfo], responses=_errors(401, 403))
def api_list(request: Request, user: auth.User = Depends(auth.require_role("admin"))) -> list[ApiTokenInfo]:
    """Every API token (never its value): role, unit, expiry, last use, revocation."""
    with _tx(request) as conn:
        return list_api_tokens(conn)


@router.post("", status_code=201, response_model=ApiTokenCreated, responses=_errors(401, 403, 404, 409, 422))
def api_create(body: ApiTokenCreate, request: Request,
               user: auth.User = Depends(auth.require_role("admin"))) -> ApiTokenCreated:
    """Create a token; its value is in this answer only. Send it as ``Authorization: Bearer``."""
    try:
        expires_in = parse_duration(body.expires_in)
    except ValueError as exc:
        raise ApiError(422, "invalid", f"expires_in: {exc}", field="expires_in") from None
    with _tx(request) as conn:
        new = create_api_token(conn, name=body.name, role=body.role, unit_path=body.unit, expires_in=expires_in,
                               note=body.note, actor_id=user.id)
    return ApiTokenCreated(token=new.token, api_token=new.info)


@router.post("/{api_token_id}/revoke", response_model=ApiTokenInfo, responses=_errors(401, 403, 404))
def api_revoke(api_token_id: int, request: Request,
               user: auth.User = Depends(auth.require_role("admin"))) -> ApiTokenInfo:
    """Revoke a token: refused from the next request on."""
    with _tx(request) as conn:
        info = revoke_api_token(conn, api_token_id, actor_id=user.id)
    if info is None:
        raise ApiError(404, "not_found", f"API token {api_token_id}: not found or already revoked")
    return info
