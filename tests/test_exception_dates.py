"""Exceptions say what the officer did: the date picked is the date shown (valid through
it, in the organisation's time zone), a revoked exception is never listed as current, a
grant confirms itself, and the grant form names the device by host name — through the
dashboard's real forms, on SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from readiness_fleet import PASSWORD, build_fleet
from server.db import exceptions

STOCKHOLM = ZoneInfo("Europe/Stockholm")


@pytest.fixture(scope="module")
def web_fleet(collector_db_url):
    from fastapi.testclient import TestClient

    from collector_fixtures import migrated_app

    app = migrated_app(collector_db_url, max_overflow=4)
    fleet = build_fleet(app.state.store)
    c = TestClient(app, base_url="https://testserver")
    r = c.post("/login", data={"username": "so_all", "password": PASSWORD,
                               "csrf_token": _csrf(c.get("/login").text), "next": "/"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    yield app, fleet, c
    c.close()
    app.state.store.engine.dispose()


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def _grant(c, fleet, device: str, day: dt.date, check: str = "firewall"):
    page = c.get("/exceptions", params={"lang": "en"}).text
    return c.post("/exceptions", data={"csrf_token": _csrf(page), "check_id": check, "device": device,
                                       "unit_id": "", "expires": day.isoformat(),
                                       "justification": "new firewall rolled out next month"}, follow_redirects=False)


def test_the_date_picked_is_the_date_shown_and_stored(web_fleet):
    app, fleet, c = web_fleet
    day = dt.datetime.now(STOCKHOLM).date() + dt.timedelta(days=40)
    r = _grant(c, fleet, fleet.devices["bu1"].id, day)
    assert r.status_code == 303
    landing = r.headers["location"]
    assert landing.startswith(f"/devices/{fleet.devices['bu1'].id}?granted=")
    page = c.get(landing + "&lang=en").text
    notice = re.search(r'<p class="notice" role="status" id="notice">([^<]*)</p>', page).group(1)
    assert f"valid through {day.isoformat()}" in notice and "bu1-laptop" in notice  # the grant confirms itself
    assert day.isoformat() in page and (day + dt.timedelta(days=1)).isoformat() not in page
    listing = c.get("/exceptions", params={"lang": "en"}).text
    row = listing[listing.index('<table id="exceptions">'):]
    assert day.isoformat() in row and (day + dt.timedelta(days=1)).isoformat() not in row
    with app.state.store.engine.connect() as conn:
        stored = conn.execute(select(exceptions.c.expires_on, exceptions.c.expires_at)
                              .order_by(exceptions.c.id.desc()).limit(1)).one()
    expires_at = stored.expires_at if stored.expires_at.tzinfo else stored.expires_at.replace(tzinfo=dt.timezone.utc)
    # It covers the whole picked day in Stockholm and stops at its midnight.
    assert str(stored.expires_on)[:10] == day.isoformat()
    assert expires_at.astimezone(STOCKHOLM) == dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), STOCKHOLM)


def test_a_revoked_exception_is_never_listed_as_current(web_fleet):
    app, fleet, c = web_fleet
    day = dt.datetime.now(STOCKHOLM).date() + dt.timedelta(days=10)
    r = _grant(c, fleet, fleet.devices["ao3"].id, day, check="os-patched")
    exc_id = int(r.headers["location"].split("granted=")[1])
    page = c.get("/exceptions").text
    r = c.post(f"/exceptions/{exc_id}/revoke", data={"csrf_token": _csrf(page), "reason": "patched after all"},
               follow_redirects=False)
    assert r.status_code == 303
    for params in ({}, {"all": "1"}):
        html = c.get("/exceptions", params={"lang": "en", **params}).text
        start = html.index("<h2>In force</h2>")
        current = html[start:min(i for i in (html.find('id="ended"'), html.find('<p class="small">', start)) if i > 0)]
        assert f'data-exception-id="{exc_id}"' not in current
    ended = c.get("/exceptions", params={"lang": "en", "all": "1"}).text
    ended = ended[ended.index('id="ended"'):]
    assert f'data-exception-id="{exc_id}"' in ended


def test_the_grant_form_names_the_device_by_host_name(web_fleet):
    _app, fleet, c = web_fleet
    dev = fleet.devices["eb3"]
    html = c.get("/exceptions", params={"lang": "en", "device": dev.id, "check": "disk-encrypted"}).text
    named = re.search(r'<p class="small" id="g-device-name"[^>]*>([^<]*)</p>', html).group(1)
    assert "eb3-laptop" in named and dev.id in named
    # an agent-chosen host name is shown as text, escaped
    evil = fleet.devices["eb7"]
    html = c.get("/exceptions", params={"device": evil.id}).text
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_a_unit_grant_confirms_itself(web_fleet):
    _app, fleet, c = web_fleet
    day = dt.datetime.now(STOCKHOLM).date() + dt.timedelta(days=5)
    page = c.get("/exceptions").text
    r = c.post("/exceptions", data={"csrf_token": _csrf(page), "check_id": "screen-lock", "device": "",
                                    "unit_id": str(fleet.units["Kultur"]), "expires": day.isoformat(),
                                    "justification": "screen lock policy arrives with the new image"},
               follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/exceptions?granted=")
    html = c.get(r.headers["location"] + "&lang=en").text
    notice = re.search(r'id="notice">([^<]*)<', html).group(1)
    assert "Kultur" in notice and f"valid through {day.isoformat()}" in notice
