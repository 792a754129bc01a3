"""The history of each unit's max report age (issue 11 item 1): a past day of the trend
judges each device fresh or stale by the max age in force at that day's end.

Backfill: a unit that sets its own max age today is taken to have set it since the unit
was created (the earliest moment known; nothing older was kept).

Revision ID: 0014
Revises: 0013
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unit_max_age_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("max_report_age_hours", sa.Integer, nullable=True),
        sa.Column("from_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_unit_max_age_history_unit", "unit_max_age_history", ["unit_id", "from_at"])
    op.execute("INSERT INTO unit_max_age_history (unit_id, max_report_age_hours, from_at) "
               "SELECT id, max_report_age_hours, created_at FROM units WHERE max_report_age_hours IS NOT NULL")


def downgrade() -> None:
    op.drop_index("ix_unit_max_age_history_unit", "unit_max_age_history")
    op.drop_table("unit_max_age_history")
