"""What a device's state needs, on its device_state row; and a per-unit cache of the
trend's closed days.

* ``device_state.unit_id`` (a device never changes unit) and ``device_state.failing_required``
  (the latest report's required checks that are not met, sorted, comma-joined; '' when
  none): the state of every device is then computed from device_state alone, without
  joining 100,000 device rows or their check rows — only the few devices an active
  exception may cover consult device_checks.
* ``device_state.agent_version`` starts as the version given at enrolment (a report
  replaces it), so no query needs to fall back to devices.
* ``devices`` partial index on the revoked ones: every state query leaves them out.
* ``device_state.agent_version`` index: the fleet's versions by a loose index scan.
* ``device_checks`` partial index on failing checks of any severity (was: required only).
* ``unit_day_ready`` + ``units.history_version``: ready device-days per unit and closed
  UTC day, tagged with the unit's history version at the time they were counted. Only
  what can change a closed day bumps the version (a report that arrives after its day
  ended, a device revoked); a row with an older tag is recomputed.

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

REVOKED = sa.text("revoked_at IS NOT NULL")
FAILING = sa.text("status IN ('fail', 'unknown')")
FAILING_REQUIRED = sa.text("severity = 'required' AND status IN ('fail', 'unknown')")


def upgrade() -> None:
    with op.batch_alter_table("device_state") as batch:
        batch.add_column(sa.Column("unit_id", sa.Integer, nullable=True))
        batch.add_column(sa.Column("failing_required", sa.Text, nullable=False, server_default=""))
    # Every device has its row (enrolment makes it); make sure before relying on it.
    op.execute("INSERT INTO device_state (device_id, last_sequence) SELECT id, 0 FROM devices "
               "WHERE id NOT IN (SELECT device_id FROM device_state)")
    op.execute("UPDATE device_state SET unit_id = "
               "(SELECT devices.unit_id FROM devices WHERE devices.id = device_state.device_id)")
    op.execute("UPDATE device_state SET agent_version = "
               "(SELECT devices.agent_version FROM devices WHERE devices.id = device_state.device_id) "
               "WHERE agent_version IS NULL")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE device_state SET failing_required = f.ids FROM "
                   "(SELECT device_id, string_agg(check_id, ',' ORDER BY check_id) AS ids FROM device_checks "
                   " WHERE severity = 'required' AND status IN ('fail', 'unknown') GROUP BY device_id) AS f "
                   "WHERE f.device_id = device_state.device_id")
    else:  # SQLite: group_concat keeps the order of an ordered subquery
        op.execute("UPDATE device_state SET failing_required = coalesce("
                   "(SELECT group_concat(check_id, ',') FROM (SELECT check_id FROM device_checks dc "
                   "  WHERE dc.device_id = device_state.device_id AND dc.severity = 'required' "
                   "  AND dc.status IN ('fail', 'unknown') ORDER BY check_id)), '')")
    op.create_index("ix_device_state_unit", "device_state", ["unit_id"])
    op.create_index("ix_device_state_agent_version", "device_state", ["agent_version"])
    # Failing checks of every severity (the unit page counts recommended ones too); the
    # severity rides in the index, so the required-only index it replaces is not needed.
    op.drop_index("ix_device_checks_failing_required", table_name="device_checks")
    op.create_index("ix_device_checks_failing", "device_checks", ["device_id", "check_id", "severity"],
                    postgresql_where=FAILING, sqlite_where=FAILING)
    op.create_index("ix_devices_revoked", "devices", ["id"], postgresql_where=REVOKED, sqlite_where=REVOKED)
    with op.batch_alter_table("units") as batch:
        batch.add_column(sa.Column("history_version", sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "unit_day_ready",
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id"), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("ready", sa.Integer, nullable=False),
        sa.Column("history_version", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("unit_day_ready")
    with op.batch_alter_table("units") as batch:
        batch.drop_column("history_version")
    op.drop_index("ix_devices_revoked", table_name="devices")
    op.drop_index("ix_device_checks_failing", table_name="device_checks")
    op.create_index("ix_device_checks_failing_required", "device_checks", ["device_id", "check_id"],
                    postgresql_where=FAILING_REQUIRED, sqlite_where=FAILING_REQUIRED)
    op.drop_index("ix_device_state_agent_version", table_name="device_state")
    op.drop_index("ix_device_state_unit", table_name="device_state")
    with op.batch_alter_table("device_state") as batch:
        batch.drop_column("failing_required")
        batch.drop_column("unit_id")
