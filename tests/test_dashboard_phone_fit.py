"""Every dashboard page an officer sees fits a phone and a tablet: in a real headless
Chromium (Debian's /usr/bin/chromium through Playwright) against a real collector
subprocess on SQLite, in sv, da and en at 390, 768 and 1366 px, the document never scrolls
sideways (a wide table may scroll inside its own box). The data holds the longest texts
a real fleet has: the shipped policy's Danish and Swedish check titles, a 63-character
host name without a break, a long Danish unit and team name, a long exception
justification. Screenshots go to AUDITAGENT_SCREENSHOTS when set."""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from browser_harness import browser, needs_chromium, simulated_store  # noqa: F401 - browser: the fixture
from collector_fixtures import start_collector

pytestmark = needs_chromium

OFFICER, PASSWORD = "officer.phonefit", "correct horse battery staple"
UNIT = "Københavns Kommune/Socialforvaltningens Børne- og Ungdomsrådgivningscenter"
TEAM = UNIT + "/Familieafdelingens Myndighedsbehandlingsteam Nordvest"
LONG_HOST = "SOCIALFORVALTNINGEN-BOERNEOGUNGDOMSRAADGIVNINGEN-FAMILIE-LAPTOP"  # 63, the DNS label limit
LOCALES = {"sv": "sv-SE", "da": "da-DK", "en": "en-GB"}
WIDTHS = (390, 768, 1366)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from server import auth
    from server import readiness as rd
    from server.db import units
    from server.simulate import add_device

    assert len(LONG_HOST) == 63
    work = tmp_path_factory.mktemp("phone-fit")
    db_url, store = simulated_store(work, devices=12, days=6, seed=7)
    now = dt.datetime.now(dt.timezone.utc)
    # Failing every kind of check the shipped policy has, so the longest titles show.
    failing = add_device(store, TEAM, LONG_HOST, idle_seconds=900, encrypted_from=None,
                         private_cloud="dropbox", seed=41)
    add_device(store, TEAM, LONG_HOST[:-1] + "2", platform="macos", idle_seconds=1800, seed=42)
    add_device(store, UNIT, LONG_HOST[:-1] + "3", seed=43, now=now - dt.timedelta(days=9))  # stale
    with store.engine.begin() as conn:
        officer = auth.create_user(conn, username=OFFICER, role="security_officer", password=PASSWORD, lang="en")
        rd.grant_exception(conn, officer, check_id="screen-lock", device_id=failing, now=now,
                           expires_at=now + dt.timedelta(days=30),
                           justification="Skærmlåsindstillingerne administreres centralt via Intune-"
                                         "konfigurationsprofilen; ændringsanmodningsnummer CHG0012345678901")
        ids = {r.path: r.id for r in conn.execute(units.select())}
    store.engine.dispose()
    collector = start_collector(db_url, work / "run", extra_args=("--insecure-cookies",))
    collector.paths = {  # type: ignore[attr-defined]
        "overview": "/",
        "unit": f"/units/{ids[UNIT]}",
        "team": f"/units/{ids[TEAM]}",
        "device": f"/devices/{failing}",
        "exceptions": "/exceptions",
        "report": f"/units/{ids[UNIT]}/report",
        "audit": "/audit",
        "subscriptions": "/subscriptions",
    }
    shots = os.environ.get("AUDITAGENT_SCREENSHOTS")
    collector.shots = Path(shots) if shots else None  # type: ignore[attr-defined]
    try:
        yield collector
    finally:
        collector.stop()


# What sticks out: the document's width against the viewport's, and the widest elements
# past the right edge (so a failure names the culprit).
OVERFLOW = """() => {
  const w = window.innerWidth, doc = document.documentElement.scrollWidth;
  const clipped = e => { for (let a = e.parentElement; a && a !== document.body; a = a.parentElement)
                           if (getComputedStyle(a).overflowX !== 'visible') return true; return false; };
  const out = [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > w + 0.5 && !clipped(e)).slice(0, 5)
    .map(e => e.tagName + (e.id ? '#' + e.id : '') + ' ' + Math.round(e.getBoundingClientRect().right));
  return {w, doc, out};
}"""


@pytest.mark.parametrize("lang", ["sv", "da", "en"])
@pytest.mark.parametrize("width", WIDTHS)
def test_no_page_scrolls_sideways(site: Any, browser: Any, lang: str, width: int) -> None:  # noqa: F811
    context = browser.new_context(locale=LOCALES[lang], viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        page.goto(site.url + "/login")
        page.fill("#username", OFFICER)
        page.fill("#password", PASSWORD)
        page.click("#login-submit")
        page.wait_for_url(site.url + "/")
        wide = {}
        for name, path in site.paths.items():
            response = page.goto(f"{site.url}{path}?lang={lang}")
            assert response is not None and response.status == 200, (name, response and response.status)
            assert page.locator("html").get_attribute("lang") == lang
            if name == "device":
                assert LONG_HOST in page.inner_text("main")
            m = page.evaluate(OVERFLOW)
            assert m["w"] == width
            if site.shots is not None:
                site.shots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(site.shots / f"{name}-{lang}-{width}.png"), full_page=True)
            if m["doc"] > m["w"]:
                wide[name] = m
        assert wide == {}, (lang, width, wide)
    finally:
        context.close()
