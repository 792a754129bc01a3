"""Exports that are safe to open and say what the screen says: the machine CSV/XLSX of
the API (RFC 4180, column keys) and a person's CSV/XLSX from the dashboard (their
language; ';' and a BOM for Swedish and Danish Excel), each honouring the filters on
screen — on SQLite and PostgreSQL, over the real app."""
from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from readiness_fleet import EB, IFO, PASSWORD, build_fleet
from server import readiness as rd
from server import spreadsheet
from server.readiness.export import TIME_COLUMNS

FORMULA_STARTS = ("=", "+", "-", "@")


@pytest.fixture(scope="module")
def app_fleet(collector_db_url):
    from fastapi.testclient import TestClient

    from collector_fixtures import migrated_app

    app = migrated_app(collector_db_url, max_overflow=4)
    fleet = build_fleet(app.state.store)
    clients = {}
    for role in ("so_all", "so_ifo", "mgr_eb"):
        c = TestClient(app, base_url="https://testserver")
        r = c.post("/api/v1/login", json={"username": role, "password": PASSWORD})
        assert r.status_code == 200, r.text
        clients[role] = c
    yield app, fleet, clients
    for c in clients.values():
        c.close()
    app.state.store.engine.dispose()


def _csv(text: str, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))


def _xlsx(content: bytes) -> tuple[list[list[object]], str]:
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(content))
    ws = wb.worksheets[0]
    with zipfile.ZipFile(io.BytesIO(content)) as z:
        sheet_xml = z.read("xl/worksheets/sheet1.xml").decode()
    return [[c.value for c in row] for row in ws.iter_rows()], sheet_xml


def test_inert_cells_are_never_formulas():
    for evil in ("=1+1", "+1", "-2", "@SUM(A1)", " =1+1", "\t=1", "\r=1", "\uff1d1+1"):
        assert spreadsheet.inert(evil).startswith("'"), evil
    # a list joined with ';' (Swedish/Danish Excel's separator) cannot smuggle a formula in a later part
    assert spreadsheet.inert("disk-encrypted;=1+1") == "disk-encrypted;'=1+1"
    assert spreadsheet.inert("a, -2") == "a, '-2"
    assert spreadsheet.inert("plain text a=b") == "plain text a=b"
    line = "".join(spreadsheet.csv_lines([["a", "b;=1+1", 'q"uote']], spreadsheet.NORDIC_EXCEL))
    assert line == '\ufeff"a";"b;\'=1+1";"q""uote"\r\n'  # every cell quoted, BOM first


def test_api_csv_is_rfc4180_every_cell_quoted_and_guarded(app_fleet):
    _app, fleet, clients = app_fleet
    r = clients["so_all"].get(f"/api/v1/units/{fleet.units[EB]}/export.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert not r.text.startswith("\ufeff")
    lines = r.text.split("\r\n")
    assert lines[0] == ",".join(f'"{c}"' for c in rd.EXPORT_COLUMNS)
    for line in lines[1:]:
        if line:
            assert line.startswith('"') and line.endswith('"')
    rows = _csv(r.text)
    assert rows[0] == list(rd.EXPORT_COLUMNS) and len(rows) == 8
    for row in rows[1:]:
        for cell in row:
            for part in cell.replace(",", ";").split(";"):
                assert not part.lstrip().startswith(FORMULA_STARTS), (row, cell)
    evil = next(r_ for r_ in rows[1:] if "script" in r_[1])
    assert evil[1].startswith("'=")


def test_api_export_honours_filters(app_fleet):
    _app, fleet, clients = app_fleet
    so = clients["so_all"]
    base = f"/api/v1/units/{fleet.units[EB]}/export.csv"
    by_state = {st: len(_csv(so.get(base, params={"state": st}).text)) - 1 for st in rd.STATES}
    with fleet.store.engine.connect() as conn:  # the API judges at the real clock
        unit = next(u for u in rd.unit_tree(conn, rd.Scope(), dt.datetime.now(dt.timezone.utc)) if u.path == EB)
    assert by_state == {st: getattr(unit.counts, st) for st in rd.STATES} and sum(by_state.values()) == 7
    failing_disk = _csv(so.get(base, params={"check": "disk-encrypted"}).text)[1:]
    assert sorted(r[1] for r in failing_disk) == ["eb2-laptop", "eb3-laptop"]
    assert len(_csv(so.get(base, params={"os": "windows"}).text)) == 1  # header only
    assert so.get(base, params={"state": "bogus"}).status_code == 422


def test_api_xlsx_same_columns_filters_and_no_formula(app_fleet):
    _app, fleet, clients = app_fleet
    so = clients["so_all"]
    r = so.get(f"/api/v1/units/{fleet.units[EB]}/export.xlsx", params={"state": "ready"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument.spreadsheetml")
    rows, xml = _xlsx(r.content)
    assert rows[0] == list(rd.EXPORT_COLUMNS)
    assert len(rows) >= 2
    assert "<f>" not in xml and "<f " not in xml  # no formula cell anywhere
    evil = next(row for row in rows[1:] if "script" in str(row[1]))
    assert evil[1] == fleet.devices["eb7"].hostname  # stored as the text it is, not run
    csv_rows = _csv(so.get(f"/api/v1/units/{fleet.units[EB]}/export.csv", params={"state": "ready"}).text)
    assert sorted(str(r_[0]) for r_ in rows[1:]) == sorted(r_[0] for r_ in csv_rows[1:])


def test_xlsx_with_control_characters_from_a_device_is_not_a_500():
    content = spreadsheet.xlsx_bytes(["h"], [["bad\x00\x07name"], ["=1+1"]])
    rows, xml = _xlsx(content)
    assert rows[1][0] == "bad\ufffd\ufffdname" and rows[2][0] == "=1+1" and "<f>" not in xml


@pytest.mark.parametrize("lang,delim,bom", [("sv", ";", True), ("da", ";", True), ("en", ",", False)])
def test_dashboard_csv_in_the_users_language(app_fleet, lang, delim, bom):
    from server.i18n_web import LANGS, Translator

    if lang not in LANGS:
        pytest.skip(f"the dashboard does not offer {lang} yet")
    t = Translator(lang)
    _app, fleet, clients = app_fleet
    so = clients["so_all"]
    r = so.get(f"/units/{fleet.units[EB]}/export.csv", params={"lang": lang, "state": "ready"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.text.startswith("\ufeff") == bom
    rows = _csv(r.text.removeprefix("\ufeff"), delim)
    assert rows[0] == [t(f"export.col.{c}") for c in rd.EXPORT_COLUMNS]
    assert len(rows) >= 2 and {row[3] for row in rows[1:]} == {t("state.ready")}
    if lang == "sv":
        assert rows[0][0] == "Dator-id" and rows[1][3] == "Redo"


def test_dashboard_xlsx_translated_and_filtered(app_fleet):
    _app, fleet, clients = app_fleet
    r = clients["so_all"].get(f"/units/{fleet.units[EB]}/export.xlsx",
                              params={"lang": "sv", "check": "disk-encrypted"})
    assert r.status_code == 200
    rows, xml = _xlsx(r.content)
    assert rows[0][0] == "Dator-id" and "<f>" not in xml
    assert sorted(row[1] for row in rows[1:]) == ["eb2-laptop", "eb3-laptop"]
    assert {row[3] for row in rows[1:]} == {"Inte redo"}


def test_unit_page_links_carry_the_filters(app_fleet):
    _app, fleet, clients = app_fleet
    html = clients["so_all"].get(f"/units/{fleet.units[EB]}", params={"state": "not_ready", "os": "linux",
                                                                     "lang": "en"}).text
    assert f'href="/units/{fleet.units[EB]}/export.csv?state=not_ready&amp;os=linux"' in html
    assert f'href="/units/{fleet.units[EB]}/export.xlsx?state=not_ready&amp;os=linux"' in html


def test_exports_keep_to_scope_and_role(app_fleet):
    _app, fleet, clients = app_fleet
    ao = fleet.units["Socialförvaltningen/Äldreomsorg"]
    assert clients["so_ifo"].get(f"/api/v1/units/{ao}/export.xlsx").status_code == 404
    assert clients["so_ifo"].get(f"/units/{ao}/export.csv").status_code == 404
    assert clients["so_ifo"].get(f"/units/{fleet.units[IFO]}/export.xlsx").status_code == 200
    assert clients["mgr_eb"].get(f"/units/{fleet.units[EB]}/export.csv").status_code == 403
    assert clients["mgr_eb"].get(f"/api/v1/units/{fleet.units[EB]}/export.xlsx").status_code == 403


def _same_cell(csv_text: str, xlsx_value: object, column: str, *, person: bool) -> bool:
    """A CSV cell and the XLSX cell of the same row and column say the same: text is text in
    both (the CSV's made inert), times are the same minute, none is empty."""
    if xlsx_value is None:
        return csv_text == ""
    if column in TIME_COLUMNS:
        assert isinstance(xlsx_value, dt.datetime)  # a real date cell, not text
        if person:
            return csv_text == xlsx_value.strftime("%Y-%m-%d %H:%M")
        return abs(dt.datetime.fromisoformat(csv_text.replace("Z", "+00:00")).replace(tzinfo=None)
                   - xlsx_value) < dt.timedelta(seconds=1)
    if not person and column == "agent_outdated":
        return {"yes": "True", "no": "False"}[csv_text] == xlsx_value
    return spreadsheet.inert(str(xlsx_value)) == csv_text


@pytest.mark.parametrize("api", [True, False])
def test_xlsx_reads_back_as_the_csv_rows(app_fleet, api):
    """Every row and cell of the streamed workbook, read back with openpyxl, is the CSV's:
    the API's pair and a Swedish reader's (translated headers and values)."""
    _app, fleet, clients = app_fleet
    so = clients["so_all"]
    root = fleet.units["Socialförvaltningen"]
    base, params, delim = ((f"/api/v1/units/{root}/export", {}, ",") if api
                           else (f"/units/{root}/export", {"lang": "sv"}, ";"))
    csv_rows = _csv(so.get(base + ".csv", params=params).text.removeprefix("\ufeff"), delim)
    r = so.get(base + ".xlsx", params=params)
    assert r.status_code == 200 and r.headers["content-type"].startswith(rd.XLSX_TYPE)
    rows, xml = _xlsx(r.content)
    assert "<f>" not in xml and "<f " not in xml
    assert len(rows) == len(csv_rows) > 10 and rows[0] == csv_rows[0]
    for xrow, crow in zip(rows[1:], csv_rows[1:]):
        assert len(xrow) == len(crow) == len(rd.EXPORT_COLUMNS)
        for column, x, c in zip(rd.EXPORT_COLUMNS, xrow, crow):
            assert _same_cell(c, x, column, person=not api), (column, x, c)


def test_streamed_xlsx_in_many_chunks_is_one_valid_workbook():
    """A long sheet leaves the writer in many chunks while rows are still coming; joined,
    they are one workbook: header bold and frozen, filter over every row, dates as dates."""
    from openpyxl import load_workbook

    when = dt.datetime(2030, 6, 15, 12, 30, tzinfo=dt.timezone.utc)
    rows = ([f"dev-{i:05d}", f"=HYPERLINK(\"x{i}\")", when, i, None, "a & <b>"] for i in range(20_000))
    chunks = list(spreadsheet.xlsx_chunks(["id", "name", "seen", "n", "none", "text"], rows,
                                          sheet="Ekonomiskt bistånd: [2030]", chunk=16 * 1024))
    assert len(chunks) > 3
    wb = load_workbook(io.BytesIO(b"".join(chunks)))
    ws = wb.worksheets[0]
    assert ws.title == "Ekonomiskt bistånd- -2030-" and ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:F20001" and ws["A1"].font.b
    got = list(ws.iter_rows(min_row=2, values_only=True))
    assert len(got) == 20_000
    assert got[7] == ("dev-00007", '=HYPERLINK("x7")', when.replace(tzinfo=None), 7, None, "a & <b>")
    assert ws["B2"].data_type == "s"  # text, never a formula


def _sheet_cells(content: bytes) -> dict[str, tuple[str | None, str | None, str, bool]]:
    """Each cell with something in it, by reference: (type, style, its value's text, whether
    the text keeps its spaces): what the sheet says of it, before any reader's conversion."""
    import xml.etree.ElementTree as ET

    ns = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    space = "{http://www.w3.org/XML/1998/namespace}space"
    out = {}
    with zipfile.ZipFile(io.BytesIO(content)) as z:
        for c in ET.fromstring(z.read("xl/worksheets/sheet1.xml")).iter(ns + "c"):
            v, t = c.find(ns + "v"), c.find(f"{ns}is/{ns}t")
            if v is not None or t is not None:
                out[c.get("r")] = (c.get("t"), c.get("s"), (v if v is not None else t).text or "",
                                   t is not None and t.get(space) == "preserve")
    return out


def test_xlsx_cells_of_every_kind():
    """What each kind of value becomes: text (escaped; spaces at either end kept), date
    cells of datetimes and of date numbers in a date column (the number the datetime
    gives), numbers, True/False and lists as their text, nothing for None and ''; rows
    shorter than the header padded, longer ones cut."""
    from server import xlsx

    when = dt.datetime(2030, 6, 15, 12, 30, 5, 123_456, tzinfo=dt.timezone.utc)
    rows = [["a & <b>", when, xlsx.serial(when), 7, 2.5, True, None, "", ["x", 1], " lead", "trail\t"],
            ["short"],
            ["=1+1", when.replace(tzinfo=None), 3.0, float("nan"), -1, False, "é", "x", "y", "z", "w", "cut off"]]
    content = b"".join(xlsx.xlsx_chunks([f"h{i}" for i in range(11)], rows, dates={1, 2}))
    cells = _sheet_cells(content)
    number = repr(xlsx.serial(when))
    assert cells["A2"] == ("inlineStr", None, "a & <b>", False)
    assert cells["B2"] == cells["C2"] == (None, "1", number, False)  # a date cell both ways, the same number
    assert cells["D2"] == (None, None, "7", False) and cells["E2"] == (None, None, "2.5", False)
    assert cells["F2"] == ("inlineStr", None, "True", False)
    assert "G2" not in cells and "H2" not in cells
    assert cells["I2"] == ("inlineStr", None, "['x', 1]", False)
    assert cells["J2"] == ("inlineStr", None, " lead", True) and cells["K2"] == ("inlineStr", None, "trail\t", True)
    assert cells["A3"][2] == "short" and not any(ref.endswith("3") and ref != "A3" for ref in cells)
    assert cells["A4"] == ("inlineStr", None, "=1+1", False) and cells["B4"] == (None, "1", number, False)
    assert cells["C4"] == (None, "1", "3.0", False)  # a float in a date column: a date number
    assert cells["D4"] == ("inlineStr", None, "nan", False) and cells["E4"] == (None, None, "-1", False)
    assert "L4" not in cells and cells["K4"][2] == "w"
    rows_back, xml = _xlsx(content)
    assert rows_back[1][:4] == ["a & <b>", when.replace(tzinfo=None, microsecond=123_000), rows_back[1][1], 7]
    assert rows_back[1][9:] == [" lead", "trail\t"] and rows_back[2] == ["short"] + [None] * 10
    assert "<f>" not in xml


def test_xlsx_repeated_texts_past_the_cache_are_still_written():
    """Each column keeps the pieces of a bounded number of texts: past them, texts are
    written as they are, the same cells."""
    from server import xlsx

    n = xlsx._TEXT_CACHE + 50
    rows = [[f"dev-{i}", f"unit {i % 3}", f"late {i % 2}" if i > n - 10 else None] for i in range(n)]
    got = _xlsx(b"".join(xlsx.xlsx_chunks(["id", "unit", "late"], rows, chunk=4096)))[0]
    assert got[1:] == [[r[0], r[1], r[2]] for r in rows]


def test_xlsx_of_the_database_times_is_the_xlsx_of_the_datetimes(app_fleet):
    """The date numbers worked out from the microseconds the database reads
    (``times=EXCEL_MICROS``) make the same sheet, character for character, as the records'
    datetimes did: the API's workbook and a Swedish reader's."""
    from server.i18n_web import Translator
    from server.web import check_title

    _app, fleet, _clients = app_fleet
    now = dt.datetime.now(dt.timezone.utc)
    root = fleet.units["Socialförvaltningen"]
    with fleet.store.engine.connect() as conn:
        plain = list(rd.export_records(conn, rd.Scope(), root, now))
        micros = list(rd.export_records(conn, rd.Scope(), root, now, times=rd.EXCEL_MICROS))
        api = b"".join(rd.export_machine_xlsx(conn, rd.Scope(), root, now))
    at = rd.EXPORT_COLUMNS.index("received_at")
    assert any(isinstance(r[at], dt.datetime) for r in plain)  # (times off whole seconds: test_export_text)
    assert all(r[at] is None or type(r[at]) is int for r in micros) and any(r[at] for r in micros)

    def sheet(content: bytes) -> bytes:
        with zipfile.ZipFile(io.BytesIO(content)) as z:
            return z.read("xl/worksheets/sheet1.xml")
    labels = rd.Labels(Translator("sv"), lambda c: check_title(c, "sv"))
    assert sheet(b"".join(rd.export_xlsx(iter(plain)))) == sheet(b"".join(rd.export_xlsx(iter(micros)))) == sheet(api)
    assert sheet(b"".join(rd.export_xlsx_for(labels, iter(plain), sheet="x"))) \
        == sheet(b"".join(rd.export_xlsx_for(labels, iter(micros), sheet="x")))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(list("ab=+-@;, \t\r\n\u00a0\uff1d\x00")), max_size=8),
                min_size=1, max_size=5))
def test_row_scan_agrees_with_each_cell(cells):
    """The one scan per row finds every row where some cell needs making inert."""
    assert spreadsheet.inert_row(list(cells)) == [spreadsheet.inert(c) for c in cells]


def test_machine_rows_are_csv_cells_of_the_records(app_fleet):
    """The export's per-column converters write exactly what csv_cells makes of each
    typed record (the one rule for a machine cell), in the records' order."""
    _app, fleet, _clients = app_fleet
    now = dt.datetime.now(dt.timezone.utc)
    root = fleet.units["Socialförvaltningen"]
    with fleet.store.engine.connect() as conn:
        records = list(rd.export_records(conn, rd.Scope(), root, now))
        rows = list(rd.export_rows(conn, rd.Scope(), root, now))
        unit_ids = {u.path: u.id for u in rd.unit_tree(conn, rd.Scope(), now)}
    assert rows[0] == list(rd.EXPORT_COLUMNS) and len(rows) == len(records) + 1 > 10
    assert rows[1:] == [rd.export.csv_cells(r) for r in records]
    col = rd.EXPORT_COLUMNS.index
    keys = [(unit_ids[r[col("unit")]], r[col("device_id")]) for r in records]
    assert keys == sorted(keys)  # by unit, then device id: the order of the index the query reads


def test_xlsx_writer_stops_at_the_sheet_row_limit():
    from server import xlsx

    header = ["id"]
    assert len(_xlsx(b"".join(xlsx.xlsx_chunks(header, [["a"], ["b"]], max_rows=3)))[0]) == 3  # header + 2
    with pytest.raises(xlsx.TooManyRows):
        b"".join(xlsx.xlsx_chunks(header, [["a"], ["b"], ["c"]], max_rows=3))
    assert xlsx.MAX_ROWS == 1_048_576  # Excel's rows per sheet


@pytest.mark.parametrize("lang", ["sv", "da", "en"])
def test_xlsx_export_beyond_the_row_limit_is_refused_before_any_byte(app_fleet, monkeypatch, lang):
    """More devices than a sheet holds (the limit lowered here, not a million devices
    built): the XLSX is refused with a precise 422 naming the CSV, in the reader's
    language on the page; the CSV still has every row; a filtered export that fits, and
    one of exactly the limit, are written."""
    from server import xlsx
    from server.i18n_web import Translator

    _app, fleet, clients = app_fleet
    so = clients["so_all"]
    eb = fleet.units[EB]  # 7 devices
    monkeypatch.setattr(xlsx, "MAX_ROWS", 7)  # 6 device rows under the header
    r = so.get(f"/api/v1/units/{eb}/export.xlsx")
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "too_many_rows" and "6 devices" in err["message"] and "export.csv" in err["message"]
    page = so.get(f"/units/{eb}/export.xlsx", params={"lang": lang})
    assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
    assert Translator(lang)("export.too_many_rows", limit="6") in page.text.replace("&#39;", "'")
    assert len(_csv(so.get(f"/api/v1/units/{eb}/export.csv").text)) == 8  # header + all 7
    fits = so.get(f"/api/v1/units/{eb}/export.xlsx", params={"state": "ready"})  # counted: fewer than 6
    assert fits.status_code == 200 and 1 < len(_xlsx(fits.content)[0]) <= 7
    monkeypatch.setattr(xlsx, "MAX_ROWS", 8)  # exactly the 7 devices
    assert len(_xlsx(so.get(f"/units/{eb}/export.xlsx", params={"lang": lang}).content)[0]) == 8


def test_an_export_left_halfway_hands_back_a_usable_connection(app_fleet):
    """A download abandoned after its first rows (the batches read ahead on PostgreSQL):
    the connection answers the next query at once, nothing still reading it."""
    from sqlalchemy import text

    _app, fleet, _clients = app_fleet
    now = dt.datetime.now(dt.timezone.utc)
    with fleet.store.engine.connect() as conn:
        records = rd.export_records(conn, rd.Scope(), fleet.units["Socialförvaltningen"], now, batch=2)
        assert len(next(records)) == len(rd.EXPORT_COLUMNS)
        records.close()
        assert conn.execute(text("SELECT 41 + 1")).scalar_one() == 42
        full = list(rd.export_records(conn, rd.Scope(), fleet.units["Socialförvaltningen"], now, batch=2))
        assert full == list(rd.export_records(conn, rd.Scope(), fleet.units["Socialförvaltningen"], now))
