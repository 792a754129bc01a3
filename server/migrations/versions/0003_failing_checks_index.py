"""Partial index on the failing required checks: the device-state queries read only
those rows (a few per failing device), not every check of every device.

Revision ID: 0003
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

FAILING = sa.text("severity = 'required' AND status IN ('fail', 'unknown')")


def upgrade() -> None:
    op.create_index("ix_device_checks_failing_required", "device_checks", ["device_id", "check_id"],
                    postgresql_where=FAILING, sqlite_where=FAILING)


def downgrade() -> None:
    op.drop_index("ix_device_checks_failing_required", table_name="device_checks")
