"""Who may do what, through the JSON API: every /api/ route × every role (administrator,
security officer for all units, security officer for a subtree, unit manager, nobody)
× an object inside and outside the user's subtree → the expected status, on SQLite and
PostgreSQL. A unit, device, report or exception outside the subtree answers 404, the
same as a missing one; a role that may not use a route gets 403; no session, 401.
Every case runs twice: with a log-in session (cookie + CSRF header) and with an API
token of the same role and unit (``Authorization: Bearer``, no CSRF); "anon" with a
token is a made-up one.

``test_every_api_route_has_cases`` fails when a route is added without a row here."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest

from readiness_fleet import AO, EB, PASSWORD, build_fleet
from server import readiness as rd

ROLES = ("admin", "so_all", "so_ifo", "mgr_eb")
H = dt.timedelta(hours=1)


@pytest.fixture(scope="module")
def app_fleet(collector_db_url):
    from fastapi.testclient import TestClient

    from collector_fixtures import migrated_app

    app = migrated_app(collector_db_url, max_overflow=4)
    fleet = build_fleet(app.state.store)
    clients = {}
    for role in ROLES:
        c = TestClient(app, base_url="https://testserver")
        r = c.post("/api/v1/login", json={"username": role, "password": PASSWORD})
        assert r.status_code == 200, r.text
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        clients[role] = c
    clients["anon"] = TestClient(app, base_url="https://testserver")
    from server import api_tokens

    with fleet.store.engine.begin() as conn:
        for role in ROLES:
            u = fleet.users[role]
            new = api_tokens.create_api_token(conn, name=f"ac-{role}", role=u.role, unit_path=u.scope_path,
                                              expires_in=24 * H)
            c = TestClient(app, base_url="https://testserver")
            c.headers["Authorization"] = f"Bearer {new.token}"
            clients["token", role] = c
    c = TestClient(app, base_url="https://testserver")
    c.headers["Authorization"] = "Bearer " + api_tokens.new_token_value()
    clients["token", "anon"] = c
    yield app, fleet, clients
    for c in clients.values():
        c.close()
    app.state.store.engine.dispose()


def _exception_on(fleet, device: str) -> int:
    """A fresh active exception (granted by the all-units officer) on a device."""
    with fleet.store.engine.begin() as conn:
        e = rd.grant_exception(conn, fleet.users["so_all"], check_id="firewall", device_id=fleet.devices[device].id,
                               expires_at=dt.datetime.now(dt.timezone.utc) + 24 * H,
                               justification="access-control test exception", now=dt.datetime.now(dt.timezone.utc))
    return e.id


# Each case: (method, route template) → {role: (status for the in-scope object, status for the
# out-of-scope object)}; None where the route has no object. "in" = EB / eb1; "out" = AO / ao1
# (outside so_ifo's IFO subtree and mgr_eb's EB subtree; inside everyone else's).
READ_SCOPED = {"admin": (200, 200), "so_all": (200, 200), "so_ifo": (200, 404), "mgr_eb": (200, 404),
               "anon": (401, 401)}
ADMIN_ONLY = {"admin": (201, None), "so_all": (403, None), "so_ifo": (403, None), "mgr_eb": (403, None),
              "anon": (401, None)}
CASES: dict[tuple[str, str], dict[str, tuple[int, int | None]]] = {
    ("GET", "/api/v1/me"): {r: (200, None) for r in ROLES} | {"anon": (401, None)},
    ("GET", "/api/v1/units"): {r: (200, None) for r in ROLES} | {"anon": (401, None)},
    ("GET", "/api/v1/units/{unit_id}"): READ_SCOPED,
    ("GET", "/api/v1/units/{unit_id}/trend"): READ_SCOPED,
    ("GET", "/api/v1/units/{unit_id}/export.csv"): {"admin": (200, 200), "so_all": (200, 200),
                                                     "so_ifo": (200, 404), "mgr_eb": (403, 403),
                                                     "anon": (401, 401)},
    ("GET", "/api/v1/units/{unit_id}/export.xlsx"): {"admin": (200, 200), "so_all": (200, 200),
                                                      "so_ifo": (200, 404), "mgr_eb": (403, 403),
                                                      "anon": (401, 401)},
    ("GET", "/api/v1/devices/{device_id}"): READ_SCOPED,
    ("GET", "/api/v1/devices/{device_id}/reports"): READ_SCOPED,
    ("GET", "/api/v1/devices/{device_id}/public-key"): READ_SCOPED,
    ("GET", "/api/v1/reports/{report_id}/envelope"): READ_SCOPED,
    ("GET", "/api/v1/exceptions"): {r: (200, None) for r in ROLES} | {"anon": (401, None)},
    ("POST", "/api/v1/exceptions"): {"admin": (403, 403), "so_all": (201, 201), "so_ifo": (201, 404),
                                     "mgr_eb": (403, 403), "anon": (401, 401)},
    ("POST", "/api/v1/exceptions/{exception_id}/revoke"): {"admin": (403, 403), "so_all": (200, 200),
                                                           "so_ifo": (200, 404), "mgr_eb": (403, 403),
                                                           "anon": (401, 401)},
    ("POST", "/api/v1/units"): ADMIN_ONLY,
    ("POST", "/api/v1/tokens"): ADMIN_ONLY,
    ("GET", "/api/v1/users"): {**ADMIN_ONLY, "admin": (200, None)},
    ("POST", "/api/v1/users"): ADMIN_ONLY,
    ("GET", "/api/v1/audit"): {**ADMIN_ONLY, "admin": (200, None)},
    ("POST", "/api/v1/logout"): {r: (204, None) for r in ROLES} | {"anon": (401, None)},
    ("GET", "/api/v1/api-tokens"): {**ADMIN_ONLY, "admin": (200, None)},
    ("POST", "/api/v1/api-tokens"): ADMIN_ONLY,
    ("POST", "/api/v1/api-tokens/{api_token_id}/revoke"): {**ADMIN_ONLY, "admin": (200, None)},
    ("GET", "/api/v1/subscriptions"): {r: (200, None) for r in ROLES} | {"anon": (401, None)},
    ("POST", "/api/v1/subscriptions"): {"admin": (201, 201), "so_all": (201, 201), "so_ifo": (201, 404),
                                        "mgr_eb": (201, 404), "anon": (401, 401)},
    # Someone else's subscription (mgr_kultur's): not found for everyone, like a missing one.
    ("DELETE", "/api/v1/subscriptions/{subscription_id}"): {r: (404, None) for r in ROLES} | {"anon": (401, None)},
    # Public by design: the log-in itself (tested in test_auth.py).
    ("POST", "/api/v1/login"): {},
}


def _request(fleet, method, route, which):
    unit = fleet.units[EB if which == "in" else AO]
    dev = fleet.devices["eb1" if which == "in" else "ao1"]
    body = None
    if route == "/api/v1/exceptions" and method == "POST":
        body = {"check_id": "firewall", "device_id": dev.id, "justification": "access-control test grant",
                "expires_at": (dt.datetime.now(dt.timezone.utc) + 24 * H).isoformat()}
    elif route.endswith("/revoke"):
        body = {"reason": "access-control test"}
    elif route == "/api/v1/units":
        body = {"path": f"Kultur/Ny enhet {uuid.uuid4().hex[:6]}"}
    elif route == "/api/v1/tokens":
        body = {"unit": EB, "expires_in": "1h"}
    elif route == "/api/v1/subscriptions" and method == "POST":
        body = {"unit_id": unit, "channel": "email", "target": "officer@kommun.test", "events": ["silent"]}
    elif route == "/api/v1/api-tokens" and method == "POST":
        body = {"name": "t" + uuid.uuid4().hex[:8], "role": "unit_manager", "unit": EB, "expires_in": "1h"}
    elif route == "/api/v1/users":
        body = {"username": "u" + uuid.uuid4().hex[:8], "role": "unit_manager", "unit": EB}
    path = route.format(unit_id=unit, device_id=dev.id, report_id=dev.report_ids[0],
                        exception_id=_exception_on(fleet, "eb1" if which == "in" else "ao1")
                        if "{exception_id}" in route else 0,
                        api_token_id=_api_token(fleet) if "{api_token_id}" in route else 0,
                        subscription_id=_others_subscription(fleet) if "{subscription_id}" in route else 0)
    return path, body


def _api_token(fleet) -> int:
    """A fresh API token to revoke."""
    from server import api_tokens

    with fleet.store.engine.begin() as conn:
        return api_tokens.create_api_token(conn, name="r" + uuid.uuid4().hex[:8], role="security_officer",
                                           unit_path=EB).info.id


def _others_subscription(fleet) -> int:
    from server.notify import subscriptions

    with fleet.store.engine.begin() as conn:
        info, _ = subscriptions.subscribe(conn, fleet.users["mgr_kultur"], unit_id=fleet.units["Kultur"],
                                          channel="email", target="kultur@kommun.test", events=["silent"])
    return info.id


def _cases():
    for kind in ("session", "token"):
        for (method, route), table in CASES.items():
            for role, (st_in, st_out) in table.items():
                if kind == "token" and route == "/api/v1/logout" and role != "anon":
                    st_in = 409  # a token has no session to end; an administrator revokes it
                yield pytest.param(kind, method, route, role, "in", st_in, id=f"{kind} {method} {route} {role} in")
                if st_out is not None:
                    yield pytest.param(kind, method, route, role, "out", st_out,
                                       id=f"{kind} {method} {route} {role} out")


@pytest.mark.parametrize("kind,method,route,role,which,expected", list(_cases()))
def test_access(app_fleet, kind, method, route, role, which, expected):
    app, fleet, clients = app_fleet
    client = clients[role] if kind == "session" else clients["token", role]
    if kind == "session" and route == "/api/v1/logout" and role != "anon":  # a session of its own
        from fastapi.testclient import TestClient

        client = TestClient(app, base_url="https://testserver")
        r = client.post("/api/v1/login", json={"username": role, "password": PASSWORD})
        client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    path, body = _request(fleet, method, route, which)
    r = client.request(method, path, json=body)
    assert r.status_code == expected, r.text
    if expected == 404:  # out of scope looks exactly like missing
        missing = client.request(method, path.replace(str(fleet.units[AO]), "999999")
                                 .replace(fleet.devices["ao1"].id, str(uuid.uuid4())), json=body)
        if "/reports/" in path:
            missing = client.request(method, f"/api/v1/reports/{uuid.uuid4()}/envelope")
        if "/exceptions/" in path:
            missing = client.request(method, "/api/v1/exceptions/999999/revoke", json=body)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == r.json()["error"]["code"] == "not_found"
    if route == "/api/v1/logout" and role != "anon":
        assert client.get("/api/v1/me").status_code == (401 if kind == "session" else 200)


def all_routes(routes, prefix=""):
    """(method, path) of every route, through included routers (FastAPI nests them)."""
    for r in routes:
        inner = getattr(r, "original_router", None)
        if inner is not None:
            ctx = getattr(r, "include_context", None)
            yield from all_routes(inner.routes, prefix + (getattr(ctx, "prefix", "") or ""))
            continue
        sub = getattr(r, "routes", None)
        if sub is not None and not hasattr(r, "methods"):  # Mount of a sub-application
            yield from all_routes(sub, prefix + getattr(r, "path", ""))
            continue
        for m in getattr(r, "methods", None) or ():
            if m != "HEAD":
                yield m, prefix + r.path


def test_every_api_route_has_cases(app_fleet):
    app, _, _ = app_fleet
    routes = {(m, p) for m, p in all_routes(app.routes) if p.startswith("/api/")}
    documented = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() if p.startswith("/api/") for m in ops}
    assert documented <= routes
    assert len(routes) >= 19
    missing = routes - set(CASES)
    assert not missing, f"routes without access-control cases: {sorted(missing)}"
    stale = set(CASES) - routes
    assert not stale, f"cases for routes that no longer exist: {sorted(stale)}"


def test_listings_only_show_the_subtree(app_fleet):
    _, fleet, clients = app_fleet
    paths = {role: {u["path"] for u in clients[role].get("/api/v1/units").json()} for role in ROLES}
    assert paths["mgr_eb"] == {EB}
    assert paths["so_ifo"] == {"Socialförvaltningen/IFO", EB, "Socialförvaltningen/IFO/Barn och unga"}
    assert AO in paths["so_all"] and "Kultur" in paths["admin"]
    _exception_on(fleet, "ao1")
    for role in ("so_ifo", "mgr_eb"):
        seen = {e["device_id"] for e in clients[role].get("/api/v1/exceptions").json()}
        assert fleet.devices["ao1"].id not in seen
    assert fleet.devices["ao1"].id in {e["device_id"] for e in clients["so_all"].get("/api/v1/exceptions").json()}
    csv_text = clients["so_ifo"].get(f"/api/v1/units/{fleet.units['Socialförvaltningen/IFO']}/export.csv").text
    assert "ao1-laptop" not in csv_text and "eb1-laptop" in csv_text and "Kultur" not in csv_text
    detail = clients["mgr_eb"].get(f"/api/v1/units/{fleet.units[EB]}").json()
    assert {d["unit_path"] for d in detail["devices"]["items"]} == {EB}
    assert detail["summary"]["parent_id"] is None


def test_envelope_download_is_the_stored_report(app_fleet):
    _, fleet, clients = app_fleet
    dev = fleet.devices["eb1"]
    r = clients["mgr_eb"].get(f"/api/v1/reports/{dev.report_ids[0]}/envelope")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    with fleet.store.engine.connect() as conn:
        from sqlalchemy import text

        from sqlalchemy import select

        from server.db import reports
        from server.report_read import SIGNED_COLUMNS, envelope_of

        row = conn.execute(select(*SIGNED_COLUMNS).where(reports.c.report_id == dev.report_ids[0])).one()
        stored = envelope_of(conn, row)
    assert r.text == stored
    pem = clients["mgr_eb"].get(f"/api/v1/devices/{dev.id}/public-key")
    assert pem.text.startswith("-----BEGIN PUBLIC KEY-----")


def test_openapi_documents_the_api(app_fleet):
    _, _, clients = app_fleet
    assert clients["anon"].get("/openapi.json", follow_redirects=False).status_code in (303, 401)
    doc = clients["mgr_eb"].get("/openapi.json").json()
    for path in ("/api/v1/units", "/api/v1/units/{unit_id}", "/api/v1/devices/{device_id}",
                 "/api/v1/exceptions", "/api/v1/reports/{report_id}/envelope"):
        assert path in doc["paths"], path
    unit_get = doc["paths"]["/api/v1/units/{unit_id}"]["get"]
    assert "UnitDetail" in str(unit_get["responses"]["200"])


@pytest.mark.parametrize("raw", ["abc", "-1", "1e3", "²", "١", "0x1f", "99999999999", "2147483648", " 1"])
def test_dashboard_ids_that_are_not_row_ids_are_404(app_fleet, raw):
    """The dashboard's unit, unit-export, report and revoke routes take only a row id (ASCII
    digits within an INTEGER key's range): anything else is a plain 404, never a 500 — a
    digit Python's int() cannot read, or a number PostgreSQL's INTEGER cannot hold."""
    _app, fleet, clients = app_fleet
    c = clients["so_all"]
    for path in (f"/units/{raw}", f"/units/{raw}/export.csv", f"/units/{raw}/export.xlsx", f"/units/{raw}/report"):
        r = c.get(path)
        assert r.status_code == 404 and "text/html" in r.headers["content-type"], (path, r.status_code)
    assert c.post(f"/exceptions/{raw}/revoke", data={"reason": "x"}).status_code in (403, 404)  # no CSRF token: 403
    # As a filter on a unit's page, such a value is ignored (the page itself answers).
    assert c.get(f"/units/{fleet.units[EB]}", params={"sub": raw}).status_code == 200
    assert c.get("/exceptions", params={"granted": raw}).status_code == 200
