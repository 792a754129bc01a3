"""Rows the migration tests write by hand at an older revision (the Store writes the newest schema)."""
from __future__ import annotations

import datetime as dt

from alembic import command
from sqlalchemy import text

from auditagent import report as wire
from server import migrate


def insert_unit_and_device(conn, device_id: str, key, *, created: dt.datetime, enrolled: dt.datetime) -> None:
    """Unit 1 ('A') and the device enrolled in it with ``key`` (columns every revision since 0001 has)."""
    conn.execute(text("INSERT INTO units (id, parent_id, name, path, depth, created_at) "
                      "VALUES (1, NULL, 'A', 'A', 1, :t)"), {"t": created})
    conn.execute(text("INSERT INTO devices (id, unit_id, hostname, agent_version, current_keyid, "
                      "public_key, enrolled_at) VALUES (:d, 1, 'laptop-1', '0.1.0', :k, :pk, :t)"),
                 {"d": device_id, "k": wire.keyid(key.public_key()), "pk": wire.raw_public_bytes(key.public_key()),
                  "t": enrolled})


def downgrade(engine, revision: str) -> None:
    """Alembic's downgrade to ``revision`` on ``engine``'s database."""
    with engine.connect() as conn:
        cfg = migrate.alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
        conn.commit()
