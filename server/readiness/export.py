"""Exports of a unit's devices: the rows (one per device, the filters on screen applied)
and how they are written for a machine (the API: RFC 4180 CSV, column keys, raw values)
or for a person (their language's headers and values; ';' and a BOM for Swedish and
Danish Excel; XLSX). The file formats themselves are :mod:`server.spreadsheet`'s."""
from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from sqlalchemy import BigInteger, case, cast, extract, func, literal_column, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from server import spreadsheet, xlsx
from server.db import device_state, utc
from server.readiness.cover import Cover, exception_cover
from server.readiness.devices import device_filters, is_outdated, shown_run
from server.readiness.read_ahead import read_ahead
from server.readiness.scope import Scope, scope_unit_ids, visible_unit
from server.readiness.sql import dialect
from server.readiness.state import DEFAULT_MAX_REPORT_AGE_HOURS, device_state_rows
from server.readiness.versions import agent_versions

EXPORT_COLUMNS = ("device_id", "hostname", "unit", "state", "last_seen", "received_at", "failing_checks",
                  "excepted_checks", "platform", "os", "agent_version", "agent_outdated", "failing_since",
                  "due_until")
CSV_COLUMNS = EXPORT_COLUMNS  # the name the API has always documented
TIME_COLUMNS = frozenset({"last_seen", "received_at", "failing_since", "due_until"})
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class ExportFilters:
    """The device filters of the unit page, applied to the export the same way."""

    state: str | None = None
    check: str | None = None
    os: str | None = None


_UTC = dt.timezone.utc


def _iso_utc(v: dt.datetime | None) -> str:
    if v is None:
        return ""
    if v.tzinfo is not _UTC:  # export_records hands out UTC already; anything else is converted
        v = v.astimezone(_UTC)
    return v.isoformat().replace("+00:00", "Z")


def _minutes_utc(v: dt.datetime) -> str:  # isoformat is several times faster than strftime
    return (v if v.tzinfo is _UTC else v.astimezone(_UTC)).isoformat(" ", "minutes")[:16]


@dataclass(frozen=True)
class TimeText:
    """How an export writes a time as text, one rule in two places: ``render`` in Python
    (any database; an aware datetime in) and PostgreSQL's ``to_char`` formats giving the
    same characters, so the database writes the text while it reads the row and the
    collector converts no datetime at all (4 per row were most of the machine CSV's
    Python work). ``whole``: the format of a time on a whole second, ``fraction`` of one
    with microseconds (Python's isoformat writes them only when there are some)."""

    render: Callable[[dt.datetime], str]
    whole: str
    fraction: str

    def sql(self, column: Any) -> ColumnElement[str]:
        """``column`` (timestamptz) as this text, in UTC whatever the session's time zone."""
        utc_time = func.timezone("UTC", column)
        if self.whole == self.fraction:
            return func.to_char(utc_time, self.whole)
        return func.to_char(utc_time, case((func.date_trunc("second", utc_time) == utc_time, self.whole),
                                           else_=self.fraction))


# The machine export's times: ISO 8601 in UTC, "2030-06-15T12:00:00Z" (".123456" when not whole).
ISO_UTC = TimeText(_iso_utc, 'YYYY-MM-DD"T"HH24:MI:SS"Z"', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
# A person's CSV: "2030-06-15 12:00", UTC as the header says (cut to the minute, not rounded).
MINUTES_UTC = TimeText(_minutes_utc, "YYYY-MM-DD HH24:MI", "YYYY-MM-DD HH24:MI")

@dataclass(frozen=True)
class TimeMicros:
    """An export's time as what an XLSX date cell is made of: the microseconds since
    Excel's day 0 in UTC (:func:`server.xlsx.serial_micros`), an int, exact; worked out by
    PostgreSQL while it reads the row (``sql``) or in Python (``render``, any database).
    Reading an int is far cheaper than reading a timestamptz into a datetime, and the
    date number made of it (:func:`serial_days`) is the one the datetime gave."""

    def render(self, v: dt.datetime) -> int:
        return xlsx.serial_micros(v)

    def sql(self, column: Any) -> ColumnElement[int]:
        # EXTRACT(epoch) of a timestamptz is UTC seconds, numeric with its microseconds (exact).
        return cast(extract("epoch", column) * literal_column("1000000"), BigInteger) \
            + literal_column(str(xlsx.DAY0_TO_UNIX_US))


EXCEL_MICROS = TimeMicros()


def serial_days(v: Any) -> Any:
    """An export time for an XLSX date cell: ``EXCEL_MICROS``' int as Excel's day number
    (:func:`server.xlsx.serial`'s), a datetime as it is (the writer converts it), None as ''."""
    if type(v) is int:
        return v / xlsx.US_PER_DAY
    return "" if v is None else v


# What the export reads of each device, in this order (see export_records).
_READ = ("id", "hostname", "unit_path", "state", "generated_at", "received_at", "failing_required", "unit_id",
         "platform", "os", "agent_version", "failing_since", "due_until")
_TIMES_READ = frozenset({"generated_at", "received_at", "failing_since", "due_until"})
EXPORT_BATCH = 2000  # rows fetched from the cursor at a time (the first byte waits for the first batch)


def _export_query(conn: Connection, scope: Scope, unit_id: int, now: dt.datetime, *, filters: ExportFilters,
                  min_agent_version: str | None, default_max_age_hours: int,
                  times: TimeText | TimeMicros | None = None) -> tuple[Select, Cover, str | None]:
    """The export's one query (the columns of _READ; ``times``: the time columns as that
    text, written by the database), the exceptions in force and the newest agent version
    of the unit's subtree."""
    unit = visible_unit(conn, scope, unit_id)
    root = unit["path"]
    newest = agent_versions(conn, scope, root, now, minimum=min_agent_version).newest
    ids = scope_unit_ids(conn, Scope(unit_path=root))
    cover = exception_cover(conn, now, ids)
    ds = device_state_rows(conn, scope, now, unit_ids=ids, cover=cover,
                           default_max_age_hours=default_max_age_hours).subquery("ds")
    conds = device_filters(ds, state=filters.state, check=filters.check, os=filters.os)
    cols = [times.sql(ds.c[c]).label(c) if times is not None and c in _TIMES_READ else ds.c[c] for c in _READ]
    # In the order of the index on device_state (unit_id, device_id): nothing is sorted.
    return select(*cols).where(*conds).order_by(ds.c.unit_id, ds.c.id), cover, newest


def _as_is(value: Any) -> Any:
    return value


def export_records(conn: Connection, scope: Scope, unit_id: int, now: dt.datetime, *,
                   filters: ExportFilters = ExportFilters(), min_agent_version: str | None = None,
                   batch: int = EXPORT_BATCH, times: TimeText | TimeMicros | None = None,
                   default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> Iterator[tuple[Any, ...]]:
    """One tuple of typed values (see EXPORT_COLUMNS; times timezone-aware, or with
    ``times`` that text or int, None where there is none) per active device in the unit's
    subtree that passes ``filters``, by unit (id), then device id; streamed in batches,
    so memory stays flat for any fleet."""
    on_pg = dialect(conn) == "postgresql"
    q, cover, newest = _export_query(conn, scope, unit_id, now, filters=filters, min_agent_version=min_agent_version,
                                     default_max_age_hours=default_max_age_hours, times=times if on_pg else None)
    # One query, read through a server-side cursor in batches (each state computed once,
    # not once per page). The failing required checks come with each row (device_state
    # keeps them at ingest, the same list the state is judged on) and the few active
    # exceptions are in ``cover``: no lookup per batch or per check.
    # (Options on the statement: on the connection they would stream every later query too.)
    q = q.execution_options(stream_results=True, yield_per=batch)
    split = cover.split
    outdated: dict[str | None, bool] = {}  # per agent version (a handful), judged once
    result = conn.execute(q)
    batches: Iterator[Any] = result.partitions(batch)
    aware: Callable[[Any], Any] = utc  # SQLite hands out naive UTC datetimes
    if times is not None and not on_pg:
        render = times.render
        aware = lambda v: v and render(utc(v))  # noqa: E731 - the text PostgreSQL writes (TimeText)
    if on_pg:  # the database works out the next batch while this one is written
        batches = read_ahead(batches, result.close)
        aware = _as_is  # aware already (in the session's zone; each writer converts once), or text
    for rows in batches:
        for id_, host, path, state, generated, received, failing_required, uid, platform, os_, version, since, due \
                in rows:
            failing, excepted = split(failing_required, uid, id_)
            old = outdated.get(version)
            if old is None:
                old = outdated[version] = is_outdated(version, newest)
            since, due = shown_run(state, since, due)
            yield (id_, host, path, state, aware(generated), aware(received), failing, excepted, platform, os_,
                   version, old, since and aware(since), due and aware(due))


def export_fits(conn: Connection, scope: Scope, unit_id: int, now: dt.datetime, limit: int, *,
                filters: ExportFilters = ExportFilters(), min_agent_version: str | None = None,
                default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> bool:
    """Whether the export has at most ``limit`` rows: asked before the first byte of a
    format with a row limit (XLSX). The subtree's devices are counted off the index
    first; only a subtree larger than the limit has its filtered rows counted."""
    ids = scope_unit_ids(conn, Scope(unit_path=visible_unit(conn, scope, unit_id)["path"]))
    s = device_state
    if conn.execute(select(func.count()).select_from(s).where(s.c.unit_id.in_(ids))).scalar_one() <= limit:
        return True
    q, _cover, _newest = _export_query(conn, scope, unit_id, now, filters=filters, min_agent_version=min_agent_version,
                                       default_max_age_hours=default_max_age_hours)
    return conn.execute(select(func.count()).select_from(q.order_by(None).subquery())).scalar_one() <= limit


def xlsx_max_devices() -> int:
    """The device rows an XLSX export holds: an Excel sheet's rows under the header."""
    return xlsx.MAX_ROWS - 1


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
            out.append(_iso_utc(v))
        elif isinstance(v, (list, tuple)):
            out.append(";".join(map(str, v)))  # inert_row guards each part after a ';'
        else:
            out.append(str(v))
    return spreadsheet.inert_row(out)


def csv_cell(value: Any) -> str:
    """One cell of the machine export (see :func:`csv_cells`)."""
    return csv_cells((value,))[0]


def _machine_text(rec: tuple[Any, ...]) -> list[str]:
    """One record of ``export_records(times=ISO_UTC)`` as :func:`csv_cells`' text, before
    it is made inert: one call per row, not one per cell (the text columns are text or
    None, the times text already)."""
    id_, host, path, state, seen, received, failing, excepted, platform, os_, version, old, since, due = rec
    return [id_, host or "", path or "", state, seen or "", received or "", ";".join(failing), ";".join(excepted),
            platform or "", os_ or "", version or "", "yes" if old else "no", since or "", due or ""]


def _machine_rows(conn: Connection, scope: Scope, unit_id: int, now: dt.datetime,
                  **kwargs: Any) -> Iterator[list[str]]:
    return map(_machine_text, export_records(conn, scope, unit_id, now, times=ISO_UTC, **kwargs))


def export_rows(conn: Connection, scope: Scope, unit_id: int, now: dt.datetime, **kwargs: Any) -> Iterator[list[str]]:
    """The machine export: the column keys, then one row of :func:`csv_cells` text per device."""
    yield list(EXPORT_COLUMNS)
    yield from map(spreadsheet.inert_row, _machine_rows(conn, scope, unit_id, now, **kwargs))


def export_csv(conn: Connection, scope: Scope, unit_id: int, now: dt.datetime, *,
               style: spreadsheet.CsvStyle = spreadsheet.RFC4180, **kwargs: Any) -> Iterator[str]:
    """The machine export as CSV text chunks (every cell quoted, CRLF): :func:`export_rows`,
    made inert by the writer a block of rows at a time."""
    rows = itertools.chain([list(EXPORT_COLUMNS)], _machine_rows(conn, scope, unit_id, now, **kwargs))
    return spreadsheet.csv_lines(rows, style)


# ------------------------------------------------------------------ for a person


def csv_style_for(lang: str) -> spreadsheet.CsvStyle:
    """Swedish and Danish Excel split on ';' and need a BOM to read UTF-8; English on ','."""
    return spreadsheet.NORDIC_EXCEL if lang in ("sv", "da") else spreadsheet.RFC4180


class _Looked(dict):  # type: ignore[type-arg]
    """text → translated text, each looked up on first use only (``dict[key]`` is all a cell costs)."""

    def __init__(self, look: Callable[[str], str]) -> None:
        super().__init__()
        self.look = look

    def __missing__(self, key: str) -> str:
        text = self[key] = self.look(key)
        return text


class Labels:
    """Headers and values in a person's language, from the dashboard's catalogue
    (``t``: key → text) and the check titles (``check_title``: id → title). Each text is
    looked up once per export, not once per cell."""

    def __init__(self, t: Callable[..., str], check_title: Callable[[str], str]) -> None:
        self.t = t
        self.check_title = check_title
        self._states = _Looked(lambda value: self.t(f"state.{value}"))
        self._checks = _Looked(self._check_text)

    def header(self) -> list[str]:
        return [self.t(f"export.col.{c}") for c in EXPORT_COLUMNS]

    def _check_text(self, check_id: str) -> str:
        title = self.check_title(check_id)
        return f"{title} ({check_id})" if title != check_id else check_id

    def rows(self, records: Iterator[tuple[Any, ...]], *, text_times: bool) -> Iterator[list[Any]]:
        """Each record as the person reads it ('' for none; states, yes/no and check titles
        in their language; ``text_times``: times as :data:`MINUTES_UTC` text (records read
        with ``times=MINUTES_UTC`` have it already), else for date cells (:func:`serial_days`).
        One call per row."""
        yes, no = self.t("yes"), self.t("no")
        states, checks = self._states, self._checks

        def text(v: Any) -> Any:
            return v if type(v) is str else "" if v is None else _minutes_utc(v)

        def as_is(v: Any) -> Any:
            return "" if v is None else v

        when = text if text_times else serial_days
        for (id_, host, path, state, seen, received, failing, excepted, platform, os_, version, old, since,
             due) in records:
            yield [as_is(id_), as_is(host), as_is(path), states[state], when(seen), when(received),
                   "; ".join([checks[c] for c in failing]) if failing else "",
                   "; ".join([checks[c] for c in excepted]) if excepted else "",
                   as_is(platform), as_is(os_), as_is(version), yes if old else no, when(since), when(due)]


def export_csv_for(labels: Labels, lang: str, records: Iterator[tuple[Any, ...]]) -> Iterator[str]:
    """A person's CSV: translated header and values, in their Excel's dialect (cheapest
    from records read with ``times=MINUTES_UTC``: the database writes the times)."""
    rows = labels.rows(records, text_times=True)
    return spreadsheet.csv_lines(itertools.chain([labels.header()], rows), csv_style_for(lang))


_DATE_CELLS = frozenset(i for i, c in enumerate(EXPORT_COLUMNS) if c in TIME_COLUMNS)


def export_xlsx_for(labels: Labels, records: Iterator[tuple[Any, ...]], *, sheet: str) -> Iterator[bytes]:
    """A person's XLSX, streamed: translated header and values, times as date cells (UTC;
    cheapest from records read with ``times=EXCEL_MICROS``)."""
    return spreadsheet.xlsx_chunks(labels.header(), labels.rows(records, text_times=False), sheet=sheet,
                                   dates=_DATE_CELLS)


def export_for(conn: Connection, scope: Scope, unit_id: int, now: dt.datetime, labels: Labels, lang: str,
               fmt: str, *, sheet: str, **kwargs: Any) -> Iterator[Any]:
    """A person's export of the unit, as the dashboard streams it: ``fmt`` "xlsx" (times
    as date cells) or "csv" (times as text the database writes)."""
    if fmt == "xlsx":
        return export_xlsx_for(labels, export_records(conn, scope, unit_id, now, times=EXCEL_MICROS, **kwargs),
                               sheet=sheet)
    return export_csv_for(labels, lang, export_records(conn, scope, unit_id, now, times=MINUTES_UTC, **kwargs))


def _machine_cells(rec: tuple[Any, ...]) -> list[Any]:
    """One record as the machine XLSX's cells: raw values, lists joined with ';', the
    outdated flag as True/False, times for date cells. One call per row."""
    id_, host, path, state, seen, received, failing, excepted, platform, os_, version, old, since, due = rec
    return [id_, host, path, state, serial_days(seen), serial_days(received), ";".join(failing), ";".join(excepted),
            platform, os_, version, "True" if old else "False", serial_days(since), serial_days(due)]


def export_xlsx(records: Iterator[tuple[Any, ...]], *, sheet: str = "devices") -> Iterator[bytes]:
    """The machine XLSX of ``export_records``, streamed: column keys, raw values (lists
    joined with ';'), times as date cells (cheapest from records read with ``times=EXCEL_MICROS``)."""
    return spreadsheet.xlsx_chunks(list(EXPORT_COLUMNS), map(_machine_cells, records), sheet=sheet, dates=_DATE_CELLS)


def export_machine_xlsx(conn: Connection, scope: Scope, unit_id: int, now: dt.datetime, *, sheet: str = "devices",
                        **kwargs: Any) -> Iterator[bytes]:
    """The machine XLSX of the unit, as the API streams it (the times worked out by the database)."""
    return export_xlsx(export_records(conn, scope, unit_id, now, times=EXCEL_MICROS, **kwargs), sheet=sheet)


def export_filename(unit_path: str, now: dt.datetime, ext: str) -> str:
    """devices-<unit path in ASCII>-<date>.<ext>: safe in a Content-Disposition header."""
    stem = "".join(c if c.isalnum() else "-" for c in unit_path.encode("ascii", "replace").decode()).strip("-")[:80]
    return f"devices-{stem}-{now.date().isoformat()}.{ext}"
