"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium driven by
Playwright; no browser download) against a real collector subprocess on SQLite:
log in (a wrong password first), open a unit, drill down to a failing device, grant an
exception for its failing required check, see its verdict and the unit's readiness
change, log out, and be sent back to the log-in page. Agent-supplied text (a host
name that is an HTML tag) renders as text. Screenshots go to a temporary folder.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from browser_harness import browser, needs_chromium, simulated_store  # noqa: F401 - browser: the fixture
from collector_fixtures import REPO, start_collector

OFFICER, PASSWORD = "officer.anna", "correct horse battery staple"
DEMO_UNIT = "Testkommun/Demo"
TEAM_A = DEMO_UNIT + "/Team A"
TEAM_B = DEMO_UNIT + "/Team B"
FAILING_HOST = "DEMO-LAPTOP-1"
EVIL_HOST = "<img src=x onerror=alert(1)>"

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from server import auth
    from server.simulate import add_device

    work = tmp_path_factory.mktemp("dashboard")
    db_url, store = simulated_store(work, devices=40, days=6, seed=3)
    engine = store.engine
    add_device(store, TEAM_A, FAILING_HOST, idle_seconds=900, seed=11)  # only screen-lock fails
    add_device(store, TEAM_A, "DEMO-LAPTOP-2", seed=12)  # compliant
    add_device(store, TEAM_B, EVIL_HOST, platform="linux", private_cloud="dropbox", seed=13)
    with engine.begin() as conn:
        auth.create_user(conn, username=OFFICER, role="security_officer", password=PASSWORD, lang="en")
    engine.dispose()
    cli_text = (REPO / "server" / "cli.py").read_text()
    extra = ("--insecure-cookies",) if "--insecure-cookies" in cli_text else ()
    collector = start_collector(db_url, work / "run", extra_args=extra)
    shots = Path(os.environ.get("AUDITAGENT_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    collector.screenshots = shots  # type: ignore[attr-defined]
    try:
        yield collector
    finally:
        collector.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900}, java_script_enabled=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("dialog", lambda d: (errors.append("dialog: " + d.message), d.dismiss()))
    pg.errors = errors  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        context.close()


def login(page: Any, base: str, password: str = PASSWORD, next_path: str | None = None) -> None:
    page.goto(base + (next_path or "/"))
    assert "/login" in page.url
    page.fill("#username", OFFICER)
    page.fill("#password", password)
    page.click("#login-submit")


def pct(text: str) -> float:
    return float(re.sub(r"[^\d.,]", "", text).replace(",", "."))


def test_full_flow_login_drill_down_grant_logout(dashboard: Any, page: Any) -> None:
    base = dashboard.url
    shots = dashboard.screenshots
    # A wrong password: an error on the log-in page, no session.
    login(page, base, password="not the password")
    assert "/login" in page.url
    assert "Wrong user name or password" in page.inner_text("#login-error")
    # The right one: back to the page first asked for.
    page.fill("#username", OFFICER)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(base + "/")
    assert page.inner_text("h1") == "Readiness per unit"
    page.screenshot(path=str(shots / "overview.png"), full_page=True)

    # Open the demo unit from the tree, then its Team A.
    page.click("table.tree a:text-is('Demo')")
    assert page.inner_text("#unit-name") == "Demo"
    page.click("table.tree a:text-is('Team A')")
    assert page.inner_text("#unit-name") == "Team A"
    unit_url = page.url
    before = pct(page.inner_text("#unit-pct"))
    assert before == 50.0
    assert page.locator("#trend-title").count() == 1 or page.locator("svg.trend-chart").count() == 1
    page.screenshot(path=str(shots / "unit-before.png"), full_page=True)

    # Filter to the devices that are not ready (a GET form: works without JavaScript).
    page.select_option("#f-state", "not_ready")
    page.click("#f-submit")
    assert "state=not_ready" in page.url
    rows = page.locator("#device-table tbody tr")
    assert rows.count() == 1
    assert "The screen locks automatically" in rows.first.inner_text()
    assert page.get_attribute("#export-csv", "href").startswith("/units/")

    # Drill down to the failing device.
    # By the link's accessible name: the name carries <wbr> break marks after its separators,
    # which a text-node match (:text-is) does not see through.
    page.locator("#device-table").get_by_role("link", name=FAILING_HOST, exact=True).click()
    assert page.inner_text("#hostname") == FAILING_HOST
    assert "Not ready" in page.inner_text("#verdict")
    failing = page.locator("#results tr[data-check-id='screen-lock']")
    assert "Fail" in failing.inner_text()
    assert page.locator("a.envelope-link").count() >= 3
    assert "BEGIN PUBLIC KEY" in page.inner_text("#public-key")
    page.screenshot(path=str(shots / "device-before.png"), full_page=True)

    # Grant an exception for the failing required check.
    failing.locator("a.grant-link").click()
    assert "/exceptions" in page.url
    assert page.input_value("#g-check") == "screen-lock"
    page.fill("#g-justification", "Screen lock enforced by the kiosk policy on this ward laptop; review in May.")
    page.click("#g-submit")
    # Back on the device: ready, with the exception shown where it changes the verdict.
    assert page.inner_text("#hostname") == FAILING_HOST
    assert "Ready" in page.inner_text("#verdict")
    note = page.inner_text("#results tr[data-check-id='screen-lock'] .exception-note")
    assert "covered by exception until" in note and OFFICER in note and "kiosk policy" in note
    page.screenshot(path=str(shots / "device-after.png"), full_page=True)

    # The unit's readiness went up.
    page.goto(unit_url.split("?")[0])
    after = pct(page.inner_text("#unit-pct"))
    assert after == 100.0 and after > before

    # The exceptions page lists it, in Swedish too.
    page.goto(base + "/exceptions?lang=sv")
    assert page.inner_text("h1") == "Undantag"
    assert FAILING_HOST in page.inner_text("#exceptions")
    page.screenshot(path=str(shots / "exceptions-sv.png"), full_page=True)

    # Log out: protected pages send us to the log-in page again.
    page.click("#logout")
    assert "/login" in page.url
    page.goto(base + "/units/1")
    assert "/login" in page.url and "next=%2Funits%2F1" in page.url
    assert not page.errors  # type: ignore[attr-defined]


def test_agent_supplied_hostname_renders_as_text(dashboard: Any, page: Any) -> None:
    login(page, dashboard.url, next_path="/")
    page.wait_for_url(dashboard.url + "/")
    page.click("table.tree a:text-is('Demo')")
    page.click("table.tree a:text-is('Team B')")
    table = page.inner_text("#device-table")
    assert EVIL_HOST in table  # shown as the text it is
    assert page.locator("img").count() == 0  # and never as an element
    page.click("#device-table tbody a")
    assert page.inner_text("#hostname") == EVIL_HOST
    assert EVIL_HOST in page.title()
    assert page.locator("img").count() == 0
    assert page.evaluate("document.querySelectorAll('[onerror]').length") == 0
    page.screenshot(path=str(shots_dir(dashboard) / "evil-hostname.png"), full_page=True)
    assert not page.errors  # type: ignore[attr-defined]


def test_login_next_is_local_only(dashboard: Any, page: Any) -> None:
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        page.goto(dashboard.url + "/login?next=" + evil.replace("/", "%2F").replace("\\", "%5C"))
        page.fill("#username", OFFICER)
        page.fill("#password", PASSWORD)
        page.click("#login-submit")
        assert page.url.startswith(dashboard.url + "/"), page.url
        page.context.clear_cookies()


def test_security_headers_and_no_script(dashboard: Any, page: Any) -> None:
    resp = page.goto(dashboard.url + "/login")
    headers = resp.headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "script-src 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert page.locator("script").count() == 0
    assert page.get_attribute("meta[name=referrer]", "content") == "no-referrer"


def shots_dir(dashboard: Any) -> Path:
    return dashboard.screenshots

