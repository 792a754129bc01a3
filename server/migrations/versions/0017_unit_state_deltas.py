"""Per-unit counts of alike devices, kept at ingest (issue 13 item 4, issue 11 item 7):
``unit_state_deltas`` holds, per (unit, agent version, failing required checks, those
without grace), +1/−1 rows written by triggers on ``device_state`` whenever a row's group
or its never-reported flag changes. Insert-only: concurrent reports never wait on a
shared counter row; a report that leaves the device in its group writes nothing. The
dashboard sums the rows (a few thousand groups) instead of reading every device; the
time-dependent part of the state (stale, within grace) and the few revoked devices and
devices with their own exception are corrected from their own rows
(:func:`server.readiness.state.device_groups`). Sums are folded together from time to
time (:func:`server.readiness.state.compact_groups`).

Revision ID: 0017
Revises: 0016
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_COLS = "unit_id, agent_version, failing_required, failing_hard, n, never"
_CHANGED = ("OLD.unit_id IS NOT NEW.unit_id OR OLD.agent_version IS NOT NEW.agent_version "
            "OR OLD.failing_required IS NOT NEW.failing_required OR OLD.failing_hard IS NOT NEW.failing_hard "
            "OR (OLD.last_report_id IS NULL) <> (NEW.last_report_id IS NULL)")


def _row(rec: str, sign: str) -> str:
    return (f"INSERT INTO unit_state_deltas ({_COLS}) SELECT {rec}.unit_id, {rec}.agent_version, "
            f"{rec}.failing_required, {rec}.failing_hard, {sign}1, "
            f"CASE WHEN {rec}.last_report_id IS NULL THEN {sign}1 ELSE 0 END WHERE {rec}.unit_id IS NOT NULL;")


PG_FUNCTION = f"""
CREATE FUNCTION unit_state_delta() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN {_row('OLD', '-')} END IF;
  IF TG_OP <> 'DELETE' THEN {_row('NEW', '')} END IF;
  RETURN NULL;
END $$"""
PG_TRIGGERS = [
    "CREATE TRIGGER device_state_counts AFTER INSERT OR DELETE ON device_state "
    "FOR EACH ROW EXECUTE FUNCTION unit_state_delta()",
    "CREATE TRIGGER device_state_counts_update AFTER UPDATE ON device_state FOR EACH ROW WHEN ("
    + _CHANGED.replace(" IS NOT ", " IS DISTINCT FROM ") + ") EXECUTE FUNCTION unit_state_delta()",
]
SQLITE_TRIGGERS = [
    f"CREATE TRIGGER device_state_counts_insert AFTER INSERT ON device_state BEGIN {_row('NEW', '')} END",
    f"CREATE TRIGGER device_state_counts_delete AFTER DELETE ON device_state BEGIN {_row('OLD', '-')} END",
    f"CREATE TRIGGER device_state_counts_update AFTER UPDATE ON device_state WHEN {_CHANGED} "
    f"BEGIN {_row('OLD', '-')} {_row('NEW', '')} END",
]


def upgrade() -> None:
    op.create_table(
        "unit_state_deltas",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("agent_version", sa.String(64), nullable=True),
        sa.Column("failing_required", sa.Text(), nullable=False),
        sa.Column("failing_hard", sa.Text(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("never", sa.Integer(), nullable=False),
    )
    op.create_index("ix_unit_state_deltas_unit", "unit_state_deltas", ["unit_id"])
    # The devices within grace are read one by one (the counts cannot know the time).
    op.create_index("ix_device_state_due", "device_state", ["due_until"],
                    postgresql_where=sa.text("due_until IS NOT NULL"), sqlite_where=sa.text("due_until IS NOT NULL"))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        for t in PG_TRIGGERS:
            op.execute(t)
    else:
        for t in SQLITE_TRIGGERS:
            op.execute(t)
    # The devices already stored: one row per group.
    op.execute(f"INSERT INTO unit_state_deltas ({_COLS}) SELECT unit_id, agent_version, failing_required, "
               "failing_hard, count(*), sum(CASE WHEN last_report_id IS NULL THEN 1 ELSE 0 END) FROM device_state "
               "WHERE unit_id IS NOT NULL GROUP BY unit_id, agent_version, failing_required, failing_hard")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER device_state_counts_update ON device_state")
        op.execute("DROP TRIGGER device_state_counts ON device_state")
        op.execute("DROP FUNCTION unit_state_delta()")
    else:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER device_state_counts_{name}")
    op.drop_index("ix_device_state_due", "device_state")
    op.drop_index("ix_unit_state_deltas_unit", "unit_state_deltas")
    op.drop_table("unit_state_deltas")
