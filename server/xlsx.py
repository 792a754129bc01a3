"""A streamed XLSX writer: one sheet of typed cells, written as SpreadsheetML straight
into a ZIP stream, so a workbook of any length goes out in chunks while its rows are
still being read (memory stays flat, nothing waits for the last row).

Why not a library: openpyxl builds a cell object per value (25,000 devices × 14
columns took 40 s on this machine) and XlsxWriter, even in ``constant_memory`` mode,
about 4 s; the parts written here take well under a second for the same rows. Only what
the exports need is written: inline strings (never formulas, whatever the text starts
with), numbers, date cells (a number with a date format; Excel has no time zones), a
bold frozen header row, column widths and an auto filter.
"""
from __future__ import annotations

import datetime as dt
import itertools
import math
import re
import zipfile
from typing import Any, Callable, Collection, Iterable, Iterator, Sequence

# XML 1.0 allows no C0 control characters but tab, LF and CR (a device could send them),
# nor U+FFFE/U+FFFF; each is shown as U+FFFD.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_PLAIN = re.compile("[^&<>\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]*\\Z")  # nothing to escape or replace
_EPOCH = dt.datetime(1899, 12, 30)  # Excel's day 0 (with its 1900 leap-year quirk, for dates after Feb 1900)
_EPOCH_UTC = _EPOCH.replace(tzinfo=dt.timezone.utc)
_DAY = dt.timedelta(days=1)
_MICROSECOND = dt.timedelta(microseconds=1)
CHUNK = 64 * 1024  # bytes handed on at a time
MAX_ROWS = 1_048_576  # rows an Excel sheet holds (the header row included): Excel cuts a longer one off
_TEXT_CACHE = 2048  # texts per column whose cells are kept (its repeated ones: units, states, checks)
_ROWS_PER_WRITE = 256  # rows joined into one string before they go to the compressor

_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_NS_R = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

_CONTENT_TYPES = (
    _HEAD + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    '</Types>')
_ROOT_RELS = (
    _HEAD + '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>')
_WORKBOOK_RELS = (
    _HEAD + '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    f'<Relationship Id="rId1" Type="{_REL}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{_REL}/styles" Target="styles.xml"/></Relationships>')
# Cell styles: 0 plain, 1 date and time (UTC, as the header says), 2 bold (the header).
_STYLES = (
    _HEAD + f'<styleSheet {_NS}>'
    '<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy\\-mm\\-dd\\ hh:mm"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    '</styleSheet>')


def column_letter(i: int) -> str:
    """1 → A, 27 → AA."""
    out = ""
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(65 + r) + out
    return out


def escape(text: str) -> str:
    """Text as XML character data: markup escaped, characters XML cannot hold replaced."""
    if _PLAIN.match(text):  # nearly every text: one scan, nothing to change
        return text
    if _ILLEGAL.search(text):
        text = _ILLEGAL.sub("\ufffd", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attr(text: str) -> str:
    return escape(text).replace('"', "&quot;")


def sheet_name(name: str) -> str:
    """A name Excel accepts for a sheet: at most 31 characters, none of []:*?/\\."""
    cleaned = re.sub(r"[\[\]:*?/\\]", "-", _ILLEGAL.sub("", name)).strip("'")[:31]
    return cleaned or "Sheet"


class TooManyRows(ValueError):
    """More rows than an Excel sheet holds: the workbook is not written on (the caller
    checks before the first byte; see server.readiness.export.xlsx_fits)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit:,} rows (the header included): more than an Excel sheet holds")
        self.limit = limit


def _text_tail(text: str) -> str:
    """A text cell after its reference. Spaces at either end are kept by saying so
    (``xml:space``), only where there are some: as XlsxWriter and openpyxl write it."""
    if text != text.strip():
        return f'" t="inlineStr"><is><t xml:space="preserve">{escape(text)}</t></is></c>'
    return f'" t="inlineStr"><is><t>{escape(text)}</t></is></c>'


_EMPTY_TAIL = '"/>'  # a cell with nothing in it: what an empty cell reads back as (None), one tail for all


def serial(value: dt.datetime) -> float:
    """A time as Excel's date number: days since its day 0 (aware: counted in UTC; naive: as it is)."""
    return (value - (_EPOCH if value.tzinfo is None else _EPOCH_UTC)) / _DAY


US_PER_DAY = 86_400_000_000
DAY0_TO_UNIX_US = 2_209_161_600_000_000  # from Excel's day 0 to 1970-01-01 (25,569 days), in microseconds


def serial_micros(value: dt.datetime) -> int:
    """A time as the microseconds since Excel's day 0 (aware: in UTC), exactly: divided by
    :data:`US_PER_DAY` it is :func:`serial`'s number, to the last bit (both divide the
    same two integers), so it can be worked out where the time is read (a database)."""
    return (value - (_EPOCH if value.tzinfo is None else _EPOCH_UTC)) // _MICROSECOND


def _tail(value: Any, date: bool = False) -> str:
    """Any cell after its reference: '' and None empty, text as text, datetimes as date
    cells, finite numbers as numbers (in a ``date`` column, floats are date numbers:
    :func:`serial`'s), anything else as its text."""
    if value is None or value == "":
        return _EMPTY_TAIL
    t = type(value)
    if t is str:
        return _text_tail(value)
    if date and t is float and math.isfinite(value):
        return f'" s="1"><v>{value!r}</v></c>'
    if isinstance(value, dt.datetime):
        return f'" s="1"><v>{serial(value)!r}</v></c>'
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return f'"><v>{value!r}</v></c>'
    return _text_tail(str(value))


class _Column:
    """How one column's cells are written, each as its tail (everything after the
    reference) joined to the start of the next cell's tag: a row is then its number
    joined between these pieces (see :func:`xlsx_chunks`). The pieces of texts seen
    before are looked up, not rebuilt (a column's repeated values: units, states, checks)."""

    def __init__(self, after: str, date: bool) -> None:
        self.known: dict[Any, str] = {None: _EMPTY_TAIL + after, "": _EMPTY_TAIL + after}  # str keys only besides
        self.make = self._maker(self.known, after, date)

    @staticmethod
    def _maker(known: dict[Any, str], after: str, date: bool) -> Callable[[Any], str]:
        def make(value: Any) -> str:
            """The piece of a value not looked up (kept for the next time where it is a text)."""
            t = type(value)
            if t is str and value:
                piece = _text_tail(value) + after
                if len(known) < _TEXT_CACHE:
                    known[value] = piece
                return piece
            if date and t is float and value - value == 0.0:  # finite: a date number
                return f'" s="1"><v>{value!r}</v></c>{after}'
            return _tail(value, date) + after
        return make


def _row_pieces(width: int, dates: Collection[int]) -> tuple[list[_Column], str]:
    """The columns of rows ``width`` cells wide, and the row's opening up to the first reference."""
    letters = [column_letter(i) for i in range(1, width + 1)]
    after = [f'<c r="{c}' for c in letters[1:]] + ["</row>"]
    return [_Column(a, i in dates) for i, a in enumerate(after)], ('"><c r="A' if width else '"></row>')


class _Sink:
    """The ZIP's output: collects what the compressor writes until it is handed on. No
    tell or seek, so zipfile streams (sizes in data descriptors after each part)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        self.size = 0
        return out


def xlsx_chunks(header: Sequence[str], rows: Iterable[Sequence[Any]], *, sheet: str = "Devices",
                chunk: int = CHUNK, max_rows: int | None = None, dates: Collection[int] = ()) -> Iterator[bytes]:
    """An XLSX workbook of one sheet, in chunks of about ``chunk`` bytes: a bold, frozen,
    filterable header, then the rows (as wide as the header: cells beyond it are left out,
    missing ones empty). Text is stored as text (never a formula, whatever it starts with),
    datetimes as date cells (aware ones in UTC), numbers as numbers; in the columns
    ``dates`` (0-based), floats are date numbers (:func:`serial`) written as date cells.
    :class:`TooManyRows` where the sheet would pass ``max_rows`` (default: Excel's limit)."""
    max_rows = MAX_ROWS if max_rows is None else max_rows
    width = len(header)
    letters = [column_letter(i) for i in range(1, max(1, width) + 1)]
    columns, opening = _row_pieces(width, dates)
    gets = [c.known.get for c in columns]
    makes = [c.make for c in columns]
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:  # type: ignore[arg-type]
        z.writestr("[Content_Types].xml", _CONTENT_TYPES)
        z.writestr("_rels/.rels", _ROOT_RELS)
        z.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        z.writestr("xl/styles.xml", _STYLES)
        widths = "".join(f'<col min="{i}" max="{i}" width="{max(12, min(40, len(h) + 4))}" customWidth="1"/>'
                         for i, h in enumerate(header, start=1))
        n = 1
        with z.open("xl/worksheets/sheet1.xml", "w") as part:
            head = "".join(f'<c r="{c}1" t="inlineStr" s="2"><is><t xml:space="preserve">{escape(str(h))}</t></is></c>'
                           for c, h in zip(letters, header))
            part.write((_HEAD + f'<worksheet {_NS} {_NS_R}><sheetViews><sheetView workbookViewId="0">'
                        '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
                        '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>'
                        f'<sheetFormatPr defaultRowHeight="15"/>{"<cols>" + widths + "</cols>" if widths else ""}'
                        f'<sheetData><row r="1">{head}</row>').encode())
            buf: list[str] = []
            for row in rows:
                n += 1
                if n > max_rows:
                    raise TooManyRows(max_rows)
                if len(row) != width:
                    row = list(itertools.islice(itertools.chain(row, itertools.repeat(None)), width))
                try:  # most cells: a piece looked up (None, '' and repeated texts), or made once
                    pieces = [get(v) or make(v) for get, make, v in zip(gets, makes, row)]
                except TypeError:  # a value that is no dict key (a list): made, not looked up
                    pieces = [make(v) for make, v in zip(makes, row)]
                buf.append(str(n).join(['<row r="', opening, *pieces]))
                if len(buf) >= _ROWS_PER_WRITE:
                    part.write("".join(buf).encode())
                    buf.clear()
                    if sink.size >= chunk:
                        yield sink.take()
            part.write(("".join(buf) + f'</sheetData><autoFilter ref="A1:{letters[-1]}{n}"/></worksheet>').encode())
        # The workbook part last: the filter's range (a defined name Excel keeps for it) is known now.
        z.writestr("xl/workbook.xml", _HEAD + f'<workbook {_NS} {_NS_R}><sheets>'
                   f'<sheet name="{_attr(sheet_name(sheet))}" sheetId="1" r:id="rId1"/></sheets>'
                   '<definedNames><definedName name="_xlnm._FilterDatabase" localSheetId="0" hidden="1">'
                   f"'{escape(sheet_name(sheet)).replace(chr(39), chr(39) * 2)}'!$A$1:${letters[-1]}${n}"
                   '</definedName></definedNames></workbook>')
    yield sink.take()
