"""A covering index on devices in the order exports and device lists join them (issue 13
item 4): ``ix_devices_unit_cover`` (unit_id, id), on PostgreSQL INCLUDE (hostname,
platform, os, revoked_at). ``device_state_rows`` joins a device's row on its unit and id,
the order ``device_state`` is read in (0019), so each device's list columns come from the
index alone instead of a ``devices_pkey`` lookup plus its heap row: on the 25k-device unit
of a 100k fleet 75,010 buffer hits instead of 100,012, and the export's PostgreSQL CPU
fell from 475 to 335 ms. It replaces ``ix_devices_unit`` (unit_id), which it also serves.
devices is written at enrolment, re-keying and revocation only, never by a report.
On SQLite the same key without the included columns (SQLite has no INCLUDE).

Revision ID: 0021
Revises: 0020
"""
from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_devices_unit_cover", "devices", ["unit_id", "id"],
                    postgresql_include=["hostname", "platform", "os", "revoked_at"])
    op.drop_index("ix_devices_unit", table_name="devices")


def downgrade() -> None:
    op.create_index("ix_devices_unit", "devices", ["unit_id"])
    op.drop_index("ix_devices_unit_cover", table_name="devices")
