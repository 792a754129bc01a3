"""The dashboard in Swedish, Danish and English: the catalogues are complete and equal,
the language is chosen (switch → user's setting → Accept-Language → Swedish), times are
local with the zone named and dates are dates in the organisation's zone, and a form's
validation error reads in the page's language (on SQLite and PostgreSQL)."""
from __future__ import annotations

import datetime as dt
import re
import string

import pytest

from server.i18n_web import LANGS, MESSAGES, Translator, choose_language, parse_accept_language
from server.local_time import local_midnight_after, local_today, time_zone

SUMMER = dt.datetime(2026, 6, 1, 12, 5, tzinfo=dt.timezone.utc)
WINTER = dt.datetime(2026, 1, 15, 23, 30, tzinfo=dt.timezone.utc)


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}


# ------------------------------------------------------------------ catalogues


def test_every_catalogue_has_every_key_another_has() -> None:
    keys = {lang: set(MESSAGES[lang]) for lang in LANGS}
    every = set().union(*keys.values())
    missing = {lang: sorted(every - k) for lang, k in keys.items() if every - k}
    assert not missing, f"keys missing from a catalogue: {missing}"
    assert set(MESSAGES) == set(LANGS)


@pytest.mark.parametrize("lang", LANGS)
def test_catalogue_placeholders_match_and_nothing_is_empty(lang: str) -> None:
    for key, en in MESSAGES["en"].items():
        text = MESSAGES[lang][key]
        assert text.strip(), f"{lang}: {key} is empty"
        assert _fields(text) == _fields(en), f"{lang}: {key} placeholders differ from en"


@pytest.mark.parametrize("lang", ["sv", "da"])
def test_catalogue_is_translated_not_copied(lang: str) -> None:
    same = [k for k, v in MESSAGES["en"].items() if MESSAGES[lang][k] == v]
    # Names and codes that are the same in every language (API, auditagent, JSON, Status…).
    assert len(same) <= 8, f"{lang}: looks untranslated: {same}"
    assert MESSAGES["da"] != MESSAGES["sv"]


def test_wording_speaks_of_devices_not_units() -> None:
    """The overview's lead sentence counts computers ("datorer"/"computere"), not units."""
    assert "datorer" in MESSAGES["sv"]["overview.lead"] and "enheter" not in MESSAGES["sv"]["overview.lead"]
    assert "computer" in MESSAGES["da"]["overview.lead"]
    assert MESSAGES["sv"]["readiness.total"] == "Beredskap totalt"


# ------------------------------------------------------------------ choosing the language


@pytest.mark.parametrize("header, expected", [
    ("da-DK,da;q=0.9,en;q=0.5", "da"), ("da", "da"), ("sv-SE", "sv"), ("en-GB,en;q=0.9", "en"),
    ("nb-NO,nb;q=0.9", "da"), ("nn", "da"), ("fr-FR,en;q=0.3", "en"), ("en;q=0.4,da;q=0.8", "da"),
    ("de", None), ("", None), ("da;q=0", None), ("da;q=abc,sv;q=0.5", "sv"),
])
def test_accept_language(header: str, expected: str | None) -> None:
    assert parse_accept_language(header) == expected


def test_switch_then_user_setting_then_browser_then_swedish() -> None:
    assert choose_language("da", "en", "sv", "en") == "da"  # the switch (?lang=)
    assert choose_language(None, "da", "en", "sv") == "da"  # the switch remembered (cookie)
    assert choose_language(None, None, "da", "en") == "da"  # the user's setting
    assert choose_language(None, None, None, "da-DK") == "da"  # the browser
    assert choose_language(None, None, None, "de") == "sv"
    assert choose_language("xx", "<script>", "fi", None) == "sv"  # unknown values fail to the default


# ------------------------------------------------------------------ local time


@pytest.mark.parametrize("zone, summer, winter", [
    ("Europe/Stockholm", "2026-06-01 14:05 CEST", "2026-01-16 00:30 CET"),
    ("Europe/Copenhagen", "2026-06-01 14:05 CEST", "2026-01-16 00:30 CET"),
    ("UTC", "2026-06-01 12:05 UTC", "2026-01-15 23:30 UTC"),
])
def test_times_are_local_with_the_zone_named(zone: str, summer: str, winter: str) -> None:
    t = Translator("sv", zone)
    assert t.when(SUMMER) == summer
    assert t.when(WINTER) == winter
    assert t.when(WINTER.isoformat()) == winter  # ISO text from JSON columns too
    assert t.when(WINTER.replace(tzinfo=None)) == winter  # naive database values are UTC
    assert t.when(None) == "–"


def test_danish_writes_dates_and_numbers_the_danish_way() -> None:
    t = Translator("da", "Europe/Copenhagen")
    assert t.when(SUMMER) == "01.06.2026 14:05 CEST"
    assert t.day(dt.date(2026, 5, 31)) == "31.05.2026"
    assert t.number(12345.6, 1) == "12.345,6" and t.pct(87.5) == "87,5\u00a0%"
    assert Translator("sv").number(12345.6, 1) == "12\u00a0345,6"
    assert Translator("en").pct(100.0) == "100\u00a0%"


def test_dates_are_dates_in_the_zone() -> None:
    # 23:30 UTC on 15 January is already the 16th in Stockholm.
    assert Translator("sv").day(WINTER) == "2026-01-16"
    assert local_today(WINTER, "Europe/Stockholm") == dt.date(2026, 1, 16)
    assert local_today(WINTER, "UTC") == dt.date(2026, 1, 15)
    # An exception valid through 31 May ends at local midnight (22:00 UTC in summer) and
    # reads as valid until the 31st, not the 1st.
    end = local_midnight_after(dt.date(2026, 5, 31), "Europe/Stockholm")
    assert end == dt.datetime(2026, 5, 31, 22, 0, tzinfo=dt.timezone.utc)
    assert Translator("sv").until(end) == "2026-05-31"
    assert Translator("en", "UTC").until(end) == "2026-05-31"
    assert Translator("en", "Asia/Tokyo").until(end) == "2026-06-01"


def test_unknown_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        time_zone("Europe/Atlantis")
    with pytest.raises(ValueError):
        time_zone("../../etc/passwd")


# ------------------------------------------------------------------ pages, through the app


@pytest.fixture(scope="module")
def officer_client(collector_db_url):
    from fastapi.testclient import TestClient

    from collector_fixtures import migrated_app
    from readiness_fleet import PASSWORD, build_fleet

    app = migrated_app(collector_db_url, max_overflow=4)
    fleet = build_fleet(app.state.store)

    def client(username: str = "so_all", **headers: str) -> tuple[TestClient, str]:
        c = TestClient(app, base_url="https://testserver", headers=headers)
        r = c.post("/api/v1/login", json={"username": username, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return c, r.json()["csrf_token"]

    yield client, fleet
    app.state.store.engine.dispose()


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def collector_today() -> dt.date:
    """Today where the collector judges expiry dates (Europe/Stockholm), not on this
    machine's clock: in the hour or two before midnight UTC, today in UTC is yesterday in
    Stockholm, and a form sent with it would be refused for its date, not for what the
    test sends wrong."""
    return local_today(dt.datetime.now(dt.timezone.utc), "Europe/Stockholm")


@pytest.mark.parametrize("lang, expected, english", [
    ("da", "Skriv en begrundelse på mindst 10 og højst 4.000 tegn.", "say why"),
    ("sv", "Skriv en motivering på minst 10 och högst 4 000 tecken.", "say why"),
])
def test_form_validation_error_in_the_page_language(officer_client, lang, expected, english) -> None:
    client, fleet = officer_client
    c, csrf = client()
    before = c.get("/api/v1/exceptions").json()
    r = c.post(f"/exceptions?lang={lang}", data={"csrf_token": csrf, "check_id": "firewall", "device": fleet.devices["eb1"].id,
                                    "expires": (collector_today() + dt.timedelta(days=5)).isoformat(),
                                    "justification": "short"})
    assert r.status_code == 422
    assert expected in _text(r.text)
    assert english not in r.text and "justification:" not in r.text
    assert f'<html lang="{lang}">' in r.text
    assert c.get("/api/v1/exceptions").json() == before  # nothing stored


def test_expiry_date_out_of_range_is_translated(officer_client) -> None:
    client, fleet = officer_client
    c, csrf = client()
    c.get("/?lang=da")  # the switch, remembered for the next requests
    r = c.post("/exceptions", data={"csrf_token": csrf, "check_id": "firewall", "device": fleet.devices["eb1"].id,
                                    "expires": "2001-01-01", "justification": "A long enough justification"})
    assert r.status_code == 422
    assert "Vælg en slutdato fra og med i dag og højst 180 dage frem." in _text(r.text)
    r = c.post("/exceptions", data={"csrf_token": csrf, "check_id": "firewall", "device": "no-such-device",
                                    "expires": collector_today().isoformat(), "justification": "Long enough, surely"})
    assert r.status_code == 422 and "Ingen computer i dine enheder" in _text(r.text)


def test_granted_exception_lasts_through_the_chosen_local_day(officer_client) -> None:
    client, fleet = officer_client
    c, csrf = client()
    day = collector_today() + dt.timedelta(days=3)
    r = c.post("/exceptions", data={"csrf_token": csrf, "check_id": "screen-lock", "device": fleet.devices["eb2"].id,
                                    "expires": day.isoformat(), "justification": "Kiosk laptop, reviewed in spring"},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    mine = [e for e in c.get("/api/v1/exceptions").json() if e["device_id"] == fleet.devices["eb2"].id
            and e["check_id"] == "screen-lock"]
    assert len(mine) == 1
    stored = dt.datetime.fromisoformat(mine[0]["expires_at"].replace("Z", "+00:00"))
    assert stored == local_midnight_after(day, "Europe/Stockholm")  # stored in UTC, local midnight
    page = _text(c.get("/exceptions?lang=sv").text)
    assert day.isoformat() in page  # shown as the day chosen
    assert (day + dt.timedelta(days=1)).isoformat() not in page
    assert "Tider visas i tidszonen Europe/Stockholm." in page


def test_language_switch_offers_all_three_and_user_setting_counts(officer_client) -> None:
    from server import auth

    client, fleet = officer_client
    with fleet.store.engine.begin() as conn:
        auth.create_user(conn, username="dansk.officer", role="security_officer", password="correct horse battery "
                         "staple", lang="da")
    c, _ = client("dansk.officer", **{"Accept-Language": "sv-SE"})
    html = c.get("/").text
    assert '<html lang="da">' in html and "Parathed pr. enhed" in html
    for code, name in (("sv", "Svenska"), ("en", "English")):
        assert f'hreflang="{code}"' in html and name in html
    assert "Dansk" in html
    assert '<html lang="en">' in c.get("/?lang=en").text  # the switch wins, and is remembered
    assert '<html lang="en">' in c.get("/").text


def test_cli_user_add_accepts_danish(collector) -> None:
    out = collector.cli("user", "add", "mette", "--role", "security_officer", "--lang", "da", "--password-stdin",
                        input="correct horse battery staple\n")
    assert out.returncode == 0, out.stderr
    listed = collector.cli("user", "list")
    line = next(ln for ln in listed.stdout.splitlines() if ln.split() and ln.split()[0] == "mette")
    assert " da " in f" {line} "


@pytest.mark.parametrize("lang", LANGS)
def test_the_unit_pages_trend_rule_names_the_zone_its_days_are_in(officer_client, lang) -> None:
    from readiness_fleet import EB

    client, fleet = officer_client
    c, _ = client()
    r = c.get(f"/units/{fleet.units[EB]}", params={"lang": lang})
    assert r.status_code == 200
    rule = re.search(r'<p[^>]*id="trend-rule"[^>]*>(.*?)</p>', r.text, re.S)
    assert rule and "Europe/Stockholm" in rule.group(1) and "UTC" not in rule.group(1)
    assert fleet.store.time_zone == "Europe/Stockholm"  # the store files reports under the same zone's days
