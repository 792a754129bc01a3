"""Reading a stored report's signed bytes back (the inverse of how report_write.py keeps
them, server/report_pack.py): the payload exactly as signed, and the DSSE envelope rebuilt
around it for download and offline verification."""
from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

from sqlalchemy import select
from sqlalchemy.engine import Connection

from server import report_pack
from server.db import report_blobs, reports
from server.partitions import month_of

# The columns of ``reports`` the envelope is rebuilt from (the keyid is the payload's
# subject digest, report_pack.keyid_of; report id and device id are the body's refs).
SIGNED_COLUMNS = (reports.c.report_id, reports.c.device_id, reports.c.body, reports.c.signature,
                  reports.c.received_at)


def signed_refs(report_id: str, device_id: str) -> tuple[str, str]:
    """The strings a stored body leaves to the row's own columns (report_pack layout 2)."""
    return (report_id, device_id)


def payloads_of(conn: Connection, rows: Sequence[Any]) -> list[bytes]:
    """The signed payloads of ``reports`` rows (selected with SIGNED_COLUMNS), in order;
    the segments they need read with one query per month."""
    bodies = [bytes(row.body) for row in rows]
    wanted: dict[dt.date, set[bytes]] = {}
    for row, body in zip(rows, bodies):
        wanted.setdefault(month_of(row.received_at), set()).update(report_pack.segment_ids(body))
    segments: dict[tuple[dt.date, bytes], bytes] = {}
    for month, shas in wanted.items():
        if not shas:
            continue
        found = conn.execute(select(report_blobs.c.sha256, report_blobs.c.data)
                             .where(report_blobs.c.month == month, report_blobs.c.sha256.in_(sorted(shas)))).all()
        segments.update({(month, bytes(r.sha256)): report_pack.decompress_segment(bytes(r.data)) for r in found})
    out = []
    for row, body in zip(rows, bodies):
        month = month_of(row.received_at)
        out.append(report_pack.unpack(body, {sha: segments[(month, sha)] for sha in report_pack.segment_ids(body)
                                             if (month, sha) in segments},
                                      signed_refs(row.report_id, row.device_id)))
    return out


def payload_of(conn: Connection, row: Any) -> bytes:
    """The signed payload of a ``reports`` row (selected with SIGNED_COLUMNS)."""
    return payloads_of(conn, [row])[0]


def signed_envelope(conn: Connection, row: Any) -> tuple[str, str]:
    """(the report's DSSE envelope as JSON text, verifiable with the device's key; that key's keyid)."""
    payload = payload_of(conn, row)
    kid = report_pack.keyid_of(payload)
    return report_pack.envelope_text(payload, kid, bytes(row.signature)), kid


def envelope_of(conn: Connection, row: Any) -> str:
    """The report's DSSE envelope (JSON text), verifiable with the device's key."""
    return signed_envelope(conn, row)[0]
