"""A past day of the trend can be *due* (issue 11 item 1): each day row keeps the grace
deadline in force after its report (``device_days.due_until``, the earliest of the
failing required checks', NULL: none) and those failing checks without grace
(``failing_hard``), copied from ``device_state`` as the report is stored; the cache of
counted days gains a ``due`` count.

Backfill: a device's latest day row takes the deadline its latest state keeps (that row
is the latest report's day); older rows kept no deadline, so their failing checks count
as without grace (not ready, as before). Cached days have no due count (NULL) and are
counted again on first use.

Revision ID: 0016
Revises: 0015
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("device_days") as batch:
        batch.add_column(sa.Column("due_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("failing_hard", sa.Text, nullable=False, server_default=""))
    with op.batch_alter_table("unit_day_ready") as batch:
        batch.add_column(sa.Column("due", sa.Integer, nullable=True))
    op.execute("UPDATE device_days SET failing_hard = failing_required")
    op.execute("UPDATE device_days SET "
               "due_until = (SELECT s.due_until FROM device_state s WHERE s.device_id = device_days.device_id), "
               "failing_hard = (SELECT s.failing_hard FROM device_state s WHERE s.device_id = device_days.device_id) "
               "WHERE day = (SELECT max(l.day) FROM device_days l WHERE l.device_id = device_days.device_id) "
               "AND EXISTS (SELECT 1 FROM device_state s WHERE s.device_id = device_days.device_id "
               "AND s.failing_required = device_days.failing_required)")


def downgrade() -> None:
    with op.batch_alter_table("unit_day_ready") as batch:
        batch.drop_column("due")
    with op.batch_alter_table("device_days") as batch:
        batch.drop_column("failing_hard")
        batch.drop_column("due_until")
