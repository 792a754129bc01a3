"""Indexes in the orders a unit page reads (issue 13 item 4), so that it judges the devices
it shows, not every device of the subtree (:mod:`server.readiness.state_page`,
:func:`server.readiness.units._failing_checks`):

* ``ix_devices_hostname`` (hostname, id, unit_id): the first page of a subtree's devices
  in one state, walked in hostname order; the unit id is in the index so the walk tells
  the subtree's devices apart without reading their rows;
* ``ix_device_checks_severity_since`` (severity, check_id, failing_since) of the failing
  rows: each required check's oldest failing run (a short walk per check), and the
  recommended checks' failing rows (no count of them is kept at ingest).

Revision ID: 0020
Revises: 0019
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

FAILING = sa.text("status IN ('fail', 'unknown')")


def upgrade() -> None:
    op.create_index("ix_devices_hostname", "devices", ["hostname", "id", "unit_id"])
    op.create_index("ix_device_checks_severity_since", "device_checks", ["severity", "check_id", "failing_since"],
                    postgresql_where=FAILING, sqlite_where=FAILING)


def downgrade() -> None:
    op.drop_index("ix_device_checks_severity_since", "device_checks")
    op.drop_index("ix_devices_hostname", table_name="devices")
