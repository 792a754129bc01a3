"""The exports' text, made cheaply and still the same: times written by PostgreSQL
(to_char) are the characters Python wrote before, and the XLSX date numbers it works out
(EXCEL_MICROS) the floats Python worked out before, whatever the session's time zone and
across daylight-saving changes; the CSV writer writes what csv.writer (QUOTE_ALL, CRLF)
wrote, cells made inert as before."""
from __future__ import annotations

import csv
import datetime as dt
import io
import os
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server import spreadsheet, xlsx
from server.readiness.export import EXCEL_MICROS, ISO_UTC, MINUTES_UTC, serial_days

UTC = dt.timezone.utc


def _old_iso(v: dt.datetime) -> str:  # the machine export's rendering before the database wrote it
    return v.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _old_minutes(v: dt.datetime) -> str:  # a person's CSV before
    return v.astimezone(UTC).isoformat(" ", "minutes")[:16]


def _instants() -> list[dt.datetime]:
    """Instants around the daylight-saving changes of the zones exports are read in (and
    of zones with half-hour and 45-minute offsets), on and off whole seconds."""
    out = []
    for zone, days in [("Europe/Stockholm", [(2026, 3, 29), (2026, 10, 25)]),
                       ("Europe/Copenhagen", [(2025, 3, 30), (2025, 10, 26)]),
                       ("America/St_Johns", [(2026, 3, 8), (2026, 11, 1)]),
                       ("Australia/Lord_Howe", [(2026, 4, 5), (2026, 10, 4)]),
                       ("Pacific/Chatham", [(2026, 4, 5)])]:
        tz = ZoneInfo(zone)
        for y, m, d in days:
            for hour in (0, 1, 2, 3):
                for minute, second, micro in ((0, 0, 0), (59, 59, 999_999), (30, 0, 1), (15, 7, 500_000)):
                    for fold in (0, 1):  # both readings of a local hour that happens twice
                        out.append(dt.datetime(y, m, d, hour, minute, second, micro, tzinfo=tz, fold=fold))
    out += [dt.datetime(2000, 1, 1, tzinfo=UTC), dt.datetime(2030, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
            dt.datetime(1999, 12, 31, 23, 59, 0, 100, tzinfo=ZoneInfo("Asia/Kathmandu"))]
    return out


def _old_serial(v: dt.datetime) -> float:  # an XLSX date cell's number before the database worked it out
    return (v.astimezone(UTC).replace(tzinfo=None) - dt.datetime(1899, 12, 30)) / dt.timedelta(days=1)


def test_excel_micros_give_the_date_number_the_datetime_gave():
    """The microseconds since Excel's day 0, divided by a day's, are the very float the
    datetime's own arithmetic gave (not one bit off), for aware and naive times."""
    for v in _instants():
        assert serial_days(EXCEL_MICROS.render(v)) == _old_serial(v) == xlsx.serial(v)
        naive = v.astimezone(UTC).replace(tzinfo=None)
        assert xlsx.serial_micros(naive) / xlsx.US_PER_DAY == xlsx.serial(naive) == _old_serial(v)
    assert EXCEL_MICROS.render(dt.datetime(1970, 1, 1, tzinfo=UTC)) == xlsx.DAY0_TO_UNIX_US == 25_569 * xlsx.US_PER_DAY
    assert serial_days(None) == "" and serial_days(dt.datetime(2030, 1, 1)) == dt.datetime(2030, 1, 1)


@settings(max_examples=500, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1900, 3, 1), max_value=dt.datetime(2200, 1, 1),
                    timezones=st.sampled_from([UTC, ZoneInfo("Europe/Stockholm"), ZoneInfo("Asia/Kathmandu")])))
def test_excel_micros_any_instant(v):
    assert serial_days(EXCEL_MICROS.render(v)) == _old_serial(v)


def test_python_rendering_is_the_old_one():
    for v in _instants():
        assert ISO_UTC.render(v) == _old_iso(v)
        assert MINUTES_UTC.render(v) == _old_minutes(v)
    assert ISO_UTC.render(dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)) == "2026-03-29T01:00:00Z"
    assert ISO_UTC.render(dt.datetime(2026, 10, 25, 2, 30, 0, 1, tzinfo=ZoneInfo("Europe/Stockholm"), fold=1)) \
        == "2026-10-25T01:30:00.000001Z"
    assert MINUTES_UTC.render(dt.datetime(2026, 10, 25, 2, 59, 59, 999_999, tzinfo=ZoneInfo("Europe/Stockholm"))) \
        == "2026-10-25 00:59"  # cut to the minute, not rounded


@pytest.mark.postgres
@pytest.mark.parametrize("session_zone", ["UTC", "Europe/Stockholm", "Europe/Copenhagen", "America/St_Johns",
                                          "Australia/Lord_Howe", "Asia/Kathmandu"])
def test_postgresql_writes_the_old_text_in_any_session_time_zone(session_zone):
    """What the database writes for each instant (stored as timestamptz) equals the old
    Python text, whatever TimeZone the collector's session runs in."""
    from sqlalchemy import Column, DateTime, Integer, MetaData, Table, insert, select, text

    from server.db import make_engine

    base = os.environ.get("AUDITAGENT_TEST_PG_URL")
    if not base:
        pytest.skip("AUDITAGENT_TEST_PG_URL is not set (CI sets it with .ci/start-postgres.sh)")
    instants = _instants()
    t = Table("export_times", MetaData(), Column("n", Integer, primary_key=True),
              Column("at", DateTime(timezone=True)), prefixes=["TEMPORARY"])
    engine = make_engine(base)
    try:
        with engine.connect() as conn:
            conn.execute(text(f"SET TIME ZONE '{session_zone}'"))
            t.create(conn)
            conn.execute(insert(t), [{"n": i, "at": v} for i, v in enumerate(instants)])
            got = conn.execute(select(t.c.n, ISO_UTC.sql(t.c.at), MINUTES_UTC.sql(t.c.at), EXCEL_MICROS.sql(t.c.at))
                               .order_by(t.c.n)).all()
            conn.rollback()
    finally:
        engine.dispose()
    assert [(iso, minutes) for _n, iso, minutes, _us in got] == [(_old_iso(v), _old_minutes(v)) for v in instants]
    assert [us for *_text, us in got] == [EXCEL_MICROS.render(v) for v in instants]
    assert [serial_days(us) for *_text, us in got] == [_old_serial(v) for v in instants]


def _old_csv(rows: list[list[str]], style: spreadsheet.CsvStyle) -> str:
    """The CSV as csv.writer wrote it (the writer before this one), cells made inert."""
    buf = io.StringIO()
    if style.bom:
        buf.write("\ufeff")
    w = csv.writer(buf, delimiter=style.delimiter, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    w.writerows([spreadsheet.inert_row(list(r)) for r in rows])
    return buf.getvalue()


CELLS = st.text(alphabet=st.sampled_from(list('ab"=+-@;, \t\r\n\u00a0\uff1d\x00é')), max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(CELLS, min_size=0, max_size=6), max_size=12), st.sampled_from([spreadsheet.RFC4180,
                                                                                      spreadsheet.NORDIC_EXCEL]))
def test_csv_writer_writes_what_csv_writer_wrote(rows, style):
    assert "".join(spreadsheet.csv_lines(rows, style)) == _old_csv(rows, style)


@pytest.mark.parametrize("evil_at", [None, 0, 255, 256, 700, 999])
def test_one_cell_to_make_inert_in_a_long_file(evil_at):
    """Rows are written a block at a time: the one cell holding a formula is made inert
    wherever it stands, everything else is written as it is; the chunks are whole lines (a
    block of 256 rows at least)."""
    rows = [[f"dev-{i:05d}", f"PC-{i}", "Enhet/Team 1", "2026-12-01T18:44:57Z", "os-updates;firewall", 'a "q"']
            for i in range(1000)]
    if evil_at is not None:
        rows[evil_at][1] = " =HYPERLINK(\"x\")"
    for style in (spreadsheet.RFC4180, spreadsheet.NORDIC_EXCEL):
        chunks = list(spreadsheet.csv_lines(rows, style, chunk=4096))
        assert len(chunks) == 4 and all(c.endswith("\r\n") for c in chunks)
        assert "".join(chunks) == _old_csv(rows, style)
    if evil_at is not None:
        assert "\"' =HYPERLINK" in "".join(spreadsheet.csv_lines(rows))


def test_non_text_cells_are_written_as_csv_writer_wrote_them():
    rows = [[None, 1, 2.5, "x"], []]
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(rows)
    assert "".join(spreadsheet.csv_lines(rows, made_inert=True)) == buf.getvalue()
