"""Exports read a unit's devices in the order of an index (issue 13 item 4): device_state
(unit_id, device_id) replaces the index on unit_id alone, which it also serves (unit_id
leads). An export streams its rows by unit, then device id, straight off this index:
nothing is sorted, whatever the number of devices (the sort by device id spilled to
disk at 25,000 devices).

Revision ID: 0019
Revises: 0018
"""
from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_device_state_unit_device", "device_state", ["unit_id", "device_id"])
    op.drop_index("ix_device_state_unit", table_name="device_state")


def downgrade() -> None:
    op.create_index("ix_device_state_unit", "device_state", ["unit_id"])
    op.drop_index("ix_device_state_unit_device", table_name="device_state")
