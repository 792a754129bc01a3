"""SQL that differs between SQLite and PostgreSQL (timestamps, intervals, string
aggregation), kept here so the queries elsewhere read the same on both.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Date, DateTime, Integer, Interval, bindparam, cast, func, literal, type_coerce
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from server.db import utc

# ------------------------------------------------------------------ dialect helpers


def dialect(conn: Connection | str) -> str:
    """The dialect's name, of a connection (or the name itself: a statement built apart from any)."""
    return conn if isinstance(conn, str) else conn.dialect.name


def ts_param(value: dt.datetime) -> Any:
    return bindparam(None, utc(value), type_=DateTime(timezone=True))


def at_param(hours: int | None = None) -> Any:
    """A named parameter: the moment judged (None) or ``hours`` before it, its value given
    when the statement runs (:func:`moment`), so a statement built once serves every moment."""
    return bindparam("now" if hours is None else f"now_minus_{hours}h", type_=DateTime(timezone=True))


def moment(now: dt.datetime, hours: Any = ()) -> dict[str, Any]:
    """The values of :func:`at_param`'s parameters at ``now`` (for each of ``hours``)."""
    out = {"now": utc(now)}
    for h in set(hours):
        out[f"now_minus_{h}h"] = utc(now - dt.timedelta(hours=h))
    return out


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


def contains_item(conn: Connection, csv_col: Any, item: Any) -> ColumnElement[bool]:
    """SQL: ``item`` is one of the comma-separated values in ``csv_col``."""
    hay = "," + csv_col + ","
    needle = "," + item + ","
    if dialect(conn) == "postgresql":
        return func.strpos(hay, needle) > 0
    return func.instr(hay, needle) > 0


# ------------------------------------------------------------------ a list of values as one parameter


class OneOf(ColumnElement[bool]):
    """SQL: ``col`` is (``negate``: is not) one of ``values``, bound as ONE parameter on
    PostgreSQL (``col = ANY(:array)`` / ``col <> ALL(:array)``), so the statement's text
    is the same whatever the list's length: psycopg caches its parse and prepares it
    (it does neither for a statement over 4,096 characters or 50 parameters, which a
    long ``IN (…)`` makes). Elsewhere (SQLite) an ordinary ``IN``. NULL and the empty
    list behave as ``IN`` does: an empty list matches nothing (``negate``: everything)."""

    type = Boolean()
    _is_implicitly_boolean = True  # a predicate: no "= 1" after it where booleans are integers
    inherit_cache = True
    _traverse_internals = [("col", InternalTraversal.dp_clauseelement),
                           ("array", InternalTraversal.dp_clauseelement),
                           ("expanding", InternalTraversal.dp_clauseelement),
                           ("negate_", InternalTraversal.dp_boolean)]

    def __init__(self, col: Any, values: Any, negate: bool = False) -> None:
        values = list(values)
        self.col = col
        self.negate_ = negate
        # Both forms are bound (and keyed for the statement cache); each dialect renders one.
        self.array = bindparam(None, values, type_=ARRAY(col.type))
        self.expanding = bindparam(None, values, expanding=True, type_=col.type)


def one_of(col: Any, values: Any) -> ColumnElement[bool]:
    """SQL: ``col`` is one of ``values`` (:class:`OneOf`)."""
    return OneOf(col, values)


def none_of(col: Any, values: Any) -> ColumnElement[bool]:
    """SQL: ``col`` is none of ``values`` (:class:`OneOf`, negated)."""
    return OneOf(col, values, negate=True)


@compiles(OneOf)
def _one_of_in(element: OneOf, compiler: Any, **kw: Any) -> str:
    op = "NOT IN" if element.negate_ else "IN"
    return f"({compiler.process(element.col, **kw)} {op} {compiler.process(element.expanding, **kw)})"


@compiles(OneOf, "postgresql")
def _one_of_any(element: OneOf, compiler: Any, **kw: Any) -> str:
    op = "<> ALL" if element.negate_ else "= ANY"
    return f"({compiler.process(element.col, **kw)} {op} ({compiler.process(element.array, **kw)}))"


EPOCH = dt.date(2000, 1, 1)
_EPOCH_JULIAN = 2451544.5  # SQLite's julianday('2000-01-01')


def day_number(day: Any, conn: Connection | None = None) -> Any:
    """Days since 2000-01-01: of a date (Python), or of a DATE column (SQL, with ``conn``)."""
    if conn is None:
        return (day - EPOCH).days
    if dialect(conn) == "postgresql":
        return type_coerce(day - literal(EPOCH, Date), Integer)
    return cast(func.julianday(day) - _EPOCH_JULIAN, Integer)
