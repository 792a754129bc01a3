"""Single sign-on with OpenID Connect (server/oidc.py, server/oidc_web.py).

* The whole log-in in headless Chromium against a real OpenID provider on 127.0.0.1:
  ``oidc-provider`` from npm (tests/oidc_provider, ``npm ci`` in .ci/run), started
  here, with a collector subprocess: a mapped user lands on the dashboard with the
  mapped role and unit; an unmapped user gets the refusal page; log-out ends the local
  session and offers the provider's end-session endpoint, which signs out there too.
* Tampering: an unknown or replayed state, a callback from another browser.
* ID-token validation against a JWKS (signature, iss, aud, exp, nonce, alg).
* Claim mapping and provisioning on SQLite and PostgreSQL (role follows the groups,
  an IdP user never takes a local account's name).
* Password log-in turned off by config.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from browser_harness import browser  # noqa: F401 - the fixture
from collector_fixtures import REPO, Collector, free_port
from server import oidc

PROVIDER_DIR = REPO / "tests" / "oidc_provider"
IFO = "Socialförvaltningen/IFO"
EB = IFO + "/Ekonomiskt bistånd"
CLIENT_ID, CLIENT_SECRET = "auditagent-collector", "test-client-secret-0123456789"
ACCOUNTS = {
    "anna": {"sub": "sub-anna-0001", "name": "Anna Andersson", "groups": ["Alla anställda", "IFO-säkerhet"]},
    "bertil": {"sub": "sub-bertil-0002", "name": "Bertil Berg", "groups": ["Alla anställda"]},
}


def _config(path: Path, op_issuer: str, collector_url: str, **extra: Any) -> Path:
    data = {"issuer": op_issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "redirect_uri": collector_url + "/login/oidc/callback", "display_name": "Testkommunens Entra ID",
            "post_logout_redirect_uri": collector_url + "/login", "claim": "groups",
            "mappings": [{"value": "IFO-säkerhet", "role": "security_officer", "unit": IFO},
                         {"value": "EB-chefer", "role": "unit_manager", "unit": EB}], **extra}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")  # JSON is YAML
    return path


# ------------------------------------------------------------------ the real provider + collector + Chromium


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("tests/oidc_provider/node_modules missing: run `npm ci --prefix tests/oidc_provider` "
                    "(.ci/run does)")
    node = shutil.which("node")
    assert node, "node is needed for the OpenID provider (Debian package nodejs)"
    work = tmp_path_factory.mktemp("sso")
    op_port, rp_port = free_port(), free_port()
    issuer, rp_url = f"http://127.0.0.1:{op_port}", f"http://127.0.0.1:{rp_port}"
    env = dict(os.environ, OIDC_PORT=str(op_port), OIDC_CLIENT_ID=CLIENT_ID, OIDC_CLIENT_SECRET=CLIENT_SECRET,
               OIDC_REDIRECT_URI=rp_url + "/login/oidc/callback", OIDC_POST_LOGOUT_URI=rp_url + "/login",
               OIDC_ACCOUNTS=json.dumps(ACCOUNTS), NODE_ENV="test")
    log = open(work / "provider.log", "wb")
    op = subprocess.Popen([node, str(PROVIDER_DIR / "provider.mjs")], cwd=PROVIDER_DIR, env=env, stdout=log,
                          stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 180  # node loading oidc-provider on a loaded 2-core machine; a crash fails at once
    while time.monotonic() < deadline:
        try:
            if httpx.get(issuer + "/.well-known/openid-configuration", timeout=30).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
        assert op.poll() is None, (work / "provider.log").read_text()
    else:
        op.kill()
        pytest.fail("the OpenID provider did not start: " + (work / "provider.log").read_text())
    db_url = f"sqlite:///{work / 'collector.db'}"
    from server import migrate
    from server.db import make_engine
    from server.store import Store

    engine = make_engine(db_url, pool_size=1, max_overflow=1)
    migrate.upgrade(engine)
    Store(engine).add_unit(EB)
    Store(engine).add_unit("Arbetsmarknad/Jobbcenter")
    engine.dispose()
    cfg = _config(work / "oidc.yaml", issuer, rp_url)
    rp = Collector(db_url=db_url, workdir=work, extra_args=("--insecure-cookies", "--oidc-config", str(cfg)))
    rp.start(port=rp_port)
    rp.issuer = issuer  # type: ignore[attr-defined]
    rp.shots = Path(os.environ.get("AUDITAGENT_SCREENSHOTS") or work)  # type: ignore[attr-defined]
    try:
        yield rp
    finally:
        rp.stop()
        op.terminate()
        op.wait(timeout=10)


def _sign_in_at_provider(page: Any, login: str) -> None:
    """The provider's own development log-in and consent pages."""
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    if page.locator("input[name=prompt][value=consent]").count():
        page.click("button[type=submit]")


def test_sso_login_logout_in_chromium(sso, browser):
    ctx = browser.new_context(locale="sv-SE", viewport={"width": 1366, "height": 900})
    page = ctx.new_page()
    page.goto(sso.url + "/units/1")  # a protected page first: back there after the log-in
    assert "/login" in page.url
    page.screenshot(path=str(sso.shots / "sso-login-sv-1366.png"))
    assert page.locator("#sso-login").inner_text() == "Logga in med Testkommunens Entra ID"
    assert page.locator("#username").count() == 1  # break-glass password form is still there
    page.click("#sso-login")
    assert page.url.startswith(sso.issuer), page.url
    _sign_in_at_provider(page, "anna")
    page.wait_for_url(sso.url + "/units/1")
    header = page.locator("header").inner_text()
    assert "anna" in header and "säkerhetssamordnare" in header
    # The session is an ordinary one: its scope is IFO's subtree, from the mapping.
    with sso.engine.connect() as conn:
        from server import auth

        user = next(u for u in auth.list_users(conn) if u.username == "anna")
    assert (user.role, user.unit) == ("security_officer", IFO)
    page.goto(sso.url + "/")
    body = page.locator("main").inner_text()
    assert "Ekonomiskt bistånd" in body and "Jobbcenter" not in body
    # Log out: the local session ends, and the page offers the provider's end-session.
    page.click("#logout")
    page.wait_for_url("**/login?signed_out=1")
    page.screenshot(path=str(sso.shots / "sso-signed-out-sv-1366.png"))
    assert page.goto(sso.url + "/").url.startswith(sso.url + "/login")
    page.goto(sso.url + "/login?signed_out=1")
    link = page.locator("#sso-logout")
    assert link.get_attribute("href").startswith(sso.issuer)
    link.click()
    page.click("button[name=logout]")  # the provider asks "sign out?"
    page.wait_for_url(sso.url + "/login**")
    # Signed out at the provider too: the next SSO log-in asks for the password again.
    page.click("#sso-login")
    assert page.locator("input[name=login]").count() == 1
    ctx.close()


def test_unmapped_user_is_refused_with_a_clear_page(sso, browser):
    for lang, width, expected in (("sv", 1366, "tillhör ingen grupp"), ("en", 390, "belongs to no group")):
        ctx = browser.new_context(locale={"sv": "sv-SE", "en": "en-GB"}[lang],
                                  viewport={"width": width, "height": 800})
        page = ctx.new_page()
        page.goto(sso.url + f"/login?lang={lang}")
        page.click("#sso-login")
        _sign_in_at_provider(page, "bertil")
        page.wait_for_url(sso.url + "/login/oidc/callback**")
        refused = page.locator("#sso-refused")
        assert refused.get_attribute("data-reason") == "oidc.unmapped"
        assert expected in refused.inner_text()
        page.screenshot(path=str(sso.shots / f"sso-refused-{lang}-{width}.png"))
        assert page.goto(sso.url + "/").url.startswith(sso.url + "/login")  # no session
        ctx.close()
    with sso.engine.connect() as conn:
        from server import auth

        assert "bertil" not in {u.username for u in auth.list_users(conn)}  # nothing stored


def test_state_is_bound_and_single_use(sso, browser):
    with sso.client(follow_redirects=False) as http:
        r = http.get("/login/oidc/callback", params={"state": "made-up", "code": "x"})
        assert r.status_code == 403 and 'data-reason="oidc.expired"' in r.text
        start = http.get("/login/oidc", params={"next": "https://evil.example/"})
        assert start.status_code == 303
        loc = httpx.URL(start.headers["location"])
        q = dict(loc.params)
        assert q["code_challenge_method"] == "S256" and q["nonce"] and q["state"] and q["client_id"] == CLIENT_ID
        assert start.cookies[oidc.BINDING_COOKIE]
        # The provider's answer arriving in another browser (no binding cookie): refused ...
        with sso.client(follow_redirects=False) as other:
            r = other.get("/login/oidc/callback", params={"state": q["state"], "code": "x"})
        assert 'data-reason="oidc.expired"' in r.text
        # ... without using the state up (nobody can cancel another's log-in); the right
        # browser's made-up code is refused by the provider, and that state is then spent.
        r = http.get("/login/oidc/callback", params={"state": q["state"], "code": "x"})
        assert 'data-reason="oidc.provider_error"' in r.text
        r = http.get("/login/oidc/callback", params={"state": q["state"], "code": "x"})
        assert 'data-reason="oidc.expired"' in r.text
        # A real log-in whose callback is replayed: the second use is refused.
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(sso.url + "/login?next=https://evil.example/")
    page.click("#sso-login")
    callbacks: list[str] = []
    page.on("request", lambda req: callbacks.append(req.url) if "/login/oidc/callback" in req.url else None)
    _sign_in_at_provider(page, "anna")
    page.wait_for_url(sso.url + "/")  # an outside next became "/"
    assert callbacks
    page.goto(callbacks[0])
    assert page.locator("#sso-refused").get_attribute("data-reason") == "oidc.expired"
    ctx.close()


# ------------------------------------------------------------------ ID-token validation (pure)


@pytest.fixture(scope="module")
def signer() -> Any:
    from joserfc.jwk import RSAKey

    key = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"})
    other = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"})
    return key, other


def _token(key: Any, **claims: Any) -> str:
    from joserfc import jwt

    now = int(time.time())
    base = {"iss": "https://idp.example/v2.0", "aud": CLIENT_ID, "sub": "s1", "iat": now, "exp": now + 300,
            "nonce": "n1"}
    base.update(claims)
    return jwt.encode({"alg": "RS256", "kid": "k1"}, {k: v for k, v in base.items() if v is not None}, key)


def test_id_token_validation(signer):
    key, other = signer
    jwks = {"keys": [key.as_dict(private=False)]}
    kw = {"issuer": "https://idp.example/v2.0", "client_id": CLIENT_ID, "nonce": "n1"}
    assert oidc.validate_id_token(_token(key), jwks, **kw)["sub"] == "s1"
    now = int(time.time())
    bad = {
        "another key": _token(other),
        "issuer": _token(key, iss="https://evil.example/v2.0"),
        "audience": _token(key, aud="someone-else"),
        "expired": _token(key, iat=now - 7200, exp=now - 3600),
        "nonce": _token(key, nonce="replayed"),
        "no nonce": _token(key, nonce=None),
        "no exp": _token(key, exp=None),
        "azp": _token(key, aud=[CLIENT_ID, "other"], azp="other"),
    }
    for what, tok in bad.items():
        with pytest.raises(oidc.Refused) as err:
            oidc.validate_id_token(tok, jwks, **kw)
        assert err.value.reason == "oidc.bad_token", what
    # alg "none": an unsigned token with the right claims.
    import base64

    def b64(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    unsigned = b64({"alg": "none"}) + "." + b64({"iss": kw["issuer"], "aud": CLIENT_ID, "sub": "s1", "iat": now,
                                                "exp": now + 300, "nonce": "n1"}) + "."
    with pytest.raises(oidc.Refused):
        oidc.validate_id_token(unsigned, jwks, **kw)


# ------------------------------------------------------------------ mapping and provisioning (SQLite + PostgreSQL)


def _cfg(tmp_path: Path, **extra: Any) -> oidc.OidcConfig:
    return oidc.load_config(_config(tmp_path / "c.yaml", "https://idp.example/v2.0", "https://audit.example",
                                    **extra))


def test_mapping_first_match_and_overage(tmp_path):
    cfg = _cfg(tmp_path)
    assert oidc.map_claims({"groups": ["EB-chefer", "IFO-säkerhet"]}, cfg).role == "security_officer"
    assert oidc.map_claims({"groups": "EB-chefer"}, cfg).unit == EB
    for claims in ({"groups": ["x"]}, {}, {"groups": None}, {"groups": [{"IFO-säkerhet": 1}]}):
        with pytest.raises(oidc.Refused) as err:
            oidc.map_claims(claims, cfg)
        assert err.value.reason == "oidc.unmapped"
    with pytest.raises(oidc.Refused) as err:
        oidc.map_claims({"_claim_names": {"groups": "src1"}}, cfg)
    assert err.value.reason == "oidc.group_overage"
    roles = _cfg(tmp_path, claim="roles", mappings=[{"value": "Audit.Admin", "role": "admin"}])
    assert oidc.map_claims({"roles": ["Audit.Admin"]}, roles).role == "admin"


def test_config_errors_name_the_field(tmp_path):
    for extra, field in (({"issuer": "http://idp.example"}, "issuer"),
                         ({"mappings": []}, "mappings"),
                         ({"mappings": [{"value": "g", "role": "root"}]}, "mappings[0]"),
                         ({"mappings": [{"value": "g", "role": "admin", "unit": IFO}]}, "mappings[0]"),
                         ({"mappings": [{"value": "g", "role": "unit_manager"}]}, "mappings[0]"),
                         ({"local_login": "no"}, "local_login"),
                         ({"client_id": ""}, "client_id")):
        with pytest.raises(oidc.OidcConfigError) as err:
            _cfg(tmp_path, **extra)
        assert field in str(err.value)


def test_provisioning_follows_the_groups(collector_db_url, tmp_path):
    from collector_fixtures import migrated_app
    from server import auth

    app = migrated_app(collector_db_url)
    store = app.state.store
    store.add_unit(EB)
    cfg = _cfg(tmp_path)
    now = dt.datetime.now(dt.timezone.utc)
    claims = {"sub": "sub-cecilia", "preferred_username": "cecilia@kommun.se", "groups": ["IFO-säkerhet"]}
    with store.engine.begin() as conn:
        auth.create_user(conn, username="admin", role="admin", password="break-glass password")
        u = oidc.provision(conn, cfg, claims, now)
        assert (u.username, u.role, u.scope_path) == ("cecilia@kommun.se", "security_officer", IFO)
        # Groups changed at the provider: the role and unit follow at the next log-in.
        u2 = oidc.provision(conn, cfg, dict(claims, groups=["EB-chefer"]), now)
        assert (u2.id, u2.role, u2.scope_path) == (u.id, "unit_manager", EB)
        with pytest.raises(oidc.Refused) as err:
            oidc.provision(conn, cfg, dict(claims, groups=[]), now)
        assert err.value.reason == "oidc.unmapped"
        # A provider user named like a local (break-glass) account does not become it.
        with pytest.raises(oidc.Refused) as err:
            oidc.provision(conn, cfg, {"sub": "other", "preferred_username": "admin", "groups": ["IFO-säkerhet"]},
                           now)
        assert err.value.reason == "oidc.name_taken"
        # No password opens an SSO user's account.
        assert auth.login(conn, "cecilia@kommun.se", "oidc", now) is None
    with store.engine.connect() as conn:
        from sqlalchemy import text

        actions = [r[0] for r in conn.execute(text("SELECT action FROM audit_log ORDER BY id"))]
    assert "user.create_sso" in actions and "user.sso_role" in actions 
    store.engine.dispose()


def test_password_login_can_be_turned_off(collector_db_url, tmp_path):
    from fastapi.testclient import TestClient

    from server import auth, migrate
    from server.app import Settings, create_app
    from server.db import make_engine

    engine = make_engine(collector_db_url, pool_size=1, max_overflow=0)
    migrate.upgrade(engine)
    engine.dispose()
    cfg = _cfg(tmp_path, local_login=False)
    app = create_app(Settings(db_url=collector_db_url, pool_size=2, max_overflow=2, oidc=cfg))
    with app.state.store.engine.begin() as conn:
        auth.create_user(conn, username="glass", role="admin", password="break-glass password")
    with TestClient(app, base_url="https://testserver") as http:
        page = http.get("/login")
        assert 'id="sso-login"' in page.text and 'id="password"' not in page.text
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0] if "csrf_token" in page.text else ""
        r = http.post("/login", data={"username": "glass", "password": "break-glass password", "csrf_token": token})
        assert r.status_code == 403 and auth.COOKIE_NAME not in r.cookies
        r = http.post("/api/v1/login", json={"username": "glass", "password": "break-glass password"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "local_login_disabled"
    app.state.store.engine.dispose()
