""""Already stored?" in one lookup, not one per monthly partition (issue 13 item 2).

Ingest refuses a report whose id, or whose (device, sequence), is stored already. On
PostgreSQL ``reports`` is partitioned by month of receipt, so each of those checks probed
an index in every partition: with 18 months instead of 5, PostgreSQL's CPU per report grew
by 23 %, and it grows every month. Now:

* ``report_ids`` holds every stored report's id (primary key) and month of receipt; the
  id check is one lookup there. Retention deletes a month's ids with that month's reports
  (``ix_report_ids_month``, BRIN on PostgreSQL).
* ``device_state.stored_sequence_max`` is the highest sequence stored for the device
  (latest or history). A report above it cannot be stored already, so the (device,
  sequence) lookup in ``reports`` runs only for a report at or below it (history, replays:
  rare), where it decides as before.

Both tables are filled from the stored reports here (the backfill). The same on SQLite
(not partitioned, one code path: the same outcome for every report).

Revision ID: 0023
Revises: 0022
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("device_state", sa.Column("stored_sequence_max", sa.BigInteger(), nullable=False,
                                            server_default="0"))
    op.create_table("report_ids",
                    sa.Column("report_id", sa.String(36), primary_key=True),
                    sa.Column("month", sa.Date(), nullable=False))
    if bind.dialect.name == "postgresql":
        month = "date_trunc('month', received_at AT TIME ZONE 'UTC')::date"
    else:  # SQLAlchemy's SQLite DateTime text is naive UTC, 'YYYY-MM-DD HH:MM:SS.ffffff'
        month = "substr(received_at, 1, 7) || '-01'"
    # Ids are unique among stored reports (UNIQUE on SQLite; advisory locks and checks on
    # PostgreSQL): a plain copy.
    op.execute(f"INSERT INTO report_ids (report_id, month) SELECT report_id, {month} FROM reports")
    op.execute("UPDATE device_state SET stored_sequence_max = COALESCE((SELECT MAX(r.sequence) FROM reports r "
               "WHERE r.device_id = device_state.device_id), 0)")
    op.create_index("ix_report_ids_month", "report_ids", ["month"], postgresql_using="brin")


def downgrade() -> None:
    op.drop_index("ix_report_ids_month", table_name="report_ids")
    op.drop_table("report_ids")
    # In place on SQLite too (3.35+): a batch rebuild of device_state would drop its triggers (0017's).
    op.execute("ALTER TABLE device_state DROP COLUMN stored_sequence_max")
