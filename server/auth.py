"""People and access: password hashing (scrypt), users, log-in with lock-out, sessions
(cookie ``aa_session``), CSRF tokens, and the FastAPI dependencies every dashboard page
and API route uses.

Roles
=====

================= ================================================================
admin             units, enrolment tokens, users; reads everything (no exceptions)
security_officer  all units or one subtree: read, grant/revoke exceptions, export
unit_manager      read-only, own unit subtree (a unit is required)
================= ================================================================

Sessions
========

The cookie holds a random 32-byte token (URL-safe base64); the database stores only
its sha256, so a database dump logs nobody in. A session ends after 30 minutes idle
or 12 hours in all, when the user logs out, or when the user is disabled. The cookie
is HttpOnly (no script reads it), SameSite=Strict (no cross-site request carries it)
and Secure (never sent over plain HTTP). ``--insecure-cookies`` drops Secure, and the
collector allows it only when it listens on a loopback address without TLS: browsers
refuse to store a Secure cookie over http://127.0.0.1 in some versions, and the
tests and a local preview run exactly there; nothing else can reach such a listener.

CSRF
====

Every session has its own random CSRF token. Every POST/PUT/PATCH/DELETE made with the
session cookie must carry it, in the form field ``csrf_token`` or the header
``X-CSRF-Token`` (compared in constant time), or it is refused with 403
``csrf_failed``. SameSite=Strict is a second line, not the only one. The log-in form
has no session yet; it uses :func:`login_csrf_token` (a double-submit cookie), and the
JSON log-in requires ``Content-Type: application/json``, which a cross-site form
cannot send.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, Callable

from fastapi import Depends, Request, Response
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine

from server import throttle
from server.db import ROLES, api_tokens, sessions, units, users, utc, write_audit
from server.i18n_web import LANGS
from server.readiness import Scope
from server.store import ApiError, normalise_unit_path

COOKIE_NAME = "aa_session"
BEARER_PREFIX = "Bearer "
TOKEN_USER_PREFIX = "token:"  # API tokens' own user rows (server/api_tokens.py); no person's name has ':'

LOGIN_CSRF_COOKIE = "aa_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
IDLE_TIMEOUT = dt.timedelta(minutes=30)
ABSOLUTE_TIMEOUT = dt.timedelta(hours=12)
TOUCH_EVERY = dt.timedelta(seconds=60)  # last_seen_at is written at most once a minute
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
MIN_PASSWORD_LENGTH = 12

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
SCRYPT_MAXMEM = 64 * 1024 * 1024
SCRYPT_DKLEN = 32
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


# ------------------------------------------------------------------ errors


class NotAuthenticated(ApiError):
    """401: no valid session. The app answers JSON for /api/ and redirects pages to /login."""

    def __init__(self, message: str = "log in first") -> None:
        super().__init__(401, "not_authenticated", message)


class RoleForbidden(ApiError):
    def __init__(self, message: str = "your role does not allow this") -> None:
        super().__init__(403, "forbidden", message)


class CsrfFailed(ApiError):
    def __init__(self) -> None:
        super().__init__(403, "csrf_failed", "missing or wrong CSRF token; reload the page and try again")


class LoginFailed(ApiError):
    """The same answer for an unknown user, a wrong password, a disabled or a locked account."""

    def __init__(self) -> None:
        super().__init__(401, "login_failed", "wrong user name or password, or the account is locked for a while")


# ------------------------------------------------------------------ passwords


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``scrypt$n$r$p$salt_b64$hash_b64`` (scrypt: memory-hard; 16-byte random salt)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM,
                            dklen=SCRYPT_DKLEN)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time check of ``password`` against an encoded scrypt hash; False for any
    malformed hash."""
    try:
        scheme, n, r, p, salt_b64, hash_b64 = encoded.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
        digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p),
                                maxmem=SCRYPT_MAXMEM, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


# A real hash of a random password: checked against when the user does not exist, so an
# unknown user name costs the same time as a wrong password.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def generate_password() -> str:
    return secrets.token_urlsafe(18)


# ------------------------------------------------------------------ users


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    scope_unit_id: int | None
    scope_path: str | None  # None: all units
    lang: str

    @property
    def scope(self) -> Scope:
        return Scope(self.scope_path)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def can_grant_exceptions(self) -> bool:
        return self.role == "security_officer"

    @property
    def can_export(self) -> bool:
        return self.role in ("security_officer", "admin")


@dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    role: str
    unit: str | None
    lang: str
    created_at: dt.datetime
    disabled_at: dt.datetime | None
    locked_until: dt.datetime | None
    failed_logins: int


def _user_query() -> Any:
    return (select(users, units.c.path.label("scope_path"))
            .outerjoin(units, units.c.id == users.c.scope_unit_id))


def is_token_user(username: str) -> bool:
    return username.startswith(TOKEN_USER_PREFIX)


def _to_user(row: Any) -> User:
    return User(id=row["id"], username=row["username"], role=row["role"], scope_unit_id=row["scope_unit_id"],
                scope_path=row["scope_path"], lang=row["lang"])


def get_user(conn: Connection, user_id: int) -> User | None:
    row = conn.execute(_user_query().where(users.c.id == user_id, users.c.disabled_at.is_(None))).mappings().first()
    return _to_user(row) if row else None


def resolve_scope(conn: Connection, role: str, unit_path: str | None) -> int | None:
    """The unit id a principal of ``role`` is limited to (None: all units), or a 4xx
    ApiError: the role must exist, an administrator has no unit, a unit manager needs
    one, and the unit must exist."""
    if role not in ROLES:
        raise ApiError(422, "invalid", f"role: one of {', '.join(ROLES)}", field="role")
    if not unit_path:
        if role == "unit_manager":
            raise ApiError(422, "invalid", "unit: a unit manager needs a unit (--unit PATH)", field="unit")
        return None
    if role == "admin":
        raise ApiError(422, "invalid", "unit: an administrator is not limited to a unit", field="unit")
    p = "/".join(normalise_unit_path(unit_path))
    unit_id = conn.execute(select(units.c.id).where(units.c.path == p)).scalar()
    if unit_id is None:
        raise ApiError(404, "unknown_unit", f"unit {p!r}: not found; create it first", field="unit")
    return int(unit_id)


def create_user(conn: Connection, *, username: str, role: str, password: str, unit_path: str | None = None,
                lang: str = "sv", actor_id: int | None = None, now: dt.datetime | None = None) -> User:
    """Add a user (in the caller's transaction, with an audit-log entry)."""
    now = utc(now) or dt.datetime.now(dt.timezone.utc)
    username = (username or "").strip()
    if not _USERNAME.match(username):
        raise ApiError(422, "invalid", "username: letters, digits and . _ @ -, at most 100 characters",
                       field="username")
    if lang not in LANGS:
        raise ApiError(422, "invalid", f"lang: one of {', '.join(LANGS)}", field="lang")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ApiError(422, "invalid", f"password: at least {MIN_PASSWORD_LENGTH} characters", field="password")
    unit_id = resolve_scope(conn, role, unit_path)
    if conn.execute(select(users.c.id).where(users.c.username == username)).first() is not None:
        raise ApiError(409, "user_exists", f"user {username!r} already exists")
    new_id = conn.execute(insert(users).values(
        username=username, password_hash=hash_password(password), role=role, scope_unit_id=unit_id,
        lang=lang, failed_logins=0, created_at=now).returning(users.c.id)).scalar_one()
    write_audit(conn, actor_id, "user.create", "user", new_id, {"username": username, "role": role, "unit": unit_path},
                now)
    user = get_user(conn, new_id)
    assert user is not None
    return user


def list_users(conn: Connection) -> list[UserInfo]:
    rows = conn.execute(_user_query().where(users.c.username.notlike(TOKEN_USER_PREFIX + "%"))
                        .order_by(users.c.username)).mappings().all()
    return [UserInfo(id=r["id"], username=r["username"], role=r["role"], unit=r["scope_path"], lang=r["lang"],
                     created_at=utc(r["created_at"]), disabled_at=utc(r["disabled_at"]),  # type: ignore[arg-type]
                     locked_until=utc(r["locked_until"]), failed_logins=r["failed_logins"]) for r in rows]


def disable_user(conn: Connection, username: str, *, actor_id: int | None = None,
                 now: dt.datetime | None = None) -> bool:
    """Disable a user and end their sessions; False if unknown or already disabled."""
    now = utc(now) or dt.datetime.now(dt.timezone.utc)
    uid = conn.execute(select(users.c.id).where(users.c.username == username, users.c.disabled_at.is_(None))).scalar()
    if uid is None:
        return False
    conn.execute(update(users).where(users.c.id == uid).values(disabled_at=now))
    conn.execute(delete(sessions).where(sessions.c.user_id == uid))
    write_audit(conn, actor_id, "user.disable", "user", uid, {"username": username}, now)
    return True


# ------------------------------------------------------------------ log-in and sessions


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LoginResult:
    user: User
    token: str  # the cookie value; shown once, stored only as sha256
    csrf_token: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str
    token_sha256: str
    created_at: dt.datetime
    expires_at: dt.datetime  # absolute end
    via_token: bool = False  # an API token (Authorization: Bearer), not a cookie: no CSRF, no log-out


def login_with_engine(engine: Engine, username: str, password: str, now: dt.datetime,
                      source: str = "unknown") -> LoginResult:
    """:func:`login` from address ``source``: refused with 429 (TooManyAttempts) while
    throttled, before any password is hashed; otherwise checked, with a failure counted
    and committed in its own transaction (so parallel guesses all count), then
    LoginFailed on refusal."""
    now = utc(now)  # type: ignore[assignment]
    keys = throttle.login_keys(username, source)
    with engine.connect() as conn:
        wait = throttle.retry_after(conn, keys, now)
    if wait is not None:
        raise throttle.TooManyAttempts(wait)
    with engine.begin() as conn:
        result = login(conn, username, password, now, source=source)
    if result is None:
        raise LoginFailed()
    return result


def login(conn: Connection, username: str, password: str, now: dt.datetime,
          source: str = "unknown") -> LoginResult | None:
    """Check the password and open a session (in the caller's transaction, which the
    caller commits either way so failures are counted); None on any refusal. An unknown
    user, a disabled account and a wrong password all look the same, and an unknown user
    costs one scrypt like a known one. Every failure is counted atomically against the
    account from this address, the address and the account (:mod:`server.throttle`);
    ``users.failed_logins`` counts failures since the last success, ``locked_until``
    shows the latest block on the account from anywhere."""
    now = utc(now)  # type: ignore[assignment]
    name = (username or "").strip()[:100]
    keys = throttle.login_keys(name, source)
    row = conn.execute(select(users).where(users.c.username == name)).mappings().first()
    ok = verify_password(password or "", row["password_hash"] if row is not None else _DUMMY_HASH)
    if row is None or row["disabled_at"] is not None or not ok:
        _count_failure(conn, row, keys, source, now)
        return None
    # A parallel burst of wrong guesses may have blocked us while scrypt ran: the block
    # stands even for the right password.
    if throttle.retry_after(conn, keys, now) is not None:
        return None
    conn.execute(update(users).where(users.c.id == row["id"]).values(failed_logins=0, locked_until=None))
    throttle.clear(conn, keys[0])
    token, csrf, expires = open_session(conn, row["id"], now)
    user = get_user(conn, row["id"])
    assert user is not None
    return LoginResult(user=user, token=token, csrf_token=csrf, expires_at=expires)


def _count_failure(conn: Connection, row: Any, keys: list[str], source: str, now: dt.datetime) -> None:
    blocked = {key.split(":", 1)[0]: throttle.record_failure(conn, key, now) for key in keys}
    if row is None:
        return
    values: dict[str, Any] = {"failed_logins": users.c.failed_logins + 1}  # atomic in the database
    if blocked["pair"] or blocked["account"]:
        until = max(u for u in (blocked["pair"], blocked["account"]) if u)
        values["locked_until"] = until
        write_audit(conn, None, "user.locked", "user", row["id"],
                    {"username": row["username"], "until": until.isoformat(), "source": source,
                     "scope": "account" if blocked["account"] else "address"}, now)
    conn.execute(update(users).where(users.c.id == row["id"]).values(**values))


def open_session(conn: Connection, user_id: int, now: dt.datetime) -> tuple[str, str, dt.datetime]:
    """(cookie token, CSRF token, absolute expiry) of a new session."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = now + ABSOLUTE_TIMEOUT
    conn.execute(insert(sessions).values(token_sha256=hash_token(token), user_id=user_id, csrf_token=csrf,
                                         created_at=now, expires_at=expires, last_seen_at=now))
    return token, csrf, expires


def session_for_token(conn: Connection, token: str | None, now: dt.datetime) -> Session | None:
    """The live session for a cookie value, or None (unknown, idle > 30 min, older than
    12 h, or its user disabled). Expired sessions are deleted on sight."""
    if not token or len(token) > 200:
        return None
    now = utc(now)  # type: ignore[assignment]
    h = hash_token(token)
    row = conn.execute(select(sessions).where(sessions.c.token_sha256 == h)).mappings().first()
    if row is None:
        return None
    if utc(row["expires_at"]) <= now or utc(row["last_seen_at"]) + IDLE_TIMEOUT <= now:  # type: ignore[operator]
        conn.execute(delete(sessions).where(sessions.c.token_sha256 == h))
        return None
    user = get_user(conn, row["user_id"])
    if user is None:
        conn.execute(delete(sessions).where(sessions.c.token_sha256 == h))
        return None
    if utc(row["last_seen_at"]) + TOUCH_EVERY <= now:  # type: ignore[operator]
        conn.execute(update(sessions).where(sessions.c.token_sha256 == h).values(last_seen_at=now))
    return Session(user=user, csrf_token=row["csrf_token"], token_sha256=h, created_at=utc(row["created_at"]),
                   expires_at=utc(row["expires_at"]))  # type: ignore[arg-type]


def session_for_bearer(conn: Connection, token: str | None, now: dt.datetime) -> Session | None:
    """The API token's principal, as a session without CSRF, or None (unknown, expired,
    revoked, or its user row disabled). ``last_used_at`` is written at most once a minute."""
    if not token or len(token) > 200:
        return None
    now = utc(now)  # type: ignore[assignment]
    h = hash_token(token)
    row = conn.execute(select(api_tokens).where(api_tokens.c.token_sha256 == h)).mappings().first()
    if row is None or row["revoked_at"] is not None or utc(row["expires_at"]) <= now:  # type: ignore[operator]
        return None
    user = get_user(conn, row["user_id"])
    if user is None:
        return None
    last = utc(row["last_used_at"])
    if last is None or last + TOUCH_EVERY <= now:
        conn.execute(update(api_tokens).where(api_tokens.c.id == row["id"]).values(last_used_at=now))
    return Session(user=user, csrf_token="", token_sha256=h, created_at=utc(row["created_at"]),  # type: ignore[arg-type]
                   expires_at=utc(row["expires_at"]), via_token=True)  # type: ignore[arg-type]


def logout(conn: Connection, token: str | None) -> None:
    if token:
        conn.execute(delete(sessions).where(sessions.c.token_sha256 == hash_token(token)))


def csrf_ok(expected: str, supplied: str | None) -> bool:
    return bool(supplied) and hmac.compare_digest(expected.encode(), str(supplied).encode())


# ------------------------------------------------------------------ cookies


def set_session_cookie(response: Response, token: str, *, secure: bool = True) -> None:
    """HttpOnly, Secure (unless --insecure-cookies on loopback), SameSite=Strict, Path=/;
    a browser-session cookie (the server enforces idle and absolute limits)."""
    response.set_cookie(COOKIE_NAME, token, httponly=True, secure=secure, samesite="strict", path="/")


def clear_session_cookie(response: Response, *, secure: bool = True) -> None:
    response.delete_cookie(COOKIE_NAME, httponly=True, secure=secure, samesite="strict", path="/")


def login_csrf_token(request: Request, response: Response, *, secure: bool = True) -> str:
    """For the log-in form (no session yet): a double-submit token, set as cookie
    ``aa_login_csrf`` and put in the form's hidden ``csrf_token`` field."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not token or len(token) != 43:
        token = secrets.token_urlsafe(32)
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, secure=secure, samesite="strict", path="/")
    return token


def check_login_csrf(request: Request, supplied: str | None) -> None:
    """Raise CsrfFailed unless the log-in form's token matches its cookie."""
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not cookie or not csrf_ok(cookie, supplied):
        raise CsrfFailed()


def cookies_secure(request: Request) -> bool:
    settings = getattr(request.app.state, "settings", None)
    return not bool(getattr(settings, "insecure_cookies", False))


# ------------------------------------------------------------------ FastAPI dependencies


def _engine(request: Request) -> Any:
    return request.app.state.store.engine


def _load_session(request: Request) -> Session:
    """Sync (runs in the thread pool): the request's session, or NotAuthenticated. An
    ``Authorization: Bearer`` header is an API token and wins over any cookie: a bad
    token is refused, never passed over for the cookie."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, bearer = authorization.partition(" ")
        if scheme.lower() != BEARER_PREFIX.strip().lower() or not bearer.strip():
            raise NotAuthenticated("Authorization: only 'Bearer <API token>' is accepted")
        with _engine(request).begin() as conn:
            session = session_for_bearer(conn, bearer.strip(), dt.datetime.now(dt.timezone.utc))
        if session is None:
            raise NotAuthenticated("the API token is unknown, expired or revoked")
        return session
    token = request.cookies.get(COOKIE_NAME)
    if not token:
        raise NotAuthenticated()
    with _engine(request).begin() as conn:
        session = session_for_token(conn, token, dt.datetime.now(dt.timezone.utc))
    if session is None:
        raise NotAuthenticated("your session has ended; log in again")
    return session


async def current_session(request: Request, session: Session = Depends(_load_session)) -> Session:
    """The caller's session; on POST/PUT/PATCH/DELETE also checks the CSRF token (header
    ``X-CSRF-Token`` or form field ``csrf_token``) — unless the caller is an API token,
    which no browser sends by itself."""
    if request.method in UNSAFE_METHODS and not session.via_token:
        supplied = request.headers.get(CSRF_HEADER)
        if not supplied:
            ctype = request.headers.get("content-type", "")
            if ctype.startswith("application/x-www-form-urlencoded") or ctype.startswith("multipart/form-data"):
                form = await request.form()  # Starlette caches it; the route can read it again
                value = form.get(CSRF_FIELD)
                supplied = value if isinstance(value, str) else None
        if not csrf_ok(session.csrf_token, supplied):
            raise CsrfFailed()
    request.state.session = session
    return session


async def current_user(session: Session = Depends(current_session)) -> User:
    return session.user


def require_role(*roles: str) -> Callable[..., Any]:
    """Dependency: the current user, if their role is one of ``roles``; else 403."""
    for r in roles:
        if r not in ROLES:
            raise ValueError(f"unknown role {r!r}")

    async def dependency(user: User = Depends(current_user)) -> User:
        if user.role not in roles:
            raise RoleForbidden()
        return user

    dependency.__name__ = "require_" + "_or_".join(roles)
    return dependency
