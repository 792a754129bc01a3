"""Migration 0018 on a database that has reports (SQLite and PostgreSQL): the keyid and
the policy sha256 columns go (both are in the signed payload), the envelope rebuilt
after it is the very text received and verifies with the keyid read from the payload;
the months' partitions, the append-only rule and ingest keep working; a report whose
stored keyid is not its payload's stops the upgrade with nothing changed. And back down
to 0017: both columns come back with the values they had."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import inspect, select, text

from auditagent import report as wire
from collector_fixtures import fresh_pg_database, pg_base_url
from migration_rows import downgrade, insert_unit_and_device
from server import migrate, report_pack
from server.db import as_date, make_engine, reports, utc
from server.partitions import month_of
from server.report_read import SIGNED_COLUMNS, envelope_of, signed_envelope
from server.store import Store

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
MONTHS_AGO = NOW - dt.timedelta(days=70)
POLICY_SHA = "cd" * 32


def _envelope(device_id: str, key, seq: int, at: dt.datetime) -> str:
    pred = wire.build_predicate(
        device={"id": device_id, "hostname": "laptop-1", "serial": "SN", "os": "Windows 11", "platform": "windows"},
        agent_version="0.1.0", policy={"id": "baseline", "version": "1", "sha256": POLICY_SHA},
        facts={"collected_at": at.isoformat(), "disk": {"volumes": [{"mount": "C:", "encrypted": True}]},
               "text": "Välkommen"},
        results=[{"check_id": "disk-encrypted", "status": "pass", "severity": "required"}],
        verdict="ready", sequence=seq, generated_at=at.isoformat().replace("+00:00", "Z"))
    st = wire.build_statement(device_id=device_id, public_key=key.public_key(), predicate=pred)
    return wire.envelope_bytes(wire.sign_envelope(st, key)).decode()


def _at_0017(engine, *, stored_keyid: str | None = None) -> tuple[str, Ed25519PrivateKey, list[str]]:
    """A device and three reports (two months) stored as 0017 kept them."""
    key = Ed25519PrivateKey.generate()
    kid = wire.keyid(key.public_key())
    device_id = str(uuid.uuid4())
    envs = []
    migrate.upgrade(engine, "0017")
    with engine.begin() as conn:
        insert_unit_and_device(conn, device_id, key, created=NOW, enrolled=MONTHS_AGO)
        for seq, received in ((1, MONTHS_AGO), (2, MONTHS_AGO + dt.timedelta(hours=1)), (3, NOW)):
            env = _envelope(device_id, key, seq, received)
            envs.append(env)
            decoded = wire.decode_envelope(wire.parse_envelope(env.encode()))
            packed = report_pack.pack(decoded.payload)
            for sha, seg in packed.segments.items():
                conn.execute(text("INSERT INTO report_blobs (month, sha256, data) VALUES (:m, :s, :d) "
                                  "ON CONFLICT DO NOTHING"),
                             {"m": month_of(received), "s": sha, "d": report_pack.compress_segment(seg)})
            conn.execute(text(
                "INSERT INTO reports (report_id, device_id, sequence, keyid, generated_at, received_at, verdict, "
                "policy_id, policy_version, policy_sha256, body, signature) VALUES (:r, :d, :s, :k, :t, :t, "
                "'ready', 'baseline', '1', :p, :b, :sig)"),
                {"r": wire.report_id_of(decoded.statement), "d": device_id, "s": seq,
                 "k": stored_keyid if stored_keyid and seq == 2 else kid, "t": received, "p": POLICY_SHA,
                 "b": packed.body, "sig": decoded.signatures[0][1]})
        conn.execute(text("INSERT INTO device_state (device_id, last_sequence, unit_id, generated_at) "
                          "VALUES (:d, 3, 1, :t)"), {"d": device_id, "t": NOW})
    return device_id, key, envs


def test_upgrade_drops_derivable_columns_and_downgrade_restores_them(collector_db_url):
    engine = make_engine(collector_db_url, pool_size=1, max_overflow=0)
    try:
        device_id, key, envs = _at_0017(engine)
        kid = wire.keyid(key.public_key())
        migrate.upgrade(engine)
        with engine.connect() as conn:
            cols = [c["name"] for c in inspect(conn).get_columns("reports")]
            assert "keyid" not in cols and "policy_sha256" not in cols
            rows = conn.execute(select(reports.c.sequence, *SIGNED_COLUMNS).where(reports.c.device_id == device_id)
                                .order_by(reports.c.sequence)).all()
            assert [r.sequence for r in rows] == [1, 2, 3]
            for row, env in zip(rows, envs):
                rebuilt, rebuilt_kid = signed_envelope(conn, row)
                assert rebuilt == env and rebuilt_kid == kid
                wire.verify_envelope(wire.parse_envelope(rebuilt), key.public_key())
            if conn.dialect.name == "postgresql":
                cols_pg = [r[0] for r in conn.execute(text(
                    "SELECT attname FROM pg_attribute WHERE attrelid = 'reports'::regclass AND attnum > 0 "
                    "AND NOT attisdropped ORDER BY attnum"))]
                assert cols_pg[:4] == ["id", "sequence", "generated_at", "received_at"]  # fixed width first
                assert "USING hash (report_id)" in conn.execute(text(
                    "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_reports_report_id'")).scalar()
                where = {r[0] for r in conn.execute(text("SELECT tableoid::regclass::text FROM reports"))}
                assert len(where) == 2, where  # the months' partitions, rebuilt
        for sql in ("UPDATE reports SET verdict = 'not_ready'", "DELETE FROM reports"):
            with pytest.raises(Exception, match="append-only"):
                with engine.begin() as conn:
                    conn.execute(text(sql))
        # Ingest goes on where it was: the next sequence is stored, its id from the same sequence.
        store = Store(engine)
        body = _envelope(device_id, key, 4, NOW + dt.timedelta(seconds=1)).encode()
        assert store.ingest(body)[0] == 201
        with engine.connect() as conn:
            ids = conn.execute(select(reports.c.id).order_by(reports.c.sequence)).scalars().all()
            assert ids == sorted(ids) and len(set(ids)) == 4
            last = conn.execute(select(*SIGNED_COLUMNS).where(reports.c.sequence == 4)).one()
            assert envelope_of(conn, last) == body.decode()
            assert bytes(last.body)[0] == 2 and all(bytes(r.body)[0] == 1 for r in rows)  # new layout; old kept
        downgrade(engine, "0017")
        with engine.connect() as conn:
            back = conn.execute(text("SELECT sequence, keyid, policy_sha256, body, received_at FROM reports "
                                     "ORDER BY sequence")).all()
            blobs = {(as_date(r.month), bytes(r.sha256)): report_pack.decompress_segment(bytes(r.data))
                     for r in conn.execute(text("SELECT month, sha256, data FROM report_blobs"))}
        assert [tuple(r)[:3] for r in back] == [(s, kid, POLICY_SHA) for s in (1, 2, 3, 4)]
        # Every body in layout 1 again, rebuilt from its month's segments as 0017 reads it.
        for r, env in zip(back, [*envs, body.decode()]):
            received = r.received_at if isinstance(r.received_at, dt.datetime) else dt.datetime.fromisoformat(
                r.received_at)  # SQLite: text
            month = month_of(utc(received))
            payload = report_pack.unpack(bytes(r.body), {sha: seg for (m, sha), seg in blobs.items() if m == month})
            assert bytes(r.body)[0] == 1
            assert report_pack.envelope_text(payload, kid, wire.decode_envelope(
                wire.parse_envelope(env.encode())).signatures[0][1]) == env
        migrate.upgrade(engine)  # and up again, from what the downgrade left
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM reports")).scalar() == 4
    finally:
        engine.dispose()


@pytest.fixture
def own_db_url(collector_db_url, tmp_path):
    """A database of the same kind as ``collector_db_url``, for this test alone."""
    if collector_db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'own.db'}"
        return
    with fresh_pg_database(pg_base_url()) as url:
        yield url


def test_upgrade_refuses_a_keyid_its_payload_does_not_hold(own_db_url):
    engine = make_engine(own_db_url, pool_size=1, max_overflow=0)
    try:
        _at_0017(engine, stored_keyid="ee" * 32)
        with pytest.raises(RuntimeError, match="differ from its signed payload"):
            migrate.upgrade(engine)
        assert migrate.current_revision(engine) == "0017"
        with engine.connect() as conn:
            kept = conn.execute(text("SELECT sequence, keyid FROM reports ORDER BY sequence")).all()
        assert [r.keyid for r in kept][1] == "ee" * 32 and len(kept) == 3
    finally:
        engine.dispose()
