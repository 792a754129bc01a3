"""Reading a stored report's signed bytes back (the inverse of how report_write.py keeps
them, server/report_pack.py): the payload exactly as signed, and the DSSE envelope rebuilt
around it for download and offline verification."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from server import report_pack
from server.db import report_blobs, reports
from server.partitions import month_of

# The columns of ``reports`` the envelope is rebuilt from.
SIGNED_COLUMNS = (reports.c.body, reports.c.signature, reports.c.keyid, reports.c.received_at)


def payload_of(conn: Connection, row: Any) -> bytes:
    """The signed payload of a ``reports`` row (selected with SIGNED_COLUMNS)."""
    body = bytes(row.body)
    wanted = report_pack.segment_ids(body)
    segments = {}
    if wanted:
        found = conn.execute(select(report_blobs.c.sha256, report_blobs.c.data)
                             .where(report_blobs.c.month == month_of(row.received_at),
                                    report_blobs.c.sha256.in_(wanted))).all()
        segments = {bytes(r.sha256): report_pack.decompress_segment(bytes(r.data)) for r in found}
    return report_pack.unpack(body, segments)


def envelope_of(conn: Connection, row: Any) -> str:
    """The report's DSSE envelope (JSON text), verifiable with the device's key."""
    return report_pack.envelope_text(payload_of(conn, row), row.keyid, bytes(row.signature))
