"""The notifications page (/subscriptions) over HTTP, on SQLite and PostgreSQL: a user
lists, adds and removes their own digests, in sv/da/en, behind login and CSRF, escaped;
the attacks: a unit outside the officer's scope, another user's subscription, a form
without its token, a webhook to a host the collector does not allow — each refused with
nothing stored."""
from __future__ import annotations

import html as html_lib
import re

import pytest
from sqlalchemy import func, select

from readiness_fleet import AO, EB, IFO, KULTUR, PASSWORD, build_fleet
from server.db import notify_subscriptions


@pytest.fixture(scope="module")
def page_env(collector_db_url):
    from fastapi.testclient import TestClient

    from collector_fixtures import migrated_app
    from server import migrate  # noqa: F401 - migrated_app brings the schema up
    from server.app import Settings, create_app
    from server.notify.config import NotifyConfig

    migrated_app(collector_db_url).state.store.engine.dispose()
    app = create_app(Settings(db_url=collector_db_url, pool_size=2, max_overflow=4,
                              notify=NotifyConfig(webhook_allowed_hosts=("hooks.kommun.test",))))
    fleet = build_fleet(app.state.store)

    def client(username: str) -> TestClient:
        c = TestClient(app, base_url="https://testserver")
        assert c.post("/api/v1/login", json={"username": username, "password": PASSWORD}).status_code == 200
        return c

    yield fleet, client, app.state.store.engine
    app.state.store.engine.dispose()


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def count(engine, **where) -> int:
    q = select(func.count()).select_from(notify_subscriptions)
    for k, v in where.items():
        q = q.where(getattr(notify_subscriptions.c, k) == v)
    with engine.connect() as conn:
        return conn.execute(q).scalar_one()


def form(token: str, unit_id: int, **extra: str) -> dict[str, str]:
    return {"csrf_token": token, "unit_id": str(unit_id), "channel": "email", "target": "it-sakerhet@kommun.se",
            "event_not_ready": "1", "event_silent": "1", "exception_days": "14", "target_pct": "", "lang": "da",
            **extra}


@pytest.mark.parametrize("lang, title", [("sv", "Mina aviseringar"), ("da", "Mine notifikationer"),
                                         ("en", "My notifications")])
def test_page_in_each_language_lists_only_units_in_scope(page_env, lang: str, title: str) -> None:
    fleet, client, _ = page_env
    r = client("so_ifo").get(f"/subscriptions?lang={lang}")
    assert r.status_code == 200 and f"<h1>{title}</h1>" in r.text
    assert 'href="/subscriptions" aria-current="page"' in r.text  # in the menu, marked current
    options = set(re.findall(r'<option value="(\d+)"', r.text.split('id="s-unit"')[1].split("</select>")[0]))
    assert str(fleet.units[IFO]) in options and str(fleet.units[EB]) in options
    assert str(fleet.units[AO]) not in options and str(fleet.units[KULTUR]) not in options


def test_subscribe_list_and_unsubscribe(page_env) -> None:
    fleet, client, engine = page_env
    c = client("so_ifo")
    user_id = fleet.users["so_ifo"].id
    before = count(engine, user_id=user_id)
    token = csrf(c.get("/subscriptions").text)
    r = c.post("/subscriptions", data=form(token, fleet.units[EB], target="a&b@kommun.se"), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/subscriptions?created=1"
    assert count(engine, user_id=user_id) == before + 1
    with engine.connect() as conn:
        row = conn.execute(select(notify_subscriptions).where(notify_subscriptions.c.user_id == user_id)
                           .order_by(notify_subscriptions.c.id.desc())).mappings().first()
    assert (row["unit_id"], row["channel"], row["lang"], row["events"]) == (fleet.units[EB], "email", "da",
                                                                             "not_ready,silent")
    page = c.get("/subscriptions?created=1&lang=en").text
    assert 'id="notice"' in page and f'data-subscription-id="{row["id"]}"' in page
    assert "a&amp;b@kommun.se" in page and "a&b@kommun.se" not in page  # escaped
    assert "Devices no longer ready" in page and "Dansk" in page
    r = c.post(f"/subscriptions/{row['id']}/delete", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and count(engine, user_id=user_id) == before


def test_attack_unit_outside_scope_is_refused_and_nothing_stored(page_env) -> None:
    fleet, client, engine = page_env
    c = client("so_ifo")
    token = csrf(c.get("/subscriptions").text)
    before = count(engine)
    for unit in (fleet.units[AO], fleet.units[KULTUR], 999999):
        r = c.post("/subscriptions?lang=sv", data=form(token, unit))
        assert r.status_code == 404, (unit, re.findall(r"form-error\">([^<]*)", r.text))
        assert "du kan bara prenumerera på enheter du har behörighet till" in r.text
        assert AO not in r.text.split('id="form-error"')[1].split("</p>")[0]  # the refusal names no unit
    assert count(engine) == before


def test_attack_other_users_subscription_and_missing_token(page_env) -> None:
    fleet, client, engine = page_env
    owner, other = client("so_all"), client("so_ifo")
    token = csrf(owner.get("/subscriptions").text)
    assert owner.post("/subscriptions", data=form(token, fleet.units[AO]), follow_redirects=False).status_code == 303
    with engine.connect() as conn:
        sid = conn.execute(select(func.max(notify_subscriptions.c.id))
                           .where(notify_subscriptions.c.user_id == fleet.users["so_all"].id)).scalar_one()
    other_token = csrf(other.get("/subscriptions").text)
    r = other.post(f"/subscriptions/{sid}/delete?lang=en", data={"csrf_token": other_token})
    assert r.status_code == 404 and "not one of yours" in r.text
    assert f'data-subscription-id="{sid}"' not in other.get("/subscriptions").text  # nor listed to them
    before = count(engine)
    # No token, another session's token: refused before anything is read or stored.
    assert owner.post("/subscriptions", data=form("", fleet.units[AO])).status_code == 403
    assert owner.post("/subscriptions", data=form(other_token, fleet.units[AO])).status_code == 403
    assert owner.post(f"/subscriptions/{sid}/delete", data={"csrf_token": other_token}).status_code == 403
    assert count(engine) == before
    from fastapi.testclient import TestClient

    anon = TestClient(owner.app, base_url="https://testserver")
    assert anon.get("/subscriptions", follow_redirects=False).status_code == 303
    assert anon.post("/subscriptions", data=form(token, fleet.units[AO]), follow_redirects=False).status_code == 303
    assert count(engine) == before


@pytest.mark.parametrize("lang, words", [("sv", "Välj minst en händelse."), ("da", "Vælg mindst én hændelse."),
                                         ("en", "Choose at least one event.")])
def test_form_errors_are_translated_and_keep_the_form(page_env, lang: str, words: str) -> None:
    fleet, client, engine = page_env
    c = client("so_ifo")
    token = csrf(c.get("/subscriptions").text)
    before = count(engine)
    bad = form(token, fleet.units[EB])
    bad.pop("event_not_ready"), bad.pop("event_silent")
    r = c.post(f"/subscriptions?lang={lang}", data=bad)
    assert r.status_code == 422 and words in html_lib.unescape(r.text)
    r = c.post(f"/subscriptions?lang={lang}", data=form(token, fleet.units[EB], target="<b>x</b>@kommun.se"))
    assert r.status_code == 422 and "https://" in r.text.split('id="form-error"')[1].split("</p>")[0]
    assert "&lt;b&gt;x&lt;/b&gt;@kommun.se" in r.text and "<b>x</b>" not in r.text  # kept, escaped
    r = c.post(f"/subscriptions?lang={lang}", data=form(token, fleet.units[EB], exception_days="abc"))
    assert r.status_code == 422 and 'id="form-error"' in r.text
    r = c.post(f"/subscriptions?lang={lang}", data=form(token, fleet.units[EB], event_below_target="1"))
    assert r.status_code == 422  # below target needs a target %
    assert count(engine) == before


def test_webhook_secret_shown_once_and_hosts_allowed_only(page_env) -> None:
    fleet, client, engine = page_env
    c = client("so_ifo")
    token = csrf(c.get("/subscriptions").text)
    before = count(engine)
    r = c.post("/subscriptions?lang=en", data=form(token, fleet.units[IFO], channel="webhook",
                                                   target="https://evil.example/hook"))
    assert r.status_code == 422 and "servers IT has allowed" in r.text and count(engine) == before
    r = c.post("/subscriptions?lang=en", data=form(token, fleet.units[IFO], channel="webhook",
                                                   target="https://hooks.kommun.test/auditagent"))
    assert r.status_code == 201 and 'id="webhook-secret"' in r.text
    secret = re.search(r'id="webhook-secret">.*?<p class="mono"[^>]*>([^<]+)</p>', r.text, re.S).group(1)
    with engine.connect() as conn:
        stored = conn.execute(select(notify_subscriptions.c.secret).where(
            notify_subscriptions.c.target == "https://hooks.kommun.test/auditagent")).scalar_one()
    assert secret == stored and len(secret) >= 32
    assert secret not in c.get("/subscriptions").text  # never shown again
