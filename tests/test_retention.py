"""Retention (SQLite and PostgreSQL): reports received before the limit go (whole monthly
partitions dropped on PostgreSQL, the rest deleted), with the facts/results blobs of
their months; the daily history past its limit goes; what is kept still downloads and
verifies, and reports stay append-only for everyone but retention."""
from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, text

from auditagent import report as wire
from server import migrate, partitions, retention
from server.cli import main as collector_main
from server.db import as_date, device_days, make_engine, report_blobs, report_ids, reports
from server.report_read import SIGNED_COLUMNS, envelope_of
from server.store import Store

TODAY = dt.datetime.now(dt.timezone.utc).date()
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _received(months_back: int) -> dt.datetime:
    month = partitions.add_months(partitions.month_of(TODAY), -months_back)
    return dt.datetime.combine(month + dt.timedelta(days=9), dt.time(8), dt.timezone.utc)


@pytest.fixture(scope="module")
def filled(collector_db_url):
    engine = make_engine(collector_db_url, pool_size=2, max_overflow=2)
    migrate.upgrade(engine)
    store = Store(engine)
    store.add_unit("Ret/Unit")
    token, _ = store.create_token("Ret/Unit")
    key = Ed25519PrivateKey.generate()
    dev = store.enroll(token=token, public_key_pem=wire.public_key_pem(key.public_key()),
                       device={"hostname": "old-laptop", "serial": "SN", "os": "Windows 11", "platform": "windows"})
    if engine.dialect.name == "postgresql":  # a partition for 14 months back; 20 months back: the default one
        with engine.begin() as conn:
            for table in partitions.TABLES:
                partitions.create_month(conn, table, partitions.add_months(partitions.month_of(TODAY), -14))
    sent = {}
    for seq, months_back in enumerate((20, 14, 2, 0), start=1):
        when = _received(months_back) if months_back else NOW
        pred = wire.build_predicate(
            device={"id": dev["device_id"], "hostname": "old-laptop", "serial": "SN", "os": "Windows 11",
                    "platform": "windows"},
            agent_version="0.1.0", policy={"id": "baseline", "version": "1", "sha256": "ab" * 32},
            facts={"disk": {"status": "ok"}}, results=[{"check_id": "disk-encrypted", "status": "pass"}],
            verdict="ready", sequence=seq, generated_at=when.isoformat().replace("+00:00", "Z"))
        env = wire.sign_envelope(wire.build_statement(device_id=dev["device_id"], public_key=key.public_key(),
                                                      predicate=pred), key)
        sent[seq] = wire.envelope_bytes(env)
        status, _ = store.ingest(sent[seq], received_at=when)
        assert status == 201
    with engine.begin() as conn:
        conn.execute(device_days.insert().values(device_id=dev["device_id"], day=TODAY - dt.timedelta(days=4 * 366),
                                                 ready_strict=True, failing_required="", unit_id=None))
    yield engine, dev["device_id"], key, sent
    engine.dispose()


def test_retention_removes_what_is_past_the_limits_only(filled):
    engine, device_id, key, _ = filled
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(reports)).scalar() == 4
        assert conn.execute(select(func.count()).select_from(report_blobs)).scalar() == 8  # 4 months x 2
    done = retention.apply(engine, retention.Retention(), TODAY)
    assert done.reports_from == partitions.add_months(partitions.month_of(TODAY), -13)
    assert done.deleted_days == 1
    with engine.connect() as conn:
        kept = conn.execute(select(reports.c.sequence, *SIGNED_COLUMNS).order_by(reports.c.sequence)).all()
        assert [r.sequence for r in kept] == [3, 4]
        for row in kept:  # still downloadable and verifiable: their blobs are there
            wire.verify_envelope(wire.parse_envelope(envelope_of(conn, row)), key.public_key())
        assert conn.execute(select(func.count()).select_from(report_blobs)).scalar() == 4
        assert conn.execute(select(func.min(device_days.c.day))).scalar() >= retention.Retention().days_from(TODAY)
        # The ids go with their reports (ingest's "already stored?" reads report_ids).
        assert _ids(conn) == {r: partitions.month_of(t) for r, t in conn.execute(
            select(reports.c.report_id, reports.c.received_at))}
    if engine.dialect.name == "postgresql":
        month = partitions.add_months(partitions.month_of(TODAY), -14)
        assert set(done.dropped_partitions) == {partitions.partition_name(t, month) for t in partitions.TABLES}
        assert done.deleted_reports == 1  # the one in the default partition
        # and the coming months have their partitions
        with engine.connect() as conn:
            ahead = partitions.add_months(partitions.month_of(TODAY), partitions.AHEAD)
            assert all(ahead in partitions.months(conn, t) for t in partitions.TABLES)
    else:
        assert done.deleted_reports == 2
    # Retention is the only way out: a report inside the limit cannot be deleted or changed.
    for sql in ("DELETE FROM reports", "UPDATE reports SET verdict = 'not_ready'"):
        with pytest.raises(Exception, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text(sql))
    # Applying again changes nothing.
    again = retention.apply(engine, retention.Retention(), TODAY)
    assert (again.dropped_partitions, again.deleted_reports, again.deleted_blobs, again.deleted_days) == ([], 0, 0, 0)


def test_retention_command(filled, capsys, monkeypatch):
    engine, _, _, _ = filled
    url = engine.url.render_as_string(hide_password=False)
    assert collector_main(["retention", "apply", "--db", url, "--reports-months", "1"]) == 0
    out = capsys.readouterr().out
    assert "reports before" in out and "daily history before" in out
    with engine.connect() as conn:  # one month back kept: the report of 2 months back is gone now
        assert conn.execute(select(reports.c.sequence)).scalars().all() == [4]
    assert collector_main(["retention", "apply", "--db", url, "--reports-months", "0"]) == 2
    assert "between 1 and 1200" in capsys.readouterr().err
    monkeypatch.setenv(retention.ENV_REPORTS, "24")
    assert collector_main(["retention", "show"]) == 0
    assert "kept 24 months" in capsys.readouterr().out


def _ids(conn) -> dict:
    return {r: as_date(m) for r, m in conn.execute(select(report_ids.c.report_id, report_ids.c.month))}


def test_a_report_resent_after_retention_removed_it_is_stored_again_as_history(filled):
    """Decided: retention forgets a report entirely, so a resend of it (signed, its sequence
    below the latest) is what it would be had it never arrived: history, received now, kept
    for the full period again; a second resend is then a duplicate. The same as before
    report_ids (0023), when the check read the reports that were left."""
    engine, device_id, _, sent = filled
    store = Store(engine)
    with engine.connect() as conn:
        assert conn.execute(select(reports.c.sequence)).scalars().all() == [4]
        assert len(_ids(conn)) == 1
    for seq in (1, 3):  # removed by the month (1, 20 months back) and by the command (3)
        status, body = store.ingest(sent[seq])
        assert (status, body["status"], body["sequence"]) == (201, "history", seq)
        assert store.ingest(sent[seq])[1]["status"] == "duplicate"
    with engine.connect() as conn:
        rows = conn.execute(select(reports.c.report_id, reports.c.sequence, reports.c.received_at)
                            .order_by(reports.c.sequence)).all()
        assert [r.sequence for r in rows] == [1, 3, 4]
        assert _ids(conn) == {r.report_id: partitions.month_of(r.received_at) for r in rows}
