"""Every dashboard page in a real headless Chromium, in Swedish, Danish and English, at
1366, 768 and 390 px wide: no sideways scrolling, every table has header cells, a skip
link comes first, and axe-core (from npm, tests/browser; injected by Playwright) finds no
serious or critical violation. Screenshots of every page in every language at 1366 and
390 px go to $AUDITAGENT_SCREENSHOTS (default: screenshots/ in the clone, ignored by git;
CI keeps it as an artifact) for a person to look at.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import unicodedata
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from collector_fixtures import REPO, start_collector
from browser_harness import browser, needs_chromium, simulated_store  # noqa: F401 - browser: the fixture

AXE = REPO / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
LANGS = ("sv", "da", "en")
WIDTHS = (1366, 768, 390)
SHOT_WIDTHS = (1366, 390)
OFFICER, ADMIN, PASSWORD = "officer.sara", "admin.ole", "correct horse battery staple"
UNIT = "Socialförvaltningen/IFO/Ekonomiskt bistånd med ett mycket långt enhetsnamn"
SUB = UNIT + "/Mottagningsgruppen för nyansökningar"
LONG_HOST = "KOMMUNEN-LAPTOP-MED-ETT-VÄLDIGT-LÅNGT-DATORNAMN-0001"

pytestmark = needs_chromium


def screenshot_dir() -> Path:
    folder = Path(os.environ.get("AUDITAGENT_SCREENSHOTS") or REPO / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A collector with a fleet that fills every page: long unit and host names, failing,
    stale and never-reporting devices, exceptions in force, audit-log entries."""
    from sqlalchemy import select

    from server import auth
    from server import readiness as rd
    from server.db import units
    from server.simulate import add_device

    work = tmp_path_factory.mktemp("a11y")
    db_url, store = simulated_store(work, devices=30, days=8, seed=5)
    engine = store.engine
    failing = add_device(store, SUB, LONG_HOST, idle_seconds=900, seed=21)
    add_device(store, SUB, "EB-LAPTOP-2", seed=22)
    add_device(store, UNIT, "EB-LAPTOP-3", platform="linux", private_cloud="dropbox", seed=23)
    now = dt.datetime.now(dt.timezone.utc)
    add_device(store, SUB, "EB-TYST-1", seed=24, now=now - dt.timedelta(days=9))  # silent: stale
    add_device(store, UNIT, "EB-NY-1", seed=25, never=True)
    with engine.begin() as conn:
        officer = auth.create_user(conn, username=OFFICER, role="security_officer", password=PASSWORD, lang="sv")
        auth.create_user(conn, username=ADMIN, role="admin", password=PASSWORD, lang="en")
        unit_id = conn.execute(select(units.c.id).where(units.c.path == UNIT)).scalar_one()
        rd.grant_exception(conn, officer, check_id="screen-lock", device_id=failing, now=now,
                           expires_at=now + dt.timedelta(days=20),
                           justification="Skärmlåset styrs av kioskprofilen på avdelningens bärbara datorer; "
                                         "ses över i maj tillsammans med leverantören.")
        from server.notify import subscriptions

        subscriptions.subscribe(conn, officer, unit_id=unit_id, channel="email", target="it-sakerhet@kommun.se",
                                events=["not_ready", "silent", "exception_expiring"], lang="sv", now=now)
    engine.dispose()
    collector = start_collector(db_url, work / "run", extra_args=("--insecure-cookies",))
    collector.paths = {  # type: ignore[attr-defined]
        "login": "/login", "overview": "/", "unit": f"/units/{unit_id}", "device": f"/devices/{failing}",
        "exceptions": "/exceptions?all=1", "audit": "/audit", "report": f"/units/{unit_id}/report",
        "error": "/units/999999", "subscriptions": "/subscriptions",
    }
    try:
        yield collector
    finally:
        collector.stop()


PAGES = ("login", "overview", "unit", "device", "exceptions", "audit", "report", "error", "subscriptions")

OVERFLOW_JS = """() => {
  const w = document.documentElement.clientWidth;
  const wide = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    let clipped = false;
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      if (getComputedStyle(p).overflowX !== 'visible') { clipped = true; break; }
    }
    if (!clipped && r.width && r.right > w + 1 && getComputedStyle(el).position !== 'fixed') {
      wide.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className && el.className.baseVal === undefined ? '.' + el.className : '') + ' right=' + Math.round(r.right));
    }
  }
  return {scroll: document.documentElement.scrollWidth, width: w, wide: wide.slice(0, 8)};
}"""

FIRST_FOCUSABLE_JS = """() => {
  const el = document.querySelector('a[href], button, input:not([type=hidden]), select, textarea, [tabindex]:not([tabindex="-1"])');
  return el ? [el.className, el.getAttribute('href')] : null;
}"""

AXE_JS = """async () => {
  const r = await axe.run(document, {resultTypes: ['violations']});
  return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ': ' + (n.failureSummary || '').split('\\n').slice(0, 2).join(' '))}));
}"""


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        pytest.fail(f"{AXE} missing: npm ci --prefix tests/browser (.ci/run does it)")
    return AXE.read_text(encoding="utf-8")


def open_context(browser: Any, site: Any, lang: str, *, logged_in: bool = True) -> Any:  # noqa: F811
    # bypass_csp: the pages forbid every script (CSP script-src 'none'); only the test's axe may run.
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": 900}, bypass_csp=True,
                                  locale={"sv": "sv-SE", "da": "da-DK", "en": "en-GB"}[lang])
    if logged_in:
        r = context.request.post(site.url + "/api/v1/login", data=json.dumps({"username": OFFICER,
                                                                              "password": PASSWORD}),
                                 headers={"Content-Type": "application/json"})
        assert r.status == 200, r.text()
    return context


@pytest.fixture(scope="module")
def contexts(browser: Any, site: Any) -> Iterator[dict[tuple[str, bool], Any]]:  # noqa: F811
    """One browser context per language, signed in (and one signed out), kept for the module."""
    made: dict[tuple[str, bool], Any] = {}

    class Lazy(dict):  # type: ignore[type-arg]
        def __missing__(self, key: tuple[str, bool]) -> Any:
            made[key] = open_context(browser, site, key[0], logged_in=key[1])
            return made[key]

    yield Lazy()
    for c in made.values():
        c.close()


def each_page(contexts: Any, site: Any, lang: str, name: str, visit: Callable[[Any, int], None]) -> None:
    page = contexts[(lang, name != "login")].new_page()
    try:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(f"{site.url}{site.paths[name]}{'&' if '?' in site.paths[name] else '?'}lang={lang}")
            assert page.evaluate("document.documentElement.lang") == lang
            visit(page, width)
    finally:
        page.close()


@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize("lang", LANGS)
def test_page_is_usable_at_every_width(contexts: Any, site: Any, axe_source: str, lang: str, name: str) -> None:
    problems: list[str] = []
    shots = screenshot_dir()

    def visit(page: Any, width: int) -> None:
        where = f"{name} [{lang}, {width} px]"
        over = page.evaluate(OVERFLOW_JS)
        if over["scroll"] > over["width"]:
            problems.append(f"{where}: scrolls sideways ({over['scroll']} > {over['width']} px): {over['wide']}")
        # Every table has header cells; the first thing a keyboard reaches is the skip link.
        bare = page.evaluate("[...document.querySelectorAll('table')].filter(t => !t.querySelector('th')).length")
        if bare:
            problems.append(f"{where}: {bare} table(s) without header cells")
        first = page.evaluate(FIRST_FOCUSABLE_JS)
        if first != ["skip", "#main"]:
            problems.append(f"{where}: the first focusable element is {first}, not the skip link")
        if page.locator("[autofocus]").count() == 0:  # else the browser starts in that field
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.className") != "skip":
                problems.append(f"{where}: the first Tab stop is not the skip link")
        page.focus("a.skip")
        box = page.locator("a.skip").bounding_box()
        if not box or box["y"] < 0:
            problems.append(f"{where}: the skip link does not show when focused")
        if width in SHOT_WIDTHS:
            page.evaluate("document.activeElement.blur()")
            page.screenshot(path=str(shots / f"{name}-{lang}-{width}.png"), full_page=True)
        # axe on every page in every language at full width; the narrow layout (its own
        # rules: scrollable regions, reflow) once, in Swedish: colours do not change with the language.
        if width == WIDTHS[0] or (width == WIDTHS[-1] and lang == "sv"):
            page.evaluate(axe_source)
            for v in page.evaluate(AXE_JS):
                problems.append(f"{where}: axe {v['impact']} {v['id']} ({v['help']}): {v['nodes']}")

    each_page(contexts, site, lang, name, visit)
    assert not problems, "\n".join(problems)


def test_axe_finds_what_it_should(contexts: Any, site: Any, axe_source: str) -> None:
    """The check can fail: text below 4.5:1 on a page is reported as a serious violation."""
    page = contexts[("en", True)].new_page()
    try:
        page.goto(site.url + "/")
        page.evaluate("document.querySelector('h1').style.color = '#aaaaaa'")
        page.evaluate(axe_source)
        ids = {v["id"] for v in page.evaluate(AXE_JS)}
        assert "color-contrast" in ids
    finally:
        page.close()


BLOCKING_JS = """() => [...document.querySelectorAll('.tree td.blocking a.clip')].map(a => {
  const line = parseFloat(getComputedStyle(a).lineHeight) || 20;
  return {text: a.textContent, title: a.title, name: a.getAttribute('aria-label') || a.textContent,
          height: a.getBoundingClientRect().height, line: line, cut: a.scrollHeight > a.clientHeight + 1,
          row: a.closest('tr').getBoundingClientRect().height};
})"""


@pytest.mark.parametrize("lang", LANGS)
def test_blocking_check_column_keeps_rows_short(contexts: Any, site: Any, lang: str) -> None:
    """At 1366 px the most common blocker takes at most two lines per unit: a longer check
    title is cut with an ellipsis, the whole title stays the link's text (its accessible name)
    and its tooltip."""
    page = contexts[(lang, True)].new_page()
    try:
        page.set_viewport_size({"width": 1366, "height": 900})
        page.goto(f"{site.url}/?lang={lang}")
        cells = page.evaluate(BLOCKING_JS)
        name = page.locator(".tree td.blocking a.clip").first.evaluate("a => a.textContent")
        assert page.get_by_role("link", name=name, exact=True).count() >= 1
    finally:
        page.close()
    assert cells, "no blocking checks on the overview"
    assert any(c["cut"] for c in cells), "no long title was cut: the test shows nothing"
    for c in cells:
        assert c["title"] == c["text"] == c["name"] and len(c["text"]) > 3
        assert c["height"] <= 2.5 * c["line"], c



# Words of each unit name in the tree that the layout split over two lines (a word whose
# text has more than one line box), and the tops of the header's blocks and menu links.
SPLIT_WORDS_JS = """() => {
  const split = [];
  for (const a of document.querySelectorAll('.tree td.name a')) {
    const walker = document.createTreeWalker(a, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.data.matchAll(/\\S+/g)) {
        const r = document.createRange();
        r.setStart(node, m.index); r.setEnd(node, m.index + m[0].length);
        const tops = new Set([...r.getClientRects()].map(b => Math.round(b.top)));
        if (tops.size > 1) split.push(m[0]);
      }
    }
  }
  return split;
}"""
HEADER_JS = """() => ({
  blocks: [...document.querySelectorAll('header.top > *')].map(e => Math.round(e.getBoundingClientRect().top)),
  links: [...document.querySelectorAll('header.top nav:not(.lang) a')].map(e => Math.round(e.getBoundingClientRect().top)),
})"""


@pytest.mark.parametrize("lang", LANGS)
def test_unit_names_wrap_between_words_and_the_menu_keeps_one_line(contexts: Any, site: Any, lang: str) -> None:
    """At 1366 px no word of a unit's name is split over two lines (in tree order and worst
    first, where full paths are shown), the menu is one line and the header one row; at
    390 px the menu may wrap but the page does not scroll sideways (the usability test)."""
    page = contexts[(lang, True)].new_page()
    try:
        page.set_viewport_size({"width": 1366, "height": 900})
        split = {}
        for sort in ("", "&sort=readiness"):
            page.goto(f"{site.url}/?lang={lang}{sort}")
            names = page.locator(".tree td.name a").all_inner_texts()
            assert any(len(n) > 30 for n in names), names  # long names are there to wrap
            split[sort or "tree"] = page.evaluate(SPLIT_WORDS_JS)
        page.goto(f"{site.url}{site.paths['unit']}?lang={lang}")
        split["unit"] = page.evaluate(SPLIT_WORDS_JS)
        header = page.evaluate(HEADER_JS)
    finally:
        page.close()
    assert split == {"tree": [], "&sort=readiness": [], "unit": []}
    assert len(set(header["links"])) == 1 and len(header["links"]) >= 4, header
    assert max(header["blocks"]) - min(header["blocks"]) < 20, header  # one row: brand, menu, user, languages


@pytest.mark.parametrize("lang, saved", [("sv", "Prenumerationen är sparad"), ("da", "Abonnementet er gemt"),
                                         ("en", "The subscription is saved")])
def test_officer_subscribes_and_unsubscribes_in_the_browser(contexts: Any, site: Any, lang: str,
                                                            saved: str) -> None:
    """The notifications form as a person uses it: choose a unit, events and language, submit,
    see the subscription listed, unsubscribe again."""
    page = contexts[(lang, True)].new_page()
    try:
        page.goto(f"{site.url}/subscriptions?lang={lang}")
        before = page.locator("#subscriptions tbody tr").count()
        page.select_option("#s-unit", label=SUB)
        page.uncheck("#s-event-silent")
        page.check("#s-event-below_target")
        page.fill("#s-target-pct", "90")
        page.fill("#s-target", f"sakerhet-{lang}@kommun.se")
        page.select_option("#s-lang", "da")
        page.click("#s-submit")
        assert saved in page.inner_text("#notice")
        row = page.locator("#subscriptions tbody tr", has_text=f"sakerhet-{lang}@kommun.se")
        assert row.count() == 1 and "Dansk" in row.inner_text() and "90" in row.inner_text()
        assert page.locator("#subscriptions tbody tr").count() == before + 1
        row.locator("button").click()
        assert page.locator("#notice").count() == 1
        assert page.locator("#subscriptions tbody tr", has_text=f"sakerhet-{lang}@kommun.se").count() == 0
    finally:
        page.close()

# ------------------------------------------------------------------ the committee report on paper

REPORT_TEXT = {
    "sv": ("Beredskap för distansarbete: Ekonomiskt bistånd", "Kontroller som hindrar flest datorer",
           "Gällande undantag", "Datorer som varit tysta längst", "Så kan en granskare kontrollera uppgifterna",
           "Underenheter"),
    "da": ("Parathed til hjemmearbejde: Ekonomiskt bistånd", "Kontroller, der stopper flest computere",
           "Gældende undtagelser", "Computere, der længst ikke har rapporteret",
           "Sådan kan en revisor efterprøve tallene", "Underenheder"),
    "en": ("Remote-work readiness: Ekonomiskt bistånd", "Checks blocking the most devices", "Exceptions in force",
           "Devices silent longest", "How an auditor can verify these figures", "Sub-units"),
}


@pytest.mark.parametrize("lang", LANGS)
def test_committee_report_prints_to_a4_pdf(contexts: Any, site: Any, lang: str, tmp_path: Path) -> None:
    import io

    from pypdf import PdfReader

    page = contexts[(lang, True)].new_page()
    try:
        page.goto(f"{site.url}{site.paths['report']}?lang={lang}&days=30")
        pct = page.inner_text("#report-pct")
        expiry = page.inner_text("#report-exceptions tbody tr td:nth-child(4)")
        pdf = page.pdf(prefer_css_page_size=True, print_background=True)
    finally:
        page.close()
    (screenshot_dir() / f"report-{lang}.pdf").write_bytes(pdf)
    reader = PdfReader(io.BytesIO(pdf))
    first = reader.pages[0].mediabox
    assert (round(float(first.width)), round(float(first.height))) == (595, 842)  # A4 in points
    # NFKC: the PDF's ligatures (ﬁ, ﬂ) and no-break spaces read as the letters and spaces they are.
    text = unicodedata.normalize("NFKC", " ".join(" ".join((p.extract_text() or "").split()) for p in reader.pages))
    pct = unicodedata.normalize("NFKC", pct)
    for phrase in REPORT_TEXT[lang]:
        assert " ".join(phrase.split()) in text, f"{lang}: {phrase!r} not in the PDF"
    assert pct in text
    assert "Mottagningsgruppen" in text  # the sub-unit
    assert "kioskprofilen" in text and expiry in text  # the exception, its justification and last day
    assert "EB-TYST-1" in text  # silent longest
    assert "DSSE" in text and "Ed25519" in text
    # Paper has no menus, forms or skip link.
    for chrome in ("Logga ut", "Log ud", "Log out", "Filtrera", "Filtrér", LANG_SWITCH):
        assert chrome not in text, chrome


LANG_SWITCH = "SvenskaDanskEnglish"
