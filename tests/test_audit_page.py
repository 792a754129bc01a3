"""The audit log page (/audit) and its CSV export, on SQLite and PostgreSQL: who granted
and revoked exceptions, added users, enrolled and revoked devices, set a policy — each
entry placed in the unit it concerns, filtered by unit and by local days, limited to the
reader's units (a subtree officer never sees another subtree's entries), escaped, and
closed to unit managers and to anyone not signed in."""
from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest

from readiness_fleet import AO, EB, IFO, NOW, PASSWORD, build_fleet
from server import readiness as rd
from server.local_time import local_midnight_after


@pytest.fixture(scope="module")
def audit_env(collector_db_url):
    from fastapi.testclient import TestClient

    from collector_fixtures import migrated_app

    app = migrated_app(collector_db_url, max_overflow=4)
    store = app.state.store
    fleet = build_fleet(store)
    users = fleet.users
    with store.engine.begin() as conn:
        # Ten days before NOW on eb1 (EB), and at NOW on ao1 (Äldreomsorg), one with text a
        # spreadsheet would run and markup a browser would.
        rd.grant_exception(conn, users["so_all"], check_id="disk-encrypted", device_id=fleet.devices["eb1"].id,
                           expires_at=NOW + dt.timedelta(days=5), now=NOW - dt.timedelta(days=10),
                           justification="<b>bold</b> replacement disk ordered, ticket 4711")
        e = rd.grant_exception(conn, users["so_all"], check_id="firewall", device_id=fleet.devices["ao1"].id,
                               expires_at=NOW + dt.timedelta(days=5), now=NOW,
                               justification="=HYPERLINK(\"http://x\") vendor firewall replaced")
        rd.revoke_exception(conn, users["so_all"], e.id, "replaced by the vendor's own", NOW + dt.timedelta(hours=1))
    def client(username: str) -> TestClient:
        c = TestClient(app, base_url="https://testserver")
        r = c.post("/api/v1/login", json={"username": username, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return c

    yield fleet, client
    store.engine.dispose()


def _rows(html: str) -> list[str]:
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", m)).strip()
            for m in re.findall(r'<tr data-action="[^"]*">(.*?)</tr>', html, re.S)]


def _actions(html: str) -> list[str]:
    return re.findall(r'<tr data-action="([^"]*)">', html)


def test_officer_sees_grants_revokes_enrolments_and_users(audit_env) -> None:
    fleet, client = audit_env
    html = client("so_all").get("/audit?lang=en").text
    actions = _actions(html)
    for action in ("exception.grant", "exception.revoke", "device.enroll", "device.revoke", "user.create"):
        assert action in actions, action
    rows = _rows(html)
    revoke = next(r for r in rows if "Exception revoked" in r)
    assert "so_all" in revoke and AO in revoke and "replaced by the vendor" in revoke
    assert any("Device revoked" in r and "stolen" in r and "Kultur" in r for r in rows)
    assert any("Device enrolled" in r and "eb2-laptop" in r and EB in r for r in rows)
    # Escaped: the justification's markup is text.
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html


def test_subtree_officer_sees_only_their_units(audit_env) -> None:
    fleet, client = audit_env
    rows = _rows(client("so_ifo").get("/audit").text)
    assert rows and all(IFO in r for r in rows), rows
    assert not any("ao1" in r or "Äldreomsorg" in r or "Kultur" in r for r in rows)
    # Asking for a unit outside the subtree is the same as asking for a missing one.
    r = client("so_ifo").get(f"/audit?unit={fleet.units[AO]}")
    assert r.status_code == 404 and "ao1" not in r.text
    csv_text = client("so_ifo").get("/audit/export.csv").text
    assert "Äldreomsorg" not in csv_text and "Kultur" not in csv_text
    sheet = _xlsx_rows(client("so_ifo").get("/audit/export.xlsx").content)
    assert len(sheet) > 1 and not any("Äldreomsorg" in str(c) or "Kultur" in str(c) for row in sheet for c in row)


def test_unit_managers_and_strangers_are_kept_out(audit_env) -> None:
    _, client = audit_env
    r = client("mgr_eb").get("/audit?lang=sv")
    assert r.status_code == 403 and "Bara säkerhetssamordnare och administratörer" in r.text
    assert client("mgr_eb").get("/audit/export.csv").status_code == 403
    assert client("mgr_eb").get("/audit/export.xlsx").status_code == 403
    assert client("admin").get("/audit/export.pdf").status_code == 404
    assert 'href="/audit"' not in client("mgr_eb").get("/").text  # no menu entry either
    from fastapi.testclient import TestClient

    anon = TestClient(client("admin").app, base_url="https://testserver")
    for path in ("/audit", "/audit/export.csv", "/audit/export.xlsx"):
        r = anon.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_filter_by_unit_and_local_days(audit_env) -> None:
    fleet, client = audit_env
    c = client("admin")
    eb_only = _rows(c.get(f"/audit?unit={fleet.units[EB]}&action=exception.grant").text)
    assert len(eb_only) == 1 and "ticket 4711" in eb_only[0]
    day = (NOW - dt.timedelta(days=10)).date()
    one_day = _actions(c.get(f"/audit?from={day}&to={day}").text)
    assert one_day == ["exception.grant"]
    later = _actions(c.get(f"/audit?from={NOW.date()}").text)
    assert "exception.revoke" in later and len([a for a in later if a == "exception.grant"]) == 1
    # The day boundary is local midnight: an entry at 23:30 UTC on the 4th is on the 5th in Stockholm.
    assert local_midnight_after(dt.date(2030, 6, 4), "Europe/Stockholm") == dt.datetime(
        2030, 6, 3, 22, 0, tzinfo=dt.timezone.utc) + dt.timedelta(days=1)


def test_bad_date_is_a_translated_422(audit_env) -> None:
    _, client = audit_env
    r = client("admin").get("/audit?from=yesterday&lang=da")
    assert r.status_code == 422 and "Angiv datoer som ÅÅÅÅ-MM-DD." in r.text
    assert client("admin").get("/audit?unit=abc").status_code == 404
    assert client("admin").get("/audit?action=drop%20table").status_code == 200  # unknown action: no filter


def _xlsx_rows(content: bytes) -> list[tuple]:
    from openpyxl import load_workbook

    return list(load_workbook(io.BytesIO(content), read_only=True).worksheets[0].iter_rows(values_only=True))


def test_export_matches_the_page_and_is_spreadsheet_safe(audit_env) -> None:
    fleet, client = audit_env
    c = client("so_all")
    query = f"unit={fleet.units[AO]}&lang=en"
    page_actions = _actions(c.get(f"/audit?{query}").text)
    r = c.get(f"/audit/export.csv?{query}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"] and ".csv" in r.headers["content-disposition"]
    assert not r.text.startswith("\ufeff")  # English: plain RFC 4180
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["Event code"] for row in rows] == page_actions
    grant = next(row for row in rows if row["Event code"] == "exception.grant")
    assert grant["Event"] == "Exception granted" and grant["Unit"] == AO and grant["Who"] == "so_all"
    assert grant["Time (Europe/Stockholm)"].endswith(("CET", "CEST")) and len(grant["Time (UTC)"]) == 19
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "@")), value
    assert 'justification: =HYPERLINK' in r.text  # the text is kept, inside the detail cell, inert there
    page = c.get(f"/audit?{query}").text
    assert 'href="/audit/export.csv?unit=' in page and 'href="/audit/export.xlsx?unit=' in page  # filters kept


@pytest.mark.parametrize("lang", ["sv", "da"])
def test_nordic_csv_opens_in_excel(audit_env, lang: str) -> None:
    """Swedish and Danish Excel: ';' between cells, a UTF-8 BOM, translated headers and actions."""
    fleet, client = audit_env
    r = client("so_all").get(f"/audit/export.csv?unit={fleet.units[AO]}&action=exception.grant&lang={lang}")
    assert r.status_code == 200 and r.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff")), delimiter=";"))
    header, body = rows[0], rows[1:]
    assert header[:4] == {"sv": ["Tid (Europe/Stockholm)", "Tid (UTC)", "Vem", "Händelse"],
                          "da": ["Tidspunkt (Europe/Stockholm)", "Tidspunkt (UTC)", "Hvem", "Hændelse"]}[lang]
    assert body and {row[3] for row in body} == {{"sv": "Undantag beviljat", "da": "Undtagelse givet"}[lang]}
    assert all(row[4] == AO for row in body)


def test_xlsx_export_agrees_with_the_csv(audit_env) -> None:
    fleet, client = audit_env
    c = client("so_all")
    query = f"unit={fleet.units[AO]}&lang=da"
    r = c.get(f"/audit/export.xlsx?{query}")
    assert r.status_code == 200 and r.headers["content-type"] == rd.XLSX_TYPE
    assert ".xlsx" in r.headers["content-disposition"]
    sheet = _xlsx_rows(r.content)
    text = list(csv.reader(io.StringIO(c.get(f"/audit/export.csv?{query}").text.lstrip("\ufeff")), delimiter=";"))
    assert list(sheet[0]) == text[0]
    assert [row[7] for row in sheet[1:]] == [row[7] for row in text[1:]] == _actions(c.get(f"/audit?{query}").text)
    for cells, line in zip(sheet[1:], text[1:]):
        assert isinstance(cells[1], dt.datetime) and cells[1].strftime("%Y-%m-%d %H:%M:%S") == line[1]
        assert [str(v or "") for v in cells[2:]] == line[2:]
    hyperlink = next(v for row in sheet for v in row if isinstance(v, str) and "HYPERLINK" in v)
    assert not hyperlink.startswith("=")  # a text cell, never a formula
