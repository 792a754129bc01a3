"""The unit on each day row: the trend sums a subtree's device-days per day, and joining
millions of day rows to devices just to learn their unit was most of its cost. A device
never changes unit (re-enrolment stays in its unit), so the copy cannot go stale.

Revision ID: 0004
Revises: 0003
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("device_days") as batch:
        batch.add_column(sa.Column("unit_id", sa.Integer, nullable=True))
    op.execute("UPDATE device_days SET unit_id = "
               "(SELECT devices.unit_id FROM devices WHERE devices.id = device_days.device_id)")
    op.create_index("ix_device_days_unit_day", "device_days", ["unit_id", "day"])


def downgrade() -> None:
    op.drop_index("ix_device_days_unit_day", table_name="device_days")
    with op.batch_alter_table("device_days") as batch:
        batch.drop_column("unit_id")
