"""Single sign-on with OpenID Connect (Microsoft Entra ID first; any standard provider).

Flow (authorization code with PKCE, ``state`` and ``nonce``):

1. ``GET /login/oidc?next=/units/3`` makes a random state, nonce and PKCE verifier,
   keeps them in ``oidc_pending`` (one row, hashed state, 10 minutes, one use) bound to
   this browser by a random cookie ``aa_oidc`` (HttpOnly, SameSite=Lax so it comes back
   with the provider's redirect), and sends the browser to the provider.
2. ``GET /login/oidc/callback?code&state``: the state must match a pending row whose
   binding is this browser's cookie; the row is deleted (no replay). The code is
   exchanged at the token endpoint with the verifier (Authlib's OAuth2 client); the ID
   token is checked with joserfc against the provider's JWKS: signature (RS/ES/PS
   algorithms only), ``iss``, ``aud`` (and ``azp``), ``exp``/``iat`` with 60 s leeway, and
   the ``nonce``. No JOSE is written here.
3. The ID token's group or app-role claim is looked up in the configured mappings
   (first match wins); no match → a page that says so, and nothing is stored. A match
   gives (role, unit): the user row linked to (issuer, subject) in ``oidc_identities``
   is created or updated to it, so a changed group changes the role at the next
   log-in. An IdP user never takes over a local account of the same name.
4. A session opens as for a password log-in. The answer is a small page that moves on
   with ``<meta http-equiv=refresh>``: the session cookie is SameSite=Strict, which a
   browser does not send on a redirect chain that started at the provider.

Local password accounts stay (break-glass) unless ``local_login: false`` in the config.
Log-out ends the local session and the log-in page offers the provider's end-session
endpoint (RP-initiated logout).

Config (YAML, ``serve --oidc-config FILE``)::

    issuer: https://login.microsoftonline.com/<tenant-id>/v2.0
    client_id: 00000000-0000-0000-0000-000000000000
    client_secret_file: /etc/auditagent/oidc-client-secret   # or client_secret: ...
    redirect_uri: https://audit.example.se/login/oidc/callback
    display_name: Microsoft Entra ID
    claim: groups                 # or roles (app roles)
    username_claim: preferred_username
    local_login: true
    mappings:
      - {value: "IFO-säkerhet", role: security_officer, unit: "Socialförvaltningen/IFO"}
      - {value: "auditagent-admin", role: admin}
"""
from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
import yaml
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from server import auth
from server.db import ROLES, oidc_identities, oidc_pending, units, users, utc, write_audit
from server.store import normalise_unit_path

PENDING_TTL = dt.timedelta(minutes=10)
BINDING_COOKIE = "aa_oidc"
LEEWAY_SECONDS = 60
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
DISCOVERY_TTL_SECONDS = 3600
OIDC_PASSWORD_HASH = "oidc"  # not a scrypt hash: such a user has no password log-in
HTTP_TIMEOUT = 10


class OidcConfigError(ValueError):
    pass


class Refused(Exception):
    """The log-in is refused; ``reason`` is a translation key for the page."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Mapping:
    value: str
    role: str
    unit: str | None


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    mappings: tuple[Mapping, ...]
    claim: str = "groups"
    username_claim: str = "preferred_username"
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    display_name: str = "single sign-on"
    local_login: bool = True
    ca_file: str | None = None  # a private CA for the provider's TLS; default: the system's
    post_logout_redirect_uri: str | None = None


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: where plain http reaches nothing beyond this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback(url: str) -> bool:
    return is_loopback_host(urlsplit(url).hostname or "")


def load_config(path: str | Path) -> OidcConfig:
    """Read and check the YAML config; errors name the file and the field."""
    where = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise OidcConfigError(f"{where}: cannot read the OIDC config: {exc}") from None
    if not isinstance(data, dict):
        raise OidcConfigError(f"{where}: the OIDC config must be a mapping of fields")

    def text(key: str, required: bool = True) -> str | None:
        value = data.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise OidcConfigError(f"{where}: {key}: required text")
        return value.strip()

    secret = data.get("client_secret")
    if data.get("client_secret_file"):
        secret = Path(str(data["client_secret_file"])).read_text(encoding="utf-8").strip()
    if not isinstance(secret, str) or not secret:
        raise OidcConfigError(f"{where}: client_secret or client_secret_file: required")
    issuer, redirect = text("issuer"), text("redirect_uri")
    for key, url in (("issuer", issuer), ("redirect_uri", redirect)):
        if not (url.startswith("https://") or (url.startswith("http://") and _loopback(url))):  # type: ignore[union-attr]
            raise OidcConfigError(f"{where}: {key}: must be https:// (plain http only on a loopback address)")
    mappings = []
    for i, m in enumerate(data.get("mappings") or []):
        if not isinstance(m, dict) or not isinstance(m.get("value"), str) or m.get("role") not in ROLES:
            raise OidcConfigError(f"{where}: mappings[{i}]: needs value (text) and role ({', '.join(ROLES)})")
        unit = m.get("unit")
        if m["role"] == "admin" and unit:
            raise OidcConfigError(f"{where}: mappings[{i}]: an administrator is not limited to a unit")
        if m["role"] == "unit_manager" and not unit:
            raise OidcConfigError(f"{where}: mappings[{i}]: a unit manager needs a unit")
        mappings.append(Mapping(value=m["value"], role=m["role"],
                                unit="/".join(normalise_unit_path(unit)) if unit else None))
    if not mappings:
        raise OidcConfigError(f"{where}: mappings: at least one (claim value → role and unit)")
    local = data.get("local_login", True)
    if not isinstance(local, bool):
        raise OidcConfigError(f"{where}: local_login: true or false")
    scopes = data.get("scopes") or ["openid", "profile", "email"]
    if "openid" not in scopes:
        raise OidcConfigError(f"{where}: scopes: must include openid")
    return OidcConfig(issuer=issuer.rstrip("/"), client_id=text("client_id"), client_secret=secret,  # type: ignore[arg-type, union-attr]
                      redirect_uri=redirect, mappings=tuple(mappings),  # type: ignore[arg-type]
                      claim=text("claim", False) or "groups",
                      username_claim=text("username_claim", False) or "preferred_username",
                      scopes=tuple(str(s) for s in scopes), display_name=text("display_name", False) or "single sign-on",
                      local_login=local, ca_file=text("ca_file", False),
                      post_logout_redirect_uri=text("post_logout_redirect_uri", False))


# ------------------------------------------------------------------ pure parts


def local_login_allowed(settings: Any) -> bool:
    """Password log-in is on unless an OIDC config turns it off (``local_login: false``)."""
    config = getattr(settings, "oidc", None)
    return config is None or config.local_login


def map_claims(claims: dict[str, Any], config: OidcConfig) -> Mapping:
    """The first configured mapping whose value is in the claim (a list or one string);
    Refused('oidc.unmapped') when none is, 'oidc.group_overage' when the provider left
    the groups out because there are too many (Entra ID's ``_claim_names``)."""
    values = claims.get(config.claim)
    if values is None and config.claim in (claims.get("_claim_names") or {}):
        raise Refused("oidc.group_overage", config.claim)
    if isinstance(values, str):
        values = [values]
    have = {v for v in values or () if isinstance(v, str)}
    for m in config.mappings:
        if m.value in have:
            return m
    raise Refused("oidc.unmapped", config.claim)


def validate_id_token(id_token: str, jwks: dict[str, Any], *, issuer: str, client_id: str, nonce: str,
                      now: float | None = None) -> dict[str, Any]:
    """The ID token's claims after checking signature (JWKS), iss, aud, azp, exp, iat
    and nonce; Refused('oidc.bad_token') otherwise."""
    from joserfc import jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    try:
        keys = KeySet.import_key_set(jwks)
        token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
        registry = jwt.JWTClaimsRegistry(now=int(now if now is not None else time.time()), leeway=LEEWAY_SECONDS,
                                         iss={"essential": True, "value": issuer},
                                         aud={"essential": True, "value": client_id},
                                         sub={"essential": True}, exp={"essential": True}, iat={"essential": True},
                                         nonce={"essential": True, "value": nonce})
        registry.validate(token.claims)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise Refused("oidc.bad_token", type(exc).__name__) from None
    claims = dict(token.claims)
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
        raise Refused("oidc.bad_token", "azp")
    return claims


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------ the provider


class Provider:
    """The configured provider: metadata (discovery, cached an hour), the authorisation
    URL, the code exchange and the JWKS."""

    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self._meta: dict[str, Any] | None = None
        self._meta_at = 0.0

    @property
    def verify(self) -> Any:
        return self.config.ca_file or True  # TLS verified by default

    def metadata(self) -> dict[str, Any]:
        if self._meta is None or time.monotonic() - self._meta_at > DISCOVERY_TTL_SECONDS:
            r = requests.get(self.config.issuer + "/.well-known/openid-configuration", timeout=HTTP_TIMEOUT,
                             verify=self.verify)
            r.raise_for_status()
            meta = r.json()
            if meta.get("issuer", "").rstrip("/") != self.config.issuer:
                raise Refused("oidc.provider_error", "discovery issuer differs from the configured issuer")
            self._meta, self._meta_at = meta, time.monotonic()
        return self._meta

    def _session(self) -> Any:
        from authlib.integrations.requests_client import OAuth2Session

        s = OAuth2Session(self.config.client_id, self.config.client_secret, scope=" ".join(self.config.scopes),
                          redirect_uri=self.config.redirect_uri, code_challenge_method="S256")
        s.verify = self.verify
        return s

    def authorization_url(self, state: str, nonce: str, verifier: str) -> str:
        with self._session() as s:
            url, _ = s.create_authorization_url(self.metadata()["authorization_endpoint"], state=state, nonce=nonce,
                                                code_verifier=verifier)
        return str(url)

    def exchange(self, code: str, verifier: str) -> dict[str, Any]:
        with self._session() as s:
            return dict(s.fetch_token(self.metadata()["token_endpoint"], grant_type="authorization_code", code=code,
                                      code_verifier=verifier, timeout=HTTP_TIMEOUT))

    def jwks(self) -> dict[str, Any]:
        r = requests.get(self.metadata()["jwks_uri"], timeout=HTTP_TIMEOUT, verify=self.verify)
        r.raise_for_status()
        return dict(r.json())

    def end_session_url(self) -> str | None:
        try:
            endpoint = self.metadata().get("end_session_endpoint")
        except (requests.RequestException, Refused, ValueError):
            return None
        if not endpoint:
            return None
        params = {"client_id": self.config.client_id}
        if self.config.post_logout_redirect_uri:
            params["post_logout_redirect_uri"] = self.config.post_logout_redirect_uri
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)


# ------------------------------------------------------------------ log-in steps


@dataclass(frozen=True)
class Started:
    url: str
    binding: str  # the aa_oidc cookie's value


def start(conn: Connection, provider: Provider, next_path: str, now: dt.datetime) -> Started:
    state, nonce, verifier, binding = (secrets.token_urlsafe(32) for _ in range(4))
    conn.execute(delete(oidc_pending).where(oidc_pending.c.created_at < now - PENDING_TTL))
    conn.execute(insert(oidc_pending).values(state_sha256=_sha(state), binding_sha256=_sha(binding), nonce=nonce,
                                             code_verifier=verifier, next_path=next_path, created_at=now))
    return Started(url=provider.authorization_url(state, nonce, verifier), binding=binding)


@dataclass(frozen=True)
class Pending:
    nonce: str
    verifier: str
    next_path: str


def take_pending(conn: Connection, state: str | None, binding: str | None, now: dt.datetime) -> Pending:
    """The pending log-in for this state and browser, removed (one use); Refused otherwise."""
    if not state or not binding or len(state) > 200 or len(binding) > 200:
        raise Refused("oidc.expired")
    row = conn.execute(select(oidc_pending).where(oidc_pending.c.state_sha256 == _sha(state))).mappings().first()
    if row is None:
        raise Refused("oidc.expired")
    conn.execute(delete(oidc_pending).where(oidc_pending.c.state_sha256 == row["state_sha256"]))
    if not secrets.compare_digest(row["binding_sha256"], _sha(binding)):
        raise Refused("oidc.expired", "another browser")
    if utc(row["created_at"]) + PENDING_TTL <= now:  # type: ignore[operator]
        raise Refused("oidc.expired")
    return Pending(nonce=row["nonce"], verifier=row["code_verifier"], next_path=row["next_path"])


def provision(conn: Connection, config: OidcConfig, claims: dict[str, Any], now: dt.datetime) -> auth.User:
    """The local user for (issuer, subject), created or brought up to date with the
    mapped role and unit (in the caller's transaction, audit-logged); Refused when
    unmapped, when the unit does not exist, or when the name is a local account's."""
    mapping = map_claims(claims, config)
    unit_id = None
    if mapping.unit:
        unit_id = conn.execute(select(units.c.id).where(units.c.path == mapping.unit)).scalar()
        if unit_id is None:
            raise Refused("oidc.unit_missing", mapping.unit)
    subject = str(claims["sub"])
    link = conn.execute(select(oidc_identities.c.user_id).where(oidc_identities.c.issuer == config.issuer,
                                                                oidc_identities.c.subject == subject)).scalar()
    detail = {"issuer": config.issuer, "role": mapping.role, "unit": mapping.unit}
    if link is None:
        name = str(claims.get(config.username_claim) or claims.get("email") or subject)[:100]
        if auth.is_token_user(name) or conn.execute(select(users.c.id).where(users.c.username == name)).first():
            raise Refused("oidc.name_taken", name)
        link = conn.execute(insert(users).values(
            username=name, password_hash=OIDC_PASSWORD_HASH, role=mapping.role, scope_unit_id=unit_id, lang="sv",
            failed_logins=0, created_at=now).returning(users.c.id)).scalar_one()
        conn.execute(insert(oidc_identities).values(issuer=config.issuer, subject=subject, user_id=link,
                                                    created_at=now))
        write_audit(conn, None, "user.create_sso", "user", link, dict(detail, username=name), now)
    else:
        row = conn.execute(select(users.c.role, users.c.scope_unit_id, users.c.disabled_at)
                           .where(users.c.id == link)).first()
        if row is None or row.disabled_at is not None:
            raise Refused("oidc.disabled")
        if (row.role, row.scope_unit_id) != (mapping.role, unit_id):
            conn.execute(update(users).where(users.c.id == link).values(role=mapping.role, scope_unit_id=unit_id))
            write_audit(conn, None, "user.sso_role", "user", link, detail, now)
    user = auth.get_user(conn, link)
    assert user is not None
    return user
