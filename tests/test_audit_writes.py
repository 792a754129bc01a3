"""One writer of the audit log (:func:`server.db.write_audit`), on SQLite and PostgreSQL:
no other code inserts into ``audit_log``, and entries from different writers (a user
added, an exception granted, a device enrolled) have one shape: ``at`` the same UTC
instant whatever zone the caller's clock was in, ``object_id`` text, ``detail`` a dict."""
from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

from readiness_fleet import NOW, build_fleet
from server import auth
from server import readiness as rd

SERVER = Path(__file__).resolve().parents[1] / "server"


def _inserts_into_audit_log(tree: ast.AST) -> list[int]:
    """Lines with ``audit_log.insert()`` or ``insert(audit_log)``."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr == "insert" and isinstance(f.value, ast.Name) \
                and f.value.id == "audit_log":
            lines.append(node.lineno)
        if isinstance(f, ast.Name) and f.id == "insert" and node.args and isinstance(node.args[0], ast.Name) \
                and node.args[0].id == "audit_log":
            lines.append(node.lineno)
    return lines


def test_only_write_audit_inserts_into_the_audit_log() -> None:
    found = {str(p.relative_to(SERVER.parent)): lines for p in SERVER.rglob("*.py")
             if (lines := _inserts_into_audit_log(ast.parse(p.read_text(encoding="utf-8"))))}
    assert list(found) == ["server/db.py"] and len(found["server/db.py"]) == 1, found


def test_every_writer_stores_one_shape(collector_db_url) -> None:
    from collector_fixtures import migrated_app

    app = migrated_app(collector_db_url)
    store = app.state.store
    fleet = build_fleet(store)
    copenhagen = dt.timezone(dt.timedelta(hours=2))
    at = NOW.astimezone(copenhagen) + dt.timedelta(minutes=7)  # the same instant as NOW+7min, written as +02:00
    try:
        with store.engine.begin() as conn:
            auth.create_user(conn, username="audit-shape", role="unit_manager", password="a long enough password",
                             unit_path="Kultur", actor_id=fleet.users["admin"].id, now=at)
            grant = rd.grant_exception(conn, fleet.users["so_all"], check_id="firewall",
                                       device_id=fleet.devices["k1"].id, expires_at=NOW + dt.timedelta(days=3),
                                       now=at, justification="vendor firewall on order, ticket 17")
        with store.engine.connect() as conn:
            user_entry = rd.audit_entries(conn, object_type="user", limit=1)[0]
            grant_entry = rd.audit_entries(conn, object_type="exception", object_id=grant.id, limit=1)[0]
            enrol_entry = rd.audit_entries(conn, object_type="device", object_id=fleet.devices["k1"].id, limit=5)[-1]
        assert user_entry.action == "user.create" and grant_entry.action == "exception.grant"
        assert enrol_entry.action == "device.enroll"
        for entry in (user_entry, grant_entry):
            assert entry.at == at and entry.at.utcoffset() == dt.timedelta(0)
        for entry in (user_entry, grant_entry, enrol_entry):
            assert isinstance(entry.object_id, str) and isinstance(entry.detail, dict)
        assert grant_entry.object_id == str(grant.id) and grant_entry.user == "so_all"
        assert user_entry.user == "admin" and user_entry.detail["username"] == "audit-shape"
    finally:
        store.engine.dispose()
