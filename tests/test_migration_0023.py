"""Migration 0023 on a database with reports (SQLite and PostgreSQL): ``report_ids`` and
``device_state.stored_sequence_max`` are filled from the stored reports (a history report
above the latest sequence included), and afterwards every "already stored?" case answers
as before; down to 0022 removes both."""
from __future__ import annotations

import datetime as dt


from migration_rows import downgrade
from server import migrate
from server.db import make_engine
from server.store import Store
from test_already_stored import NOW, Device, answer, assert_ids_agree, rid_of, stored


def test_migration_0023_fills_ids_and_bounds_from_the_stored_reports(collector_db_url):
    engine = make_engine(collector_db_url, pool_size=2, max_overflow=2)
    try:
        migrate.upgrade(engine)
        s = Store(engine)
        s.add_unit("AS/Unit")
        d = Device(s, "as-migrated")
        first = d.report(3)
        assert answer(s, first) == (201, "stored")
        assert answer(s, d.report(5, at=NOW - dt.timedelta(hours=1))) == (201, "history")
        downgrade(engine, "0022")
        with engine.connect() as conn:
            assert "report_ids" not in set(conn.dialect.get_table_names(conn))
        migrate.upgrade(engine)
        assert_ids_agree(s)
        assert stored(s, d.id)["state"] == (3, 5)
        fresh = Store(engine)  # nothing cached from before the migration
        assert answer(fresh, first) == (200, "duplicate")
        assert answer(fresh, d.report(4, report_id=rid_of(first))) == (409, "report_id_conflict")
        assert answer(fresh, d.report(5, at=NOW + dt.timedelta(minutes=1))) == (409, "replayed_sequence")
        assert answer(fresh, d.report(6, at=NOW + dt.timedelta(minutes=2))) == (201, "stored")
        assert_ids_agree(fresh)
    finally:
        engine.dispose()
