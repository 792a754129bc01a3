"""Failing since and grace deadlines, kept at ingest (issue 11 items 2 and 3).

* ``device_checks.failing_since``: when the check started failing (status fail or
  unknown) in its current unbroken run; NULL while it is met.
* ``device_checks.due_until``: the grace deadline of that run (failing_since + the
  check's ``grace_hours`` in the policy the run *started* under); NULL: no grace.
* ``device_state.failing_since``: the earliest failing_since among the failing required
  checks; ``device_state.due_until``: the earliest deadline among them;
  ``device_state.failing_hard``: the failing required checks without grace (sorted,
  comma-joined), so the state (due or not ready) is still computed from device_state alone.

Backfill: the run of a check already failing before this revision is taken to start at
the latest report stored (the earliest moment known without reading every report), and
it gets no grace — no grace is granted retroactively.

Revision ID: 0012
Revises: 0011
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
FAILING = sa.text("status IN ('fail', 'unknown')")


def upgrade() -> None:
    with op.batch_alter_table("device_checks") as batch:
        batch.add_column(sa.Column("failing_since", TS, nullable=True))
        batch.add_column(sa.Column("due_until", TS, nullable=True))
    with op.batch_alter_table("device_state") as batch:
        batch.add_column(sa.Column("failing_since", TS, nullable=True))
        batch.add_column(sa.Column("due_until", TS, nullable=True))
        batch.add_column(sa.Column("failing_hard", sa.Text, nullable=False, server_default=""))
    op.execute("UPDATE device_checks SET failing_since = (SELECT ds.generated_at FROM device_state ds "
               "WHERE ds.device_id = device_checks.device_id) WHERE status IN ('fail', 'unknown')")
    op.execute("UPDATE device_state SET failing_since = generated_at, failing_hard = failing_required "
               "WHERE failing_required <> ''")
    # The unit page's "failing longest", oldest first, off an index of the failing rows.
    op.create_index("ix_device_checks_failing_since", "device_checks", ["failing_since"],
                    postgresql_where=FAILING, sqlite_where=FAILING)


def downgrade() -> None:
    op.drop_index("ix_device_checks_failing_since", "device_checks")
    with op.batch_alter_table("device_state") as batch:
        batch.drop_column("failing_hard")
        batch.drop_column("due_until")
        batch.drop_column("failing_since")
    with op.batch_alter_table("device_checks") as batch:
        batch.drop_column("due_until")
        batch.drop_column("failing_since")
