"""Monthly partitions of ``reports`` (by received_at) and ``report_blobs`` (by month) on
PostgreSQL (declarative range partitioning), so retention drops whole months. Each table
has a DEFAULT partition for rows outside the months created (a report stored with a
received time in the past, as the preview's simulated history does); partitions are
created ahead of time (this month and the next :data:`AHEAD` months), by the migration,
at start-up and by ingest when the month turns, so the default stays nearly empty.
SQLite has no partitions: every function here is a no-op there."""
from __future__ import annotations

import datetime as dt
import re

from sqlalchemy.engine import Connection, Engine

AHEAD = 3
# (parent table, its partition key's SQL type)
TABLES = {"reports": "timestamptz", "report_blobs": "date"}
_NAME = re.compile(r"^(?P<table>[a-z_]+)_y(?P<year>\d{4})m(?P<month>\d{2})$")


def is_partition(name: str) -> bool:
    """Whether a table name is one of our partitions (made at run time, so not in the
    schema's table definitions): Alembic's comparison passes over them."""
    m = _NAME.match(name)
    return bool(m and m.group("table") in TABLES) or any(name == f"{t}_default" for t in TABLES)


def include_name(name: str | None, type_: str, parent_names: dict) -> bool:
    """Alembic's ``include_name`` hook: compare every name but our partitions."""
    return not (type_ == "table" and name is not None and is_partition(name))


def month_of(t: dt.datetime | dt.date) -> dt.date:
    """The first day of ``t``'s month (a datetime is taken in UTC)."""
    if isinstance(t, dt.datetime):
        t = t.astimezone(dt.timezone.utc) if t.tzinfo else t
    return dt.date(t.year, t.month, 1)


def add_months(month: dt.date, n: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + n
    return dt.date(index // 12, index % 12 + 1, 1)


def partition_name(table: str, month: dt.date) -> str:
    return f"{table}_y{month.year:04d}m{month.month:02d}"


def _bound(table: str, month: dt.date) -> str:
    return f"'{month.isoformat()} 00:00:00+00'" if TABLES[table] == "timestamptz" else f"'{month.isoformat()}'"


def create_month(conn: Connection, table: str, month: dt.date) -> None:
    """CREATE the month's partition of ``table`` unless it exists (names and bounds come
    from dates, never from input)."""
    name = partition_name(table, month)
    conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} FOR VALUES FROM "
                         f"({_bound(table, month)}) TO ({_bound(table, add_months(month, 1))})")


def create_default(conn: Connection, table: str) -> None:
    conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {table}_default PARTITION OF {table} DEFAULT")


def months(conn: Connection, table: str) -> list[dt.date]:
    """The months that have a partition of ``table``, oldest first."""
    rows = conn.exec_driver_sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %(t)s::regclass", {"t": table}).scalars()
    found = []
    for name in rows:
        m = _NAME.match(name)
        if m and m.group("table") == table:
            found.append(dt.date(int(m.group("year")), int(m.group("month")), 1))
    return sorted(found)


def ensure_ahead(engine: Engine, today: dt.date) -> None:
    """This month's partitions and the next AHEAD months', for both tables (PostgreSQL)."""
    if engine.dialect.name != "postgresql":
        return
    first = month_of(today)
    with engine.begin() as conn:
        have = {t: set(months(conn, t)) for t in TABLES}
    for i in range(AHEAD + 1):
        month = add_months(first, i)
        for table in TABLES:
            if month in have[table]:
                continue
            try:
                with engine.begin() as conn:
                    create_month(conn, table, month)
            except Exception:  # noqa: BLE001 - another collector created it meanwhile
                with engine.connect() as conn:
                    if month not in months(conn, table):
                        raise
