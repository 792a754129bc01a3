"""Every dashboard page an officer sees fits a phone and a tablet: in a real headless
Chromium (Debian's /usr/bin/chromium through Playwright) against a real collector
subprocess on SQLite, in sv, da and en at 390, 768 and 1366 px, the document never scrolls
sideways (a wide table may scroll inside its own box, but the device's check table never:
on a phone each check's status is whole on screen). The data holds the longest texts
a real fleet has: the shipped policy's Danish and Swedish check titles, a 63-character
host name without a break, a fully qualified host name, a long Danish unit and team
name, a long exception justification. A heading holding such a name breaks at a space or
at the name's own separators where it has one, mid-word only inside a run wider than the
line. Screenshots go to AUDITAGENT_SCREENSHOTS when set."""
from __future__ import annotations

import contextlib
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
# A fully qualified name: no browser breaks at its dots by itself.
FQDN_HOST = "familieafdelingen-laptop0042.socialforvaltningen.kommune.koebenhavn.dk"
# A Swedish and a Danish unit path of three levels, each with long fully qualified host
# names: their tables (sub-units, failing checks, devices, the committee report's) hold
# the longest words and names a phone has to show whole.
SV_UNIT = "Socialförvaltningen/Individ- och familjeomsorgen"
SV_TEAM = SV_UNIT + "/Mottagningsgruppen för nyansökningar"
SV_HOST = "mottagningsgruppen-laptop0017.individochfamiljeomsorgen.socialforvaltningen.stockholm.se"
DA_UNIT = "Beskæftigelsesforvaltningen/Jobcenter København"
DA_TEAM = DA_UNIT + "/Ydelseskontrollens Sagsbehandlingsgruppe"
DA_HOST = "jobcenter-koebenhavn-laptop0113.ydelseskontrollen.beskaeftigelsesforvaltningen.kk.dk"
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
    fqdn = add_device(store, TEAM, FQDN_HOST, seed=44)
    for k, (unit, team, host) in enumerate(((SV_UNIT, SV_TEAM, SV_HOST), (DA_UNIT, DA_TEAM, DA_HOST))):
        add_device(store, team, host, idle_seconds=900, private_cloud="dropbox", seed=50 + k)
        add_device(store, team, host.replace("laptop", "tablet"), encrypted_from=None, seed=52 + k)
        add_device(store, team, host.replace("laptop", "desktop"), seed=54 + k,
                   now=now - dt.timedelta(days=12))  # stale: in the report's silent list
        add_device(store, unit, host.split(".", 1)[0] + "-reserve." + host.split(".", 1)[1], seed=56 + k)
    with store.engine.begin() as conn:
        officer = auth.create_user(conn, username=OFFICER, role="security_officer", password=PASSWORD, lang="en")
        rd.grant_exception(conn, officer, check_id="screen-lock", device_id=failing, now=now,
                           expires_at=now + dt.timedelta(days=30),
                           justification="Skærmlåsindstillingerne administreres centralt via Intune-"
                                         "konfigurationsprofilen; ændringsanmodningsnummer CHG0012345678901")
        ids = {r.path: r.id for r in conn.execute(units.select())}
        rd.grant_exception(conn, officer, check_id="cloud-storage", unit_id=ids[SV_TEAM], now=now,
                           expires_at=now + dt.timedelta(days=60),
                           justification="Mottagningsgruppens samverkansyta med Försäkringskassan "
                                         "ersätts under våren; beslut i informationssäkerhetsrådet.")
    store.engine.dispose()
    collector = start_collector(db_url, work / "run", extra_args=("--insecure-cookies",))
    collector.paths = {  # type: ignore[attr-defined]
        "overview": "/",
        "unit": f"/units/{ids[UNIT]}",
        "team": f"/units/{ids[TEAM]}",
        "device": f"/devices/{failing}",
        "device-fqdn": f"/devices/{fqdn}",
        "exceptions": "/exceptions",
        "report": f"/units/{ids[UNIT]}/report",
        "unit-sv": f"/units/{ids[SV_UNIT.split('/')[0]]}",
        "unit-sv-team": f"/units/{ids[SV_TEAM]}",
        "report-sv": f"/units/{ids[SV_UNIT]}/report",
        "unit-da": f"/units/{ids[DA_UNIT]}",
        "report-da": f"/units/{ids[DA_UNIT.split('/')[0]]}/report",
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


# The device page's check and report tables: where each row's status cell (and everything
# in it) is, against the viewport, and how far its table would scroll inside its own box.
STATUS_CELLS = """([rows, column]) => [...document.querySelectorAll(rows)].map(tr => {
  const cell = tr.cells[column], table = cell.closest('table');
  const boxes = [cell, ...cell.querySelectorAll('*')].map(e => e.getBoundingClientRect()).filter(r => r.width);
  return {row: tr.dataset.checkId || tr.cells[0].innerText, text: cell.innerText.trim(),
          left: Math.min(...boxes.map(r => r.left)), right: Math.max(...boxes.map(r => r.right)),
          scrolls: table.scrollWidth - table.clientWidth};
})"""


@contextlib.contextmanager
def signed_in(site: Any, browser: Any, lang: str, width: int) -> Iterator[Any]:  # noqa: F811
    """A page in a fresh browser context of ``width`` px for a reader of ``lang``, signed in."""
    context = browser.new_context(locale=LOCALES[lang], viewport={"width": width, "height": 900})
    try:
        page = context.new_page()
        page.goto(site.url + "/login")
        page.fill("#username", OFFICER)
        page.fill("#password", PASSWORD)
        page.click("#login-submit")
        page.wait_for_url(site.url + "/")
        yield page
    finally:
        context.close()


@pytest.mark.parametrize("lang", ["sv", "da", "en"])
@pytest.mark.parametrize("width", WIDTHS)
def test_no_page_scrolls_sideways(site: Any, browser: Any, lang: str, width: int) -> None:  # noqa: F811
    with signed_in(site, browser, lang, width) as page:
        wide = {}
        for name, path in site.paths.items():
            response = page.goto(f"{site.url}{path}?lang={lang}")
            assert response is not None and response.status == 200, (name, response and response.status)
            assert page.locator("html").get_attribute("lang") == lang
            if name == "device":
                assert LONG_HOST in page.inner_text("main")
                # Each check's status and each report's verdict reads whole without
                # scrolling anything sideways.
                checks = page.evaluate(STATUS_CELLS, ["#results tbody tr", 1])
                reports = page.evaluate(STATUS_CELLS, ["#reports tbody tr", 3])
                assert len(checks) >= 6 and len(reports) >= 3, (checks, reports)
                cells = checks + reports
                assert all(c["text"] for c in cells), cells
                cut = [c for c in cells if c["left"] < 0 or c["right"] > width + 0.5 or c["scrolls"] > 0]
                assert cut == [], (lang, width, cut)
            m = page.evaluate(OVERFLOW)
            assert m["w"] == width
            if site.shots is not None:
                site.shots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(site.shots / f"{name}-{lang}-{width}.png"), full_page=True)
            if m["doc"] > m["w"]:
                wide[name] = m
        assert wide == {}, (lang, width, wide)


# Each line break inside the elements ``selector`` finds, read from the rendered text (one
# Range per character: a new line starts where a character's box moves down). A break is
# right at a space or after a separator; inside a run of letters only when that run alone
# is wider than the line it could have (``room``: the element's own width for a heading,
# the width of the page's main column for a table cell, as a cell may be as wide as the
# screen allows), or, where ``hyphens`` allows it, where the browser hyphenates (a hyphen
# shows; Debian's Chromium has no hyphenation dictionaries, so here it never does).
LINE_BREAKS = r"""({selector, seps, room, hyphens, names}) => {
  const lang = document.documentElement.lang;
  const probe = document.createElement('div');
  probe.lang = lang;
  probe.style.cssText = 'position:absolute;visibility:hidden;width:5em;font:16px sans-serif;overflow-wrap:normal';
  probe.textContent = {sv: 'arbetsmarknadsförvaltningen', da: 'beskæftigelsesforvaltningen',
                       en: 'internationalization'}[lang];
  document.body.append(probe);
  probe.style.hyphens = 'none'; const whole = probe.getBoundingClientRect().height;
  probe.style.hyphens = 'auto'; const hyphenates = probe.getBoundingClientRect().height > whole;
  probe.remove();
  const main = document.querySelector('main'), ms = getComputedStyle(main);
  const column = main.clientWidth - parseFloat(ms.paddingLeft) - parseFloat(ms.paddingRight);
  const sep = c => seps.includes(c), space = c => /\s/.test(c);
  const found = [];
  let titleLines = 0, wrapped = 0, elements = 0;
  let elements_ = [...document.querySelectorAll(selector)];
  // Cells holding one of ``names`` as text (without a link to it) are read too.
  if (names) elements_ = elements_.concat([...document.querySelectorAll('main td')].filter(td =>
    names.some(n => td.innerText.includes(n)) && !elements_.some(e => td.contains(e) || e.contains(td))));
  // A cell and the link in it are one name: read the innermost.
  elements_ = elements_.filter(e => !elements_.some(o => o !== e && e.contains(o)));
  for (const h of elements_) {
    if (!h.checkVisibility()) continue;  // not shown at this width
    elements++;
    const cs = getComputedStyle(h);
    const line = room === 'own' ? h.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight) : column;
    const chars = [], r = document.createRange(), walk = document.createTreeWalker(h, NodeFilter.SHOW_TEXT);
    for (let n; (n = walk.nextNode());)
      for (let i = 0; i < n.length; i++) {
        r.setStart(n, i); r.setEnd(n, i + 1);
        const box = r.getClientRects()[0], c = n.data[i];
        // A space a line ends in has no box of its own: it stays on the line before.
        if (box || space(c)) chars.push({c, top: box ? box.top : (chars.length ? chars[chars.length - 1].top : 0),
                                         w: box ? box.width : 0, hyphens: getComputedStyle(n.parentElement).hyphens});
      }
    let lines = 1;
    for (let k = 1; k < chars.length; k++) {
      if (chars[k].top <= chars[k - 1].top + 1) continue;
      lines++;
      const before = chars[k - 1].c, after = chars[k].c;
      if (space(before) || space(after) || sep(before)) continue;
      let a = k, b = k;  // the run of the name the break falls in
      while (a > 0 && !space(chars[a - 1].c) && !sep(chars[a - 1].c)) a--;
      while (b < chars.length && !space(chars[b].c) && !sep(chars[b].c)) b++;
      const width = chars.slice(a, b).reduce((s, x) => s + x.w, 0);
      if (width > line + 0.5) continue;  // wider than the line on its own: nothing better exists
      if (hyphens && hyphenates && chars[k - 1].hyphens === 'auto') continue;
      const text = chars.map(x => x.c).join('');
      found.push({text, at: text.slice(Math.max(0, k - 12), k) + '|' + text.slice(k, k + 12),
                  run_px: Math.round(width), room_px: Math.round(line)});
    }
    wrapped += lines > 1;
    if (h.matches('h1')) titleLines += lines;
  }
  return {found, lines: titleLines, wrapped, elements, hyphenates};
}"""
HEADINGS = {"selector": "main h1, main h2", "seps": "-._/", "room": "own", "hyphens": True}
HEADING_PAGES = ("unit", "team", "device", "device-fqdn", "report")


@pytest.mark.parametrize("lang", ["sv", "da", "en"])
def test_headings_break_at_spaces_and_separators(site: Any, browser: Any, lang: str) -> None:  # noqa: F811
    with signed_in(site, browser, lang, 390) as page:
        bad, wrapped, hyphens, hosts = {}, 0, {}, {}
        for name in HEADING_PAGES:
            response = page.goto(f"{site.url}{site.paths[name]}?lang={lang}")
            assert response is not None and response.status == 200, (name, response and response.status)
            m = page.evaluate(LINE_BREAKS, HEADINGS)
            wrapped += m["lines"] > 1
            if m["found"]:
                bad[name] = m["found"]
            if name.startswith("device"):
                hyphens[name] = page.eval_on_selector("#hostname", "e => getComputedStyle(e).hyphens")
                hosts[name] = page.inner_text("#hostname")
            else:
                hyphens[name] = page.eval_on_selector("main h1", "e => getComputedStyle(e).hyphens")
        assert wrapped >= 3  # the long names do wrap at 390 px, so the breaks were looked at
        assert bad == {}, (lang, bad)
        # Unit names are words, hyphenated where the browser can; a host name is never
        # hyphenated (a hyphen would read as part of it), and it reads whole, markers unseen.
        assert hyphens == {"unit": "auto", "team": "auto", "report": "auto",
                           "device": "manual", "device-fqdn": "manual"}
        assert hosts == {"device": LONG_HOST, "device-fqdn": FQDN_HOST}


# Every table of a page: the elements in it that reach past the viewport's edges (what a
# phone would scroll to), how far each table scrolls inside its own box, each number and
# status (where it is), and how its rows are laid out. The column heads a stacked table
# keeps for screen readers (moved off screen, 1 px) are left out.
TABLE_FIT = """() => {
  const w = window.innerWidth;
  const hidden = e => { const head = e.closest('thead'); return head && getComputedStyle(head).position === 'absolute'; };
  const shown = e => e.checkVisibility() && !hidden(e);
  const tables = [...document.querySelectorAll('main table')].filter(shown);
  const where = e => { const r = e.getBoundingClientRect(); return {left: r.left, right: r.right}; };
  return tables.map(t => ({
    table: t.id || t.className || t.tagName,
    scrolls: t.scrollWidth - t.clientWidth,
    rows: [...new Set([...t.rows].filter(shown).map(r => getComputedStyle(r).display))],
    head: t.tHead ? !hidden(t.tHead.rows[0]) : null,
    out: [t, ...t.querySelectorAll('*')].filter(shown).filter(e => e.getBoundingClientRect().width > 0)
      .map(e => ({e: e.tagName + (e.className ? '.' + e.className : ''), text: e.innerText.slice(0, 40), ...where(e)}))
      .filter(b => b.left < -0.5 || b.right > w + 0.5).slice(0, 4),
    values: [...t.querySelectorAll('td.num, td .badge, td .pct')].filter(shown)
      .map(e => ({text: e.innerText.trim(), ...where(e)})),
  }));
}"""
TABLE_PAGES = ("overview", "unit", "team", "unit-sv", "unit-sv-team", "unit-da", "report", "report-sv",
               "report-da", "device", "device-fqdn")
# The names a table holds: unit names (each level of a path) and host names, found by the
# link to them or by their text (a report's cells hold names without links).
NAMES = sorted({part for path in (TEAM, SV_TEAM, DA_TEAM) for part in path.split("/")}
               | {LONG_HOST, FQDN_HOST, SV_HOST, DA_HOST})
NAME_CELLS = {"selector": 'main td a[href^="/units/"]:not(.clip), main td a[href^="/devices/"], main td.name',
              "seps": "-._/", "room": "main", "hyphens": False, "names": NAMES}


@pytest.mark.parametrize("lang", ["sv", "da", "en"])
@pytest.mark.parametrize("width", (390, 1366))
def test_tables_read_whole_on_a_phone(site: Any, browser: Any, lang: str, width: int) -> None:  # noqa: F811
    """On a phone every row of every table reads without scrolling anything sideways:
    nothing in a table reaches past the screen, no table scrolls in its box, each number
    and status is on screen, and a unit or host name breaks only after its own separators
    (or at a space). On a laptop the tables stay tables, their column heads shown."""
    with signed_in(site, browser, lang, width) as page:
        wide, cut, values, names, tables = {}, {}, 0, 0, set()
        for name in TABLE_PAGES:
            response = page.goto(f"{site.url}{site.paths[name]}?lang={lang}")
            assert response is not None and response.status == 200, (name, response and response.status)
            page.evaluate("document.querySelectorAll('main details').forEach(d => d.open = true)")
            for t in page.evaluate(TABLE_FIT):
                tables.add(t["table"])
                values += len(t["values"])
                off = [v for v in t["values"] if not v["text"] or v["left"] < -0.5 or v["right"] > width + 0.5]
                if t["scrolls"] > 0 or t["out"] or off:
                    wide[f"{name} {t['table']}"] = {"scrolls": t["scrolls"], "out": t["out"], "values": off}
                if width > 800 and (t["rows"] != ["table-row"] or t["head"] is False):
                    wide[f"{name} {t['table']}"] = {"rows": t["rows"], "head": t["head"]}
            if site.shots is not None:  # with the trend's numbers per day open
                site.shots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(site.shots / f"tables-{name}-{lang}-{width}.png"), full_page=True)
            m = page.evaluate(LINE_BREAKS, NAME_CELLS)
            names += m["elements"]
            if m["found"]:
                cut[name] = m["found"]
        # The tables and names were there to be looked at (a page that lost them would pass).
        assert {"tree", "failing-checks", "failing-longest", "stale-devices", "device-table", "report-children",
                "report-blocking", "report-exceptions", "report-silent", "results", "reports"} <= tables, tables
        assert values >= 100 and names >= 60, (values, names)
        assert wide == {}, (lang, width, wide)
        assert cut == {}, (lang, width, cut)
