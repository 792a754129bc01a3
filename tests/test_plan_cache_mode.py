"""PostgreSQL's plan_cache_mode on the collector's connections (server/db.py): custom
plans only, set once per pooled connection from its start-up options (no statement per
page; the pages' own guard is tests/test_one_of.py::test_pages_are_planned_for_their_values),
except in the group-commit writer's batch transactions, whose statement plans the same
whatever its values and keeps PostgreSQL's generic plan (server/report_write.py)."""
from __future__ import annotations

from typing import Iterator

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from server.db import make_engine


@pytest.fixture
def own(fleet) -> Iterator[Engine]:
    """An engine of the collector's kind on the fleet's database, with two pooled connections."""
    engine = make_engine(fleet.store.engine.url.render_as_string(hide_password=False), pool_size=2, max_overflow=0)
    if engine.dialect.name != "postgresql":
        engine.dispose()
        pytest.skip("plan_cache_mode is PostgreSQL's")
    yield engine
    engine.dispose()


def mode(conn) -> str:
    return conn.execute(text("SHOW plan_cache_mode")).scalar_one()


def test_every_pooled_connection_plans_custom_plans_without_a_statement_per_page(fleet, own):
    from readiness_fleet import EB, NOW

    from server import readiness as rd

    sent: list[str] = []
    event.listen(own, "before_cursor_execute", lambda conn, cur, statement, *a: sent.append(statement))
    with own.connect() as a, own.connect() as b:  # two connections the pool opened
        for conn in (a, b):
            rd.overview(conn, rd.Scope(), NOW)
            rd.unit_detail(conn, rd.Scope(), fleet.units[EB], NOW)
            rd.device_detail(conn, rd.Scope(), fleet.devices["eb3"].id, NOW)
            assert mode(conn) == "force_custom_plan"
            conn.commit()
            assert mode(conn) == "force_custom_plan"
            conn.rollback()
            assert mode(conn) == "force_custom_plan"
    pages = [s for s in sent if not s.startswith("SHOW")]
    assert pages and not [s for s in pages if "plan_cache_mode" in s]


def test_the_group_commit_batch_keeps_postgresqls_default_plan_choice(own):
    """The batch's first statement sets plan_cache_mode back to auto for its transaction
    only (the same round trip): afterwards the connection plans custom plans again."""
    from server.report_write import lock_reports_pg

    with own.connect() as conn:
        assert mode(conn) == "force_custom_plan"
        lock_reports_pg(conn, [{"report_id": "r-1", "device_id": "d-1"}, {"report_id": "r-2", "device_id": "d-2"}])
        assert mode(conn) == "auto"
        conn.commit()
        assert mode(conn) == "force_custom_plan"
        lock_reports_pg(conn, [{"report_id": "r-3", "device_id": "d-3"}])
        conn.rollback()
        assert mode(conn) == "force_custom_plan"
