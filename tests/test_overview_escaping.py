"""Hostile names on the overview (the unit tree, in tree order and worst first) and on the
unit page (its sub-unit tree and device list), in sv, da and en, on SQLite and PostgreSQL:
every value an agent or an administrator supplied (unit names, host names, OS strings,
check ids) is escaped exactly once: never live markup, never escaped twice, never read as a
template, its invisible characters shown. The pages are rendered by the real collector
(FastAPI app, real ingest of signed reports)."""
from __future__ import annotations

import re
from html import unescape

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import readiness_fleet
from auditagent import report as wire
from readiness_fleet import PASSWORD, Dev, build_fleet

TOP = "<script>alert(1)<script> & \"Soc\" 'x' {{ 7*191 }}"  # no "/": that divides a unit path
CHILD = "Barn\u202egpj.exe <b>och<b> {% raw %}unga"
CHECK = "<img src=x onerror=alert(2)>&\"'{{ 3*4457 }}"
HOST = "pc-<svg onload=alert(3)>&amp;\"'{{ 5*2551 }}"
OS = "Windows <i>11</i> & \"Pro\" {{ 9*1483 }}"
# What a template would print were any of them evaluated as one.
EVALUATED = ("1337", "13371", "12755", "13347")


@pytest.fixture(scope="module")
def hostile(collector_db_url):
    from fastapi.testclient import TestClient

    from collector_fixtures import migrated_app

    app = migrated_app(collector_db_url, max_overflow=4)
    store = app.state.store
    fleet = build_fleet(store)
    path = f"{TOP}/{CHILD}"
    store.add_unit(path)
    fleet.units.update({u["path"]: u["id"] for u in store.list_units()})
    token, _ = store.create_token(path, uses=2)
    for name in ("h1", "h2"):
        key = Ed25519PrivateKey.generate()
        out = store.enroll(token=token, public_key_pem=wire.public_key_pem(key.public_key()),
                           device={"hostname": HOST + name, "platform": "windows", "os": OS})
        fleet.devices[name] = Dev(out["device_id"], key, HOST + name, path)
    with pytest.MonkeyPatch.context() as mp:  # a check id of the agent's own, failing and required
        mp.setitem(readiness_fleet.CHECKS, CHECK, "required")
        fleet.report("h1", 1, {CHECK: "fail"}, hostname=HOST + "h1")
        fleet.report("h2", 2, {CHECK: "fail"}, hostname=HOST + "h2")
    c = TestClient(app, base_url="https://testserver")
    assert c.post("/api/v1/login", json={"username": "admin", "password": PASSWORD}).status_code == 200
    yield fleet, c
    c.close()
    store.engine.dispose()


def escaped_once(html: str, value: str) -> None:
    """``value`` is on the page as text: escaped once (so the browser shows it as it is),
    never as live markup, never escaped twice."""
    shown = value.replace("\u202e", "<U+202E>")
    once = shown.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;") \
        .replace("'", "&#39;")
    text = html.replace("<wbr>", "")  # the name's break opportunities (server/name_breaks.py)
    assert once in text, value
    assert unescape(once) == shown
    assert once.replace("&", "&amp;") not in text  # not escaped twice


def no_live_markup(html: str) -> None:
    assert not re.search(r"<(script>alert|img src=x|svg onload|b>och|i>11)", html)
    assert "\u202e" not in html  # shown as <U+202E>, not acted on
    for n in EVALUATED:
        assert n not in html


@pytest.mark.parametrize("lang", ["sv", "da", "en"])
@pytest.mark.parametrize("sort", ["", "readiness"])
def test_the_overview_tree_escapes_every_name_once(hostile, lang: str, sort: str) -> None:
    fleet, c = hostile
    r = c.get("/", params={"lang": lang, **({"sort": sort} if sort else {})})
    assert r.status_code == 200
    html = r.text
    no_live_markup(html)
    escaped_once(html, TOP)  # tree order: each unit's own name; worst first: the path
    escaped_once(html, CHILD)
    escaped_once(html, CHECK)  # the blocking check: its id as title (no policy names it)
    child = fleet.units[f"{TOP}/{CHILD}"]
    row = re.search(rf'<tr data-unit-id="{child}">.*?</tr>', html, re.S).group(0)
    # The check id in the link's query is percent-encoded, nothing of it left raw.
    assert re.search(r'href="/units/%d\?check=([^"#]*)#devices"' % child, row).group(1) == \
        "%3Cimg%20src%3Dx%20onerror%3Dalert%282%29%3E%26%22%27%7B%7B%203%2A4457%20%7D%7D"
    assert 'title="&lt;img src=x onerror=alert(2)&gt;&amp;&#34;&#39;{{ 3*4457 }}"' in row


@pytest.mark.parametrize("lang", ["sv", "da", "en"])
def test_the_unit_page_escapes_its_tree_and_devices_once(hostile, lang: str) -> None:
    fleet, c = hostile
    top = fleet.units[TOP]
    html = c.get(f"/units/{top}", params={"lang": lang}).text
    no_live_markup(html)
    escaped_once(html, CHILD)  # the sub-unit tree
    html = c.get(f"/units/{fleet.units[f'{TOP}/{CHILD}']}", params={"lang": lang}).text
    no_live_markup(html)
    for value in (HOST + "h1", HOST + "h2", OS, CHECK):  # the device list
        escaped_once(html, value)
