"""Spreadsheet files that are safe to open: CSV (every cell quoted, every cell a
spreadsheet would evaluate made inert) and XLSX (every value a typed cell, never a
formula). Knows nothing of devices: rows in, bytes or text out."""
from __future__ import annotations

import csv
import itertools
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

from server import xlsx

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


# The same test over a whole row, each cell preceded by a NUL (which no separator pattern
# spans): a cell's start and a separator inside it look alike, so one scan of the row
# finds whether any of its cells needs :func:`inert`.
_ROW = re.compile(r"[\x00;,\t\r\n][\s\u00a0]*[=+\-@\uff1d\uff0b\uff0d\uff20]|\x00[\t\r\n]")


def inert_row(cells: list[str]) -> list[str]:
    """:func:`inert` of every cell, with one scan of the row where none needs it."""
    if _ROW.search("\x00" + "\x00".join(cells)) is None:
        return cells
    return [inert(c) for c in cells]


@dataclass(frozen=True)
class CsvStyle:
    """How a CSV is written: the field separator, and whether it starts with a UTF-8 BOM
    (what Excel needs to read UTF-8 when the file is opened by double-click)."""

    delimiter: str
    bom: bool


RFC4180 = CsvStyle(",", False)  # machines, the API, English Excel
NORDIC_EXCEL = CsvStyle(";", True)  # Swedish and Danish Excel: ';' is their list separator


CSV_CHUNK = 64 * 1024  # characters per chunk handed to the server: one send per chunk, not per row
_ROWS_PER_BLOCK = 256


class _Text:
    """What csv.writer writes to: its lines, kept until a chunk is handed on."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    def write(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)

    def take(self) -> str:
        out = "".join(self.parts)
        self.parts.clear()
        self.size = 0
        return out


def csv_lines(rows: Iterable[Sequence[Any]], style: CsvStyle = RFC4180, *, chunk: int = CSV_CHUNK,
              made_inert: bool = False) -> Iterator[str]:
    """The rows as CSV text, written by csv.writer (every cell quoted, CRLF line ends; None
    an empty cell), every cell made :func:`inert`, in chunks of whole lines of about
    ``chunk`` characters (a block of rows at a time); ``made_inert``: the cells went
    through :func:`inert` already."""
    out = _Text()
    if style.bom:
        out.write("\ufeff")
    writer = csv.writer(out, delimiter=style.delimiter, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    lines = iter(rows)
    while True:
        block = list(itertools.islice(lines, _ROWS_PER_BLOCK))
        if not block:
            break
        writer.writerows(block if made_inert else [inert_row(list(row)) for row in block])
        if out.size >= chunk:
            yield out.take()
    if out.parts:
        yield out.take()


def xlsx_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]], *, sheet: str = "Devices") -> bytes:
    """An XLSX workbook of one sheet (see :func:`server.xlsx.xlsx_chunks`), whole."""
    return b"".join(xlsx.xlsx_chunks(header, rows, sheet=sheet))


xlsx_chunks = xlsx.xlsx_chunks  # the workbook streamed, for a response of any length
