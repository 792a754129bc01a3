"""API tokens (server/api_tokens.py) against a real collector over HTTP on 127.0.0.1, on
SQLite and PostgreSQL: created by an administrator (CLI and API), shown once, stored
only as a hash, scoped like a user, with expiry and last use, revocable, audit-logged,
sent as ``Authorization: Bearer``. Per-route access for tokens is in
test_access_control.py."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select, text

from server import api_tokens, auth
from server.db import api_tokens as api_tokens_table

IFO = "Socialförvaltningen/IFO"
EB = IFO + "/Ekonomiskt bistånd"
AO = "Arbetsmarknad/Jobbcenter"
PASSWORD = "admin password for tokens"


@pytest.fixture(scope="module")
def setup(collector):
    for unit in (EB, AO):
        collector.store.add_unit(unit)
    collector.cli("user", "add", "root", "--role", "admin", "--password-stdin", input=PASSWORD + "\n")
    return collector


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _cli_create(collector, name: str, *args: str) -> str:
    out = collector.cli("api-token", "create", name, *args)
    token = out.stdout.strip().splitlines()[-1]
    assert token.startswith("aat_") and len(token) > 40
    assert token not in out.stderr  # shown once, on stdout only
    return token


def _create(collector, name: str, role: str, unit: str | None = None) -> str:
    with collector.engine.begin() as conn:
        return api_tokens.create_api_token(conn, name=name, role=role, unit_path=unit).token


def test_cli_token_is_scoped_like_a_user_and_stored_hashed(setup):
    c = setup
    token = _cli_create(c, "siem-ifo", "--role", "security_officer", "--unit", IFO, "--expires-in", "30d")
    with c.client() as http:
        me = http.get("/api/v1/me", headers=_bearer(token)).json()
        assert (me["username"], me["role"], me["unit"]) == ("token:siem-ifo", "security_officer", IFO)
        paths = {u["path"] for u in http.get("/api/v1/units", headers=_bearer(token)).json()}
        assert EB in paths and AO not in paths and "Arbetsmarknad" not in paths
        ao_id = c.store.list_units()
        ao = next(u["id"] for u in ao_id if u["path"] == AO)
        assert http.get(f"/api/v1/units/{ao}", headers=_bearer(token)).status_code == 404
        assert http.get("/api/v1/users", headers=_bearer(token)).status_code == 403
    with c.engine.connect() as conn:
        row = conn.execute(select(api_tokens_table).where(api_tokens_table.c.name == "siem-ifo")).mappings().one()
        dump = json.dumps([dict(r) for r in conn.execute(text("SELECT * FROM api_tokens")).mappings()], default=str)
        dump += json.dumps([dict(r) for r in conn.execute(text("SELECT * FROM users")).mappings()], default=str)
    assert token not in dump and token[4:] not in dump
    assert row["token_sha256"] == auth.hash_token(token)
    assert row["prefix"] == token[:12]
    assert row["last_used_at"] is not None  # written on first use
    listing = c.cli("api-token", "list").stdout
    assert "siem-ifo" in listing and token[:12] in listing and token not in listing and "active" in listing
    # Not a person: no log-in, not in the user list.
    with c.client() as http:
        r = http.post("/api/v1/login", json={"username": "token:siem-ifo", "password": token})
        assert r.status_code == 401
    with c.engine.connect() as conn:
        assert "token:siem-ifo" not in {u.username for u in auth.list_users(conn)}
    # The CLI revokes too.
    assert "revoked" in c.cli("api-token", "revoke", str(row["id"])).stdout
    assert c.cli("api-token", "revoke", str(row["id"]), check=False).returncode == 1
    with c.client() as http:
        assert http.get("/api/v1/me", headers=_bearer(token)).status_code == 401


def test_bearer_is_strict(setup):
    c = setup
    token = _create(c, "strict", "unit_manager", EB)
    with c.client() as http:
        assert http.get("/api/v1/me", headers={"Authorization": f"Basic {token}"}).status_code == 401
        assert http.get("/api/v1/me", headers={"Authorization": "Bearer"}).status_code == 401
        assert http.get("/api/v1/me", headers=_bearer(token + "x")).status_code == 401
        r = http.get("/api/v1/me", headers={"Authorization": f"bearer {token}"})  # the scheme is case-insensitive
        assert r.status_code == 200
        # A bad token is refused even next to a valid session cookie: no silent fall-back.
        login = http.post("/api/v1/login", json={"username": "root", "password": PASSWORD})
        assert login.status_code == 200
        # The cookie is Secure, so httpx keeps it off plain http: send it by hand.
        cookie = {"Cookie": f"{auth.COOKIE_NAME}={login.cookies[auth.COOKIE_NAME]}"}
        assert http.get("/api/v1/me", headers=cookie).json()["username"] == "root"
        r = http.get("/api/v1/me", headers=cookie | _bearer("aat_" + "A" * 43))
        assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"
        # A token needs no CSRF header to POST (no browser sends it by itself) ...
        admin = _create(c, "strict-admin", "admin")
        r = http.post("/api/v1/units", json={"path": "Kultur/Bibliotek"}, headers=_bearer(admin))
        assert r.status_code == 201, r.text
        # ... while the cookie session still does.
        r = http.post("/api/v1/units", json={"path": "Kultur/Musik"}, headers=cookie)
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
        # A token has no session to end.
        r = http.post("/api/v1/logout", headers=_bearer(token))
        assert r.status_code == 409 and r.json()["error"]["code"] == "not_a_session"
        assert http.get("/api/v1/me", headers=_bearer(token)).status_code == 200


def test_api_create_revoke_and_audit(setup):
    c = setup
    admin = _create(c, "provisioner", "admin")
    with c.client() as http:
        r = http.post("/api/v1/api-tokens", headers=_bearer(admin),
                      json={"name": "nightly-export", "role": "security_officer", "unit": EB, "expires_in": "7d"})
        assert r.status_code == 201, r.text
        body = r.json()
        token, info = body["token"], body["api_token"]
        assert info["state"] == "active" and info["unit"] == EB and info["created_by"] == "token:provisioner"
        assert http.get("/api/v1/me", headers=_bearer(token)).status_code == 200
        listed = http.get("/api/v1/api-tokens", headers=_bearer(admin)).json()
        assert token not in json.dumps(listed)
        assert next(t for t in listed if t["name"] == "nightly-export")["last_used_at"] is not None
        # Bad input: precise 4xx, nothing stored.
        before = c.count("api_tokens")
        for bad, status in (({"name": "x y", "role": "admin"}, 422),
                            ({"name": "nope", "role": "root"}, 422),
                            ({"name": "nope", "role": "unit_manager"}, 422),
                            ({"name": "nope", "role": "admin", "unit": EB}, 422),
                            ({"name": "nope", "role": "security_officer", "unit": "Finns/Inte"}, 404),
                            ({"name": "nope", "role": "admin", "expires_in": "400d"}, 422),
                            ({"name": "nope", "role": "admin", "expires_in": "soon"}, 422),
                            ({"name": "nightly-export", "role": "admin"}, 409)):
            r = http.post("/api/v1/api-tokens", headers=_bearer(admin), json=bad)
            assert r.status_code == status, (bad, r.text)
        assert c.count("api_tokens") == before
        # Revoke: refused from then on, everywhere.
        r = http.post(f"/api/v1/api-tokens/{info['id']}/revoke", headers=_bearer(admin))
        assert r.status_code == 200 and r.json()["state"] == "revoked"
        assert http.get("/api/v1/me", headers=_bearer(token)).status_code == 401
        assert http.post(f"/api/v1/api-tokens/{info['id']}/revoke", headers=_bearer(admin)).status_code == 404
        audit = http.get("/api/v1/audit", headers=_bearer(admin), params={"object_type": "api_token"}).json()
    actions = {(a["action"], a["object_id"]) for a in audit}
    assert ("api_token.create", str(info["id"])) in actions and ("api_token.revoke", str(info["id"])) in actions
    assert token not in json.dumps(audit)


def test_expired_token_is_refused(setup):
    c = setup
    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)
    with c.engine.begin() as conn:
        new = api_tokens.create_api_token(conn, name="expired", role="admin", expires_in=dt.timedelta(days=1),
                                          now=long_ago)
    assert new.info.state == "expired"
    with c.client() as http:
        r = http.get("/api/v1/me", headers=_bearer(new.token))
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    with c.engine.connect() as conn:
        assert api_tokens.get_api_token(conn, new.info.id).last_used_at is None


def test_require_token_refuses_sessions(collector_db_url):
    """The dependency for machine-only endpoints: a token of the right role passes, a
    session or a token of another role does not."""
    from fastapi import Depends
    from fastapi.testclient import TestClient

    from collector_fixtures import migrated_app

    app = migrated_app(collector_db_url)

    @app.get("/v1/machine-only")
    def machine_only(user: auth.User = Depends(api_tokens.require_token("security_officer"))) -> dict:
        return {"who": user.username}

    store = app.state.store
    store.add_unit(EB)
    with store.engine.begin() as conn:
        auth.create_user(conn, username="officer", role="security_officer", password=PASSWORD)
        ok = api_tokens.create_api_token(conn, name="gw", role="security_officer", unit_path=EB).token
        other = api_tokens.create_api_token(conn, name="gw-mgr", role="unit_manager", unit_path=EB).token
    with TestClient(app, base_url="https://testserver") as http:
        assert http.get("/v1/machine-only", headers=_bearer(ok)).json() == {"who": "token:gw"}
        assert http.get("/v1/machine-only", headers=_bearer(other)).status_code == 403
        assert http.get("/v1/machine-only").status_code == 401
        http.post("/api/v1/login", json={"username": "officer", "password": PASSWORD})
        r = http.get("/v1/machine-only")
        assert r.status_code == 403 and r.json()["error"]["code"] == "token_required"
    store.engine.dispose()
