"""SQL that differs between SQLite and PostgreSQL (timestamps, intervals, string
aggregation), kept here so the queries elsewhere read the same on both.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Date, DateTime, Integer, Interval, String, any_, bindparam, cast, func, literal, type_coerce
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from server.db import utc

# ------------------------------------------------------------------ dialect helpers


def dialect(conn: Connection) -> str:
    return conn.dialect.name


def ts_param(value: dt.datetime) -> Any:
    return bindparam(None, utc(value), type_=DateTime(timezone=True))


def minus_hours(conn: Connection, ts: dt.datetime, hours: Any) -> Any:
    """SQL timestamp ``ts - hours`` (``hours`` an integer SQL expression)."""
    if dialect(conn) == "postgresql":
        return ts_param(ts) - func.make_interval(0, 0, 0, 0, hours, type_=Interval)
    # SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff' text; strftime yields the same shape (ms).
    return func.strftime("%Y-%m-%d %H:%M:%f", ts_param(ts), func.printf("-%d hours", hours))


def day_end(conn: Connection, day_col: Any) -> Any:
    """SQL timestamp: midnight UTC after ``day_col``."""
    if dialect(conn) == "postgresql":
        return cast(day_col, DateTime) + func.make_interval(0, 0, 0, 1, type_=Interval)
    return func.strftime("%Y-%m-%d %H:%M:%f", day_col, "+1 day")


def agg_list(conn: Connection, col: Any) -> Any:
    """SQL: the values of ``col`` in a group joined with ',' (order unspecified)."""
    if dialect(conn) == "postgresql":
        return func.string_agg(col, ",")
    return func.group_concat(col, ",")


def one_of(conn: Connection, col: Any, values: Any, *, of: Any = String) -> ColumnElement[bool]:
    """SQL: ``col`` is one of ``values``. On PostgreSQL one array parameter (``= ANY``): the
    statement stays short and the same whatever the list's length, so psycopg prepares it
    and nothing is rendered per value; SQLite gets an IN list."""
    values = list(values)
    if dialect(conn) == "postgresql":
        return col == any_(bindparam(None, values, type_=ARRAY(of)))
    return col.in_(values)


def contains_item(conn: Connection, csv_col: Any, item: Any) -> ColumnElement[bool]:
    """SQL: ``item`` is one of the comma-separated values in ``csv_col``."""
    hay = "," + csv_col + ","
    needle = "," + item + ","
    if dialect(conn) == "postgresql":
        return func.strpos(hay, needle) > 0
    return func.instr(hay, needle) > 0



EPOCH = dt.date(2000, 1, 1)
_EPOCH_JULIAN = 2451544.5  # SQLite's julianday('2000-01-01')


def day_number(day: Any, conn: Connection | None = None) -> Any:
    """Days since 2000-01-01: of a date (Python), or of a DATE column (SQL, with ``conn``)."""
    if conn is None:
        return (day - EPOCH).days
    if dialect(conn) == "postgresql":
        return type_coerce(day - literal(EPOCH, Date), Integer)
    return cast(func.julianday(day) - _EPOCH_JULIAN, Integer)
