"""Log-in, passwords, sessions, CSRF and cookies (SQLite and PostgreSQL)."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
from sqlalchemy import text, update

from server import auth
from server.db import sessions, users

PW = "a sufficiently long password"


def test_scrypt_hash_format_and_verify():
    h = auth.hash_password(PW)
    scheme, n, r, p, salt, digest = h.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**15), "8", "1")
    import base64

    assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(digest)) == 32
    assert auth.verify_password(PW, h)
    assert not auth.verify_password(PW + "x", h)
    assert auth.hash_password(PW) != h  # salted
    for broken in ("", "plain", "scrypt$1$2$3$!!$!!", "bcrypt$x$y$z$a$b"):
        assert not auth.verify_password(PW, broken)


@pytest.fixture(scope="module")
def env(collector_db_url):
    from fastapi.testclient import TestClient

    from collector_fixtures import migrated_app

    app = migrated_app(collector_db_url, max_overflow=2)
    store = app.state.store
    store.add_unit("Auth-Org/Team")
    with store.engine.begin() as conn:
        for name in ("alice", "bob", "carol", "dave"):
            auth.create_user(conn, username=name, role="security_officer", password=PW, unit_path="Auth-Org")
    yield app, store, lambda: TestClient(app, base_url="https://testserver")
    store.engine.dispose()


def login(client, user, pw=PW):
    return client.post("/api/v1/login", json={"username": user, "password": pw})


def test_login_cookie_flags(env):
    _, _, client = env
    r = login(client(), "alice")
    assert r.status_code == 200
    cookie = r.headers["set-cookie"]
    parts = [p.strip().lower() for p in cookie.split(";")]
    assert parts[0].startswith("aa_session=")
    assert "httponly" in parts and "secure" in parts and "samesite=strict" in parts and "path=/" in parts
    assert r.json()["csrf_token"] and r.json()["username"] == "alice"


def test_only_the_token_hash_is_stored(env):
    _, store, client = env
    c = client()
    login(c, "alice")
    token = c.cookies.get("aa_session")
    with store.engine.connect() as conn:
        stored = conn.execute(text("SELECT token_sha256 FROM sessions")).scalars().all()
    assert auth.hash_token(token) in stored and token not in stored


def test_wrong_password_and_unknown_user_look_the_same(env):
    _, _, client = env
    a = login(client(), "alice", "wrong password!")
    b = login(client(), "nobody-here", "wrong password!")
    assert a.status_code == b.status_code == 401
    assert a.json() == b.json()
    assert "set-cookie" not in a.headers


def test_five_failures_block_that_address_only(env):
    app, store, client = env
    from fastapi.testclient import TestClient

    for _ in range(5):
        assert login(client(), "bob", "wrong password!").status_code == 401
    blocked = login(client(), "bob")  # the right password, from the same address: wait
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 60
    assert blocked.json()["error"]["code"] == "too_many_attempts"
    assert "set-cookie" not in blocked.headers
    # An unknown user name is throttled the same way (no account existence is revealed).
    for _ in range(5):
        login(client(), "nobody-at-all", "wrong password!")
    assert login(client(), "nobody-at-all", "x").status_code == 429
    # Bob from his own address is not locked out by the stranger's guesses.
    own = TestClient(app, base_url="https://testserver", client=("198.51.100.7", 5000))
    assert login(own, "bob").status_code == 200
    with store.engine.connect() as conn:
        entry = conn.execute(text("SELECT detail FROM audit_log WHERE action = 'user.locked' ORDER BY id DESC")
                             ).scalars().first()
    assert '"scope": "address"' in entry and '"source": "testclient"' in entry


def test_json_login_needs_json(env):
    _, _, client = env
    r = client().post("/api/v1/login", content=f'{{"username":"alice","password":"{PW}"}}',
                      headers={"content-type": "text/plain"})
    assert r.status_code in (415, 422)


def test_csrf_required_on_post_with_cookie(env):
    _, _, client = env
    c = client()
    csrf = login(c, "carol").json()["csrf_token"]
    body = {"reason": "x"}
    assert c.post("/api/v1/exceptions/1/revoke", json=body).json()["error"]["code"] == "csrf_failed"
    assert c.post("/api/v1/exceptions/1/revoke", json=body,
                  headers={"X-CSRF-Token": "wrong"}).status_code == 403
    # with the token: past CSRF (404: no such exception)
    assert c.post("/api/v1/exceptions/1/revoke", json=body, headers={"X-CSRF-Token": csrf}).status_code == 404
    # form field works too (the dashboard's forms)
    r = c.post("/api/v1/logout", data={"csrf_token": "wrong"})
    assert r.status_code == 403
    r = c.post("/api/v1/logout", data={"csrf_token": csrf})
    assert r.status_code == 204
    assert c.get("/api/v1/me").status_code == 401


def test_session_idle_and_absolute_expiry(env):
    _, store, client = env
    c = client()
    login(c, "dave")
    h = auth.hash_token(c.cookies.get("aa_session"))
    assert c.get("/api/v1/me").status_code == 200
    now = dt.datetime.now(dt.timezone.utc)
    with store.engine.begin() as conn:
        conn.execute(update(sessions).where(sessions.c.token_sha256 == h)
                     .values(last_seen_at=now - dt.timedelta(minutes=31)))
    assert c.get("/api/v1/me").status_code == 401  # idle
    c2 = client()
    login(c2, "dave")
    h2 = auth.hash_token(c2.cookies.get("aa_session"))
    with store.engine.begin() as conn:
        conn.execute(update(sessions).where(sessions.c.token_sha256 == h2)
                     .values(expires_at=now - dt.timedelta(seconds=1)))
    assert c2.get("/api/v1/me").status_code == 401  # absolute
    with store.engine.connect() as conn:  # both deleted on sight
        assert conn.execute(text("SELECT count(*) FROM sessions WHERE token_sha256 IN (:a, :b)"),
                            {"a": h, "b": h2}).scalar_one() == 0


def test_session_functions_with_fixed_time(env):
    _, store, _ = env
    t0 = dt.datetime(2030, 1, 1, 8, 0, tzinfo=dt.timezone.utc)
    with store.engine.begin() as conn:
        res = auth.login(conn, "alice", PW, t0)
        assert res is not None
        s = auth.session_for_token(conn, res.token, t0 + dt.timedelta(minutes=29))
        assert s is not None and s.user.username == "alice" and s.csrf_token == res.csrf_token
        # activity keeps it alive up to the absolute limit
        for minutes in range(50, 12 * 60, 20):
            assert auth.session_for_token(conn, res.token, t0 + dt.timedelta(minutes=minutes)) is not None
        assert auth.session_for_token(conn, res.token, t0 + dt.timedelta(hours=12, minutes=1)) is None


def test_disabled_user_loses_sessions(env):
    _, store, client = env
    with store.engine.begin() as conn:
        auth.create_user(conn, username="erin", role="unit_manager", password=PW, unit_path="Auth-Org/Team")
    c = client()
    assert login(c, "erin").status_code == 200
    with store.engine.begin() as conn:
        assert auth.disable_user(conn, "erin")
    assert c.get("/api/v1/me").status_code == 401
    assert login(client(), "erin").status_code == 401


def test_user_rules(env):
    _, store, _ = env
    from server.store import ApiError

    with store.engine.begin() as conn:
        for kw in ({"role": "unit_manager"}, {"role": "boss"}, {"role": "admin", "unit_path": "Auth-Org"},
                   {"role": "security_officer", "password": "short"}, {"role": "admin", "username": "bad name"},
                   {"role": "admin", "username": "alice"}):
            args = {"username": "zed", "password": PW, **kw}
            with pytest.raises(ApiError):
                auth.create_user(conn, **args)
        conn.rollback()


def test_api_answers_401_without_session(env):
    _, _, client = env
    c = client()
    assert c.get("/api/v1/units").status_code == 401
    assert c.get("/api/v1/units").json()["error"]["code"] == "not_authenticated"


# ------------------------------------------------------------------ the real collector process


def test_cli_user_add_list_disable(collector):
    out = collector.cli("user", "add", "frida", "--role", "security_officer", "--lang", "en")
    password = out.stdout.strip().splitlines()[-1]
    assert len(password) >= 20
    collector.cli("unit", "add", "CLI-Org/Sub")
    collector.cli("user", "add", "gustav", "--role", "unit_manager", "--unit", "CLI-Org",
                  "--password-stdin", input=PW + "\n")
    bad = collector.cli("user", "add", "harald", "--role", "unit_manager", check=False)
    assert bad.returncode != 0 and "unit" in bad.stderr
    listing = collector.cli("user", "list").stdout
    assert "frida" in listing and "gustav" in listing and "CLI-Org" in listing
    with collector.client() as c:
        r = c.post("/api/v1/login", json={"username": "gustav", "password": PW})
        assert r.status_code == 200
        # plain http: the Secure cookie is set, and an http client will not send it back
        assert "secure" in r.headers["set-cookie"].lower()
    collector.cli("user", "disable", "gustav")
    with collector.client() as c:
        assert c.post("/api/v1/login", json={"username": "gustav", "password": PW}).status_code == 401


def test_insecure_cookies_only_on_loopback_http(collector_db_url, tmp_path):
    from collector_fixtures import REPO, _env, start_collector

    proc = subprocess.run([sys.executable, "-m", "server.cli", "serve", "--db", collector_db_url, "--host", "0.0.0.0",
                           "--insecure-cookies"], capture_output=True, text=True, env=_env(), cwd=REPO, timeout=60)
    assert proc.returncode != 0 and "loopback" in proc.stderr
    c = start_collector(collector_db_url, tmp_path / "insecure", extra_args=("--insecure-cookies",))
    try:
        c.cli("user", "add", "ivar", "--role", "security_officer", "--password-stdin", input=PW + "\n")
        with c.client() as client:
            r = client.post("/api/v1/login", json={"username": "ivar", "password": PW})
            assert r.status_code == 200
            flags = r.headers["set-cookie"].lower()
            assert "httponly" in flags and "samesite=strict" in flags and "secure" not in flags
            assert client.get("/api/v1/me").json()["username"] == "ivar"
    finally:
        c.stop()
