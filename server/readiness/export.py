"""Exports of a unit's devices: the rows (one per device, the filters on screen applied)
and how they are written for a machine (the API: RFC 4180 CSV, column keys, raw values)
or for a person (their language's headers and values; ';' and a BOM for Swedish and
Danish Excel; XLSX). The file formats themselves are :mod:`server.spreadsheet`'s."""
from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from sqlalchemy import select
from sqlalchemy.engine import Connection

from server import spreadsheet
from server.readiness.cover import exception_cover
from server.readiness.devices import DeviceRow, device_filters, device_row
from server.readiness.scope import Scope, scope_unit_ids, visible_unit
from server.readiness.state import DEFAULT_MAX_REPORT_AGE_HOURS, device_state_rows
from server.readiness.versions import agent_versions

EXPORT_COLUMNS = ("device_id", "hostname", "unit", "state", "last_seen", "received_at", "failing_checks",
                  "excepted_checks", "platform", "os", "agent_version", "agent_outdated", "failing_since",
                  "due_until")
CSV_COLUMNS = EXPORT_COLUMNS  # the name the API has always documented
LIST_COLUMNS = frozenset({"failing_checks", "excepted_checks"})
TIME_COLUMNS = frozenset({"last_seen", "received_at", "failing_since", "due_until"})
BOOL_COLUMNS = frozenset({"agent_outdated"})
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class ExportFilters:
    """The device filters of the unit page, applied to the export the same way."""

    state: str | None = None
    check: str | None = None
    os: str | None = None


def _values(d: DeviceRow) -> tuple[Any, ...]:
    return (d.id, d.hostname, d.unit_path, d.state, d.last_seen, d.received_at, d.failing_checks,
            d.excepted_checks, d.platform, d.os, d.agent_version, d.agent_outdated, d.failing_since,
            d.due_until)


EXPORT_BATCH = 2000  # rows fetched from the cursor at a time


def export_records(conn: Connection, scope: Scope, unit_id: int, now: dt.datetime, *,
                   filters: ExportFilters = ExportFilters(), min_agent_version: str | None = None,
                   batch: int = EXPORT_BATCH,
                   default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> Iterator[tuple[Any, ...]]:
    """One tuple of typed values (see EXPORT_COLUMNS) per active device in the unit's
    subtree that passes ``filters``, by device id; streamed in batches, so memory stays
    flat for any fleet."""
    unit = visible_unit(conn, scope, unit_id)
    root = unit["path"]
    newest = agent_versions(conn, scope, root, now, minimum=min_agent_version).newest
    ids = scope_unit_ids(conn, Scope(unit_path=root))
    cover = exception_cover(conn, now, ids)
    ds = device_state_rows(conn, scope, now, unit_ids=ids, cover=cover,
                           default_max_age_hours=default_max_age_hours).subquery("ds")
    conds = device_filters(ds, state=filters.state, check=filters.check, os=filters.os)
    # One query, read through a server-side cursor (the states are computed once, not once
    # per page). The failing required checks come with each row (device_state keeps them at
    # ingest, the same list the state is judged on) and the few active exceptions are in
    # ``cover``: no lookup per batch or per check.
    # (Options on the statement: on the connection they would stream every later query too.)
    q = (select(ds).where(*conds).order_by(ds.c.id)
         .execution_options(stream_results=True, yield_per=batch))
    for part in conn.execute(q).mappings().partitions(batch):
        for r in part:
            failing, excepted = cover.split(r["failing_required"], r["unit_id"], r["id"])
            yield _values(device_row(r, failing, excepted, newest))


def csv_cells(values: Iterable[Any]) -> list[str]:
    """The cells of one row of the machine export: '' for none, yes/no, ISO 8601 UTC
    times, lists joined with ';'; text a spreadsheet would evaluate is made inert."""
    out: list[str] = []
    for v in values:
        t = type(v)
        if t is str:  # most cells: first, without the checks below
            out.append(v)
        elif v is None:
            out.append("")
        elif t is bool:
            out.append("yes" if v else "no")
        elif isinstance(v, dt.datetime):
            out.append(v.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z"))
        elif isinstance(v, (list, tuple)):
            out.append(";".join(map(str, v)))  # inert_row guards each part after a ';'
        else:
            out.append(str(v))
    return spreadsheet.inert_row(out)


def csv_cell(value: Any) -> str:
    """One cell of the machine export (see :func:`csv_cells`)."""
    return csv_cells((value,))[0]


def export_rows(conn: Connection, scope: Scope, unit_id: int, now: dt.datetime, **kwargs: Any) -> Iterator[list[str]]:
    """The machine export: the column keys, then one row of :func:`csv_cells` text per device."""
    yield list(EXPORT_COLUMNS)
    for values in export_records(conn, scope, unit_id, now, **kwargs):
        yield csv_cells(values)


def export_csv(conn: Connection, scope: Scope, unit_id: int, now: dt.datetime, *,
               style: spreadsheet.CsvStyle = spreadsheet.RFC4180, **kwargs: Any) -> Iterator[str]:
    """The machine export as CSV text chunks (every cell quoted, CRLF)."""
    return spreadsheet.csv_lines(export_rows(conn, scope, unit_id, now, **kwargs), style, made_inert=True)


# ------------------------------------------------------------------ for a person


def csv_style_for(lang: str) -> spreadsheet.CsvStyle:
    """Swedish and Danish Excel split on ';' and need a BOM to read UTF-8; English on ','."""
    return spreadsheet.NORDIC_EXCEL if lang in ("sv", "da") else spreadsheet.RFC4180


class Labels:
    """Headers and values in a person's language, from the dashboard's catalogue
    (``t``: key → text) and the check titles (``check_title``: id → title). Each text is
    looked up once per export, not once per cell."""

    def __init__(self, t: Callable[..., str], check_title: Callable[[str], str]) -> None:
        self.t = t
        self.check_title = check_title
        self._states: dict[str, str] = {}
        self._checks: dict[str, str] = {}

    def header(self) -> list[str]:
        return [self.t(f"export.col.{c}") for c in EXPORT_COLUMNS]

    def _state(self, value: str) -> str:
        text = self._states.get(value)
        if text is None:
            text = self._states[value] = self.t(f"state.{value}")
        return text

    def _check(self, check_id: str) -> str:
        text = self._checks.get(check_id)
        if text is None:
            title = self.check_title(check_id)
            text = self._checks[check_id] = f"{title} ({check_id})" if title != check_id else check_id
        return text

    def converters(self, *, text_times: bool) -> list[Callable[[Any], Any]]:
        """Per column of EXPORT_COLUMNS: its value as the person reads it ('' for none;
        states, yes/no and check titles in their language; times as text or as datetimes)."""
        yes, no = self.t("yes"), self.t("no")

        def time_text(v: Any) -> str:  # "2030-06-15 12:00" (UTC); isoformat is several times faster than strftime
            return "" if v is None else v.astimezone(dt.timezone.utc).isoformat(" ", "minutes")[:16]

        def by_column(column: str) -> Callable[[Any], Any]:
            if column == "state":
                return self._state
            if column in LIST_COLUMNS:
                return lambda v: "; ".join(map(self._check, v))
            if column in TIME_COLUMNS:
                return time_text if text_times else (lambda v: "" if v is None else v)
            if column in BOOL_COLUMNS:
                return lambda v: "" if v is None else yes if v else no
            return lambda v: "" if v is None else v
        return [by_column(c) for c in EXPORT_COLUMNS]

    def rows(self, records: Iterator[tuple[Any, ...]], *, text_times: bool) -> Iterator[list[Any]]:
        convert = self.converters(text_times=text_times)
        for rec in records:
            yield [f(v) for f, v in zip(convert, rec)]


def export_csv_for(labels: Labels, lang: str, records: Iterator[tuple[Any, ...]]) -> Iterator[str]:
    """A person's CSV: translated header and values, in their Excel's dialect."""
    rows = labels.rows(records, text_times=True)
    return spreadsheet.csv_lines(itertools.chain([labels.header()], rows), csv_style_for(lang))


def export_xlsx_for(labels: Labels, records: Iterator[tuple[Any, ...]], *, sheet: str) -> Iterator[bytes]:
    """A person's XLSX, streamed: translated header and values, times as date cells (UTC)."""
    return spreadsheet.xlsx_chunks(labels.header(), labels.rows(records, text_times=False), sheet=sheet)


def export_xlsx(records: Iterator[tuple[Any, ...]], *, sheet: str = "devices") -> Iterator[bytes]:
    """The machine XLSX, streamed: column keys, raw values (lists joined with ';')."""
    rows = ([";".join(v) if isinstance(v, list) else v for v in rec] for rec in records)
    return spreadsheet.xlsx_chunks(list(EXPORT_COLUMNS), rows, sheet=sheet)


def export_filename(unit_path: str, now: dt.datetime, ext: str) -> str:
    """devices-<unit path in ASCII>-<date>.<ext>: safe in a Content-Disposition header."""
    stem = "".join(c if c.isalnum() else "-" for c in unit_path.encode("ascii", "replace").decode()).strip("-")[:80]
    return f"devices-{stem}-{now.date().isoformat()}.{ext}"
