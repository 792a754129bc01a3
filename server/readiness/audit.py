"""The audit log read back (entries are written by :func:`server.db.write_audit`)."""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from server.db import audit_log, users, utc


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: dt.datetime
    user: str | None
    action: str
    object_type: str
    object_id: str | None
    detail: dict[str, Any] | None


def audit_entries(conn: Connection, *, object_type: str | None = None, object_id: Any = None,
                  limit: int = 200) -> list[AuditEntry]:
    q = (select(audit_log, users.c.username).outerjoin(users, users.c.id == audit_log.c.user_id)
         .order_by(audit_log.c.id.desc()).limit(limit))
    if object_type:
        q = q.where(audit_log.c.object_type == object_type)
    if object_id is not None:
        q = q.where(audit_log.c.object_id == str(object_id))
    return [AuditEntry(r["id"], utc(r["at"]), r["username"], r["action"], r["object_type"], r["object_id"],
                       json.loads(r["detail"]) if r["detail"] else None) for r in conn.execute(q).mappings()]

