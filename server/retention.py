"""How long the collector keeps what it stores, and applying it.

Full signed reports (``reports`` with their ``report_blobs``) are kept for
``reports_months`` whole months back from the current month, by month of receipt; the
daily state history (``device_days``, the trend) for ``days_years`` years. On PostgreSQL
a month past the limit is dropped as whole partitions (instant, nothing left to vacuum),
and rows in the default partitions are deleted; on SQLite the same rows are deleted. The
ids of the reports removed go from ``report_ids`` in the same transaction. The
latest state of each device (``device_state``, ``device_checks``) is never removed.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from server import partitions
from server.db import device_days, report_blobs, report_ids, reports, retention_state, units, utc
from server.readiness.state import compact_groups

ENV_REPORTS = "AUDITAGENT_RETAIN_REPORTS_MONTHS"
ENV_DAYS = "AUDITAGENT_RETAIN_DAYS_YEARS"


@dataclass(frozen=True)
class Retention:
    reports_months: int = 13
    days_years: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.reports_months <= 1200:
            raise ValueError(f"reports retention {self.reports_months} months: between 1 and 1200")
        if not 1 <= self.days_years <= 100:
            raise ValueError(f"daily history retention {self.days_years} years: between 1 and 100")

    @classmethod
    def from_environment(cls, env: dict[str, str] | None = None) -> "Retention":
        env = os.environ if env is None else env
        try:
            return cls(int(env.get(ENV_REPORTS, cls.reports_months)), int(env.get(ENV_DAYS, cls.days_years)))
        except ValueError as exc:
            raise ValueError(f"{ENV_REPORTS}/{ENV_DAYS}: {exc}") from None

    def reports_from(self, today: dt.date) -> dt.date:
        """The first month of receipt kept."""
        return partitions.add_months(partitions.month_of(today), -self.reports_months)

    def days_from(self, today: dt.date) -> dt.date:
        """The first day of the daily history kept."""
        try:
            return today.replace(year=today.year - self.days_years)
        except ValueError:  # 29 February
            return today.replace(year=today.year - self.days_years, day=28)


@dataclass(frozen=True)
class Applied:
    reports_from: dt.date
    days_from: dt.date
    dropped_partitions: list[str]
    deleted_reports: int
    deleted_blobs: int
    deleted_days: int


def apply(engine: Engine, retention: Retention, today: dt.date) -> Applied:
    keep_reports, keep_days = retention.reports_from(today), retention.days_from(today)
    start = dt.datetime.combine(keep_reports, dt.time(), dt.timezone.utc)
    dropped: list[str] = []
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            for table in partitions.TABLES:
                for month in partitions.months(conn, table):
                    if partitions.add_months(month, 1) <= keep_reports:
                        name = partitions.partition_name(table, month)
                        conn.exec_driver_sql(f"DROP TABLE {name}")
                        dropped.append(name)
        # The database lets a report be deleted only before this (migration 0013's trigger).
        before = conn.execute(select(retention_state.c.reports_before)).scalar()
        if before is None:
            conn.execute(insert(retention_state).values(id=1, reports_before=start))
        elif utc(before) < start:
            conn.execute(update(retention_state).values(reports_before=start))
        # What is left past the limit (the default partitions; all of it on SQLite).
        n_reports = conn.execute(delete(reports).where(reports.c.received_at < start)).rowcount
        n_blobs = conn.execute(delete(report_blobs).where(report_blobs.c.month < keep_reports)).rowcount
        # The ids of the months gone, in step with their reports: ingest's "already stored?"
        # answers as if they had never been stored (server/report_write.py).
        conn.execute(delete(report_ids).where(report_ids.c.month < keep_reports))
        n_days = conn.execute(delete(device_days).where(device_days.c.day < keep_days)).rowcount
        if n_days:  # the units' cached trend days are redone (server/readiness/trend.py)
            conn.execute(update(units).values(history_version=units.c.history_version + 1))
        compact_groups(conn)  # the dashboard's counts: one row per group again
    partitions.ensure_ahead(engine, today)
    return Applied(keep_reports, keep_days, dropped, n_reports, n_blobs, n_days)
