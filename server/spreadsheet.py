"""Spreadsheet files that are safe to open: CSV (every cell quoted, every cell a
spreadsheet would evaluate made inert) and XLSX (every value a typed cell, never a
formula). Knows nothing of devices: rows in, bytes or text out."""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

# What makes Excel, LibreOffice or Numbers read a cell as a formula (or DDE), also after
# leading blanks; and the separators after which a spreadsheet may start a new cell when
# it splits text on its own list separator (Swedish and Danish Excel use ';').
_FORMULA = re.compile(r"^[\s\u00a0]*[=+\-@\uff1d\uff0b\uff0d\uff20]|^[\t\r\n]")
_INNER = re.compile(r"([;,\t\r\n][\s\u00a0]*)(?=[=+\-@\uff1d\uff0b\uff0d\uff20])")


_EITHER = re.compile(_FORMULA.pattern + r"|[;,\t\r\n][\s\u00a0]*[=+\-@\uff1d\uff0b\uff0d\uff20]")


def inert(text: str) -> str:
    """``text`` as a spreadsheet shows it but never evaluates: a leading apostrophe where
    the cell would start a formula, and one after every separator where a part of it would."""
    if _EITHER.search(text) is None:  # nearly every cell: one scan, nothing to change
        return text
    if _FORMULA.match(text):
        text = "'" + text
    return _INNER.sub(r"\1'", text)


@dataclass(frozen=True)
class CsvStyle:
    """How a CSV is written: the field separator, and whether it starts with a UTF-8 BOM
    (what Excel needs to read UTF-8 when the file is opened by double-click)."""

    delimiter: str
    bom: bool


RFC4180 = CsvStyle(",", False)  # machines, the API, English Excel
NORDIC_EXCEL = CsvStyle(";", True)  # Swedish and Danish Excel: ';' is their list separator


CSV_CHUNK = 64 * 1024  # characters per chunk handed to the server: one send per chunk, not per row


def csv_lines(rows: Iterable[Sequence[str]], style: CsvStyle = RFC4180, *, chunk: int = CSV_CHUNK,
              made_inert: bool = False) -> Iterator[str]:
    """The rows as CSV text (every cell quoted, CRLF line ends), in chunks of whole lines
    of about ``chunk`` characters; ``made_inert``: the cells went through :func:`inert` already."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=style.delimiter, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    if style.bom:
        buf.write("\ufeff")
    for row in rows:
        writer.writerow(row if made_inert else [inert(c) for c in row])
        if buf.tell() >= chunk:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    if buf.tell():
        yield buf.getvalue()


def xlsx_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]], *, sheet: str = "Devices") -> bytes:
    """An XLSX workbook of one sheet: a bold, frozen, filterable header, then the rows.
    Text is stored as text (never a formula, whatever it starts with), datetimes as dates."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(ILLEGAL_CHARACTERS_RE.sub("", sheet)[:31] or "Sheet")
    ws.freeze_panes = "A2"

    def cell(value: Any, **style: Any) -> WriteOnlyCell:
        if isinstance(value, dt.datetime):
            # Excel has no time zones: the header says which one (UTC).
            c = WriteOnlyCell(ws, value.astimezone(dt.timezone.utc).replace(tzinfo=None))
            c.number_format = "yyyy-mm-dd hh:mm"
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            c = WriteOnlyCell(ws, value)
        elif value is None:
            c = WriteOnlyCell(ws, None)
        else:
            # Control characters are not allowed in the XML; a device could send them.
            c = WriteOnlyCell(ws, ILLEGAL_CHARACTERS_RE.sub("\ufffd", str(value)))
            c.data_type = "s"  # openpyxl would take text starting with '=' for a formula
        for k, v in style.items():
            setattr(c, k, v)
        return c

    for i, h in enumerate(header, start=1):
        ws.column_dimensions[get_column_letter(i)].width = max(12, min(40, len(h) + 4))
    ws.append([cell(h, font=Font(bold=True)) for h in header])
    n = 0
    for row in rows:  # streamed: a write-only sheet keeps no rows in memory
        ws.append([cell(v) for v in row])
        n += 1
    ws.auto_filter.ref = f"A1:{get_column_letter(max(1, len(header)))}{n + 1}"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
