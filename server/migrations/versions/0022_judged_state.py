"""The time-dependent inputs of each device's state, judged and stored (issue 13 item 4;
server/readiness/judged.py): ``device_state.counted_stale`` / ``counted_due`` with the
span of moments they hold for (``judged_from``, ``judge_again_at``; indexed, so a page
finds the few devices whose span has ended), the same flags in ``unit_state_deltas``'
group key (the triggers of 0017 now count them), and ``unit_judged_ages``: the max report
age each unit's devices are judged with (the default 24 h for units on the default; a
collector serving another default settles them at its first sweep).

Existing devices are judged as ingest judges them (at their latest report's time); the
triggers move their counts. Pages are right before any sweep: the devices whose span has
ended are judged one by one, as all the stale and within-grace ones were before.

Revision ID: 0022
Revises: 0021
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_KEY = "unit_id, agent_version, failing_required, failing_hard"


def _cols(judged: bool) -> str:
    return f"{_KEY}, n, never" + (", stale, due" if judged else "")


def _changed(judged: bool) -> str:
    out = ("OLD.unit_id IS NOT NEW.unit_id OR OLD.agent_version IS NOT NEW.agent_version "
           "OR OLD.failing_required IS NOT NEW.failing_required OR OLD.failing_hard IS NOT NEW.failing_hard "
           "OR (OLD.last_report_id IS NULL) <> (NEW.last_report_id IS NULL)")
    if judged:
        out += " OR OLD.counted_stale IS NOT NEW.counted_stale OR OLD.counted_due IS NOT NEW.counted_due"
    return out


def _row(rec: str, sign: str, judged: bool) -> str:
    extra = f", {rec}.counted_stale, {rec}.counted_due" if judged else ""
    return (f"INSERT INTO unit_state_deltas ({_cols(judged)}) SELECT {rec}.unit_id, {rec}.agent_version, "
            f"{rec}.failing_required, {rec}.failing_hard, {sign}1, "
            f"CASE WHEN {rec}.last_report_id IS NULL THEN {sign}1 ELSE 0 END{extra} WHERE {rec}.unit_id IS NOT NULL;")


def _drop() -> None:
    """The triggers that name the columns changed (dropped before a table is altered:
    PostgreSQL refuses to drop a column a trigger names, SQLite's batch copy of a table
    fails on a trigger naming it)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS device_state_counts_update ON device_state")
    else:
        for n in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS device_state_counts_{n}")


def _pg(judged: bool) -> list[str]:
    return [
        f"CREATE OR REPLACE FUNCTION unit_state_delta() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n  IF TG_OP <> 'INSERT' THEN {_row('OLD', '-', judged)} END IF;\n"
        f"  IF TG_OP <> 'DELETE' THEN {_row('NEW', '', judged)} END IF;\n  RETURN NULL;\nEND $$",
        "CREATE TRIGGER device_state_counts_update AFTER UPDATE ON device_state FOR EACH ROW WHEN ("
        + _changed(judged).replace(" IS NOT ", " IS DISTINCT FROM ") + ") EXECUTE FUNCTION unit_state_delta()",
    ]


def _sqlite(judged: bool) -> list[str]:
    return [
        f"CREATE TRIGGER device_state_counts_insert AFTER INSERT ON device_state BEGIN {_row('NEW', '', judged)} END",
        f"CREATE TRIGGER device_state_counts_delete AFTER DELETE ON device_state BEGIN {_row('OLD', '-', judged)} END",
        f"CREATE TRIGGER device_state_counts_update AFTER UPDATE ON device_state WHEN {_changed(judged)} "
        f"BEGIN {_row('OLD', '-', judged)} {_row('NEW', '', judged)} END",
    ]


def _triggers(judged: bool) -> None:
    _drop()
    for t in (_pg if op.get_bind().dialect.name == "postgresql" else _sqlite)(judged):
        op.execute(t)


def upgrade() -> None:
    from server.judged_sql import ingest_judgement

    _drop()
    with op.batch_alter_table("device_state") as batch:
        batch.add_column(sa.Column("counted_stale", sa.SmallInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("counted_due", sa.SmallInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("judged_from", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("judge_again_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("unit_state_deltas") as batch:
        batch.add_column(sa.Column("stale", sa.SmallInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("due", sa.SmallInteger(), nullable=False, server_default="0"))
    op.create_table("unit_judged_ages", sa.Column("unit_id", sa.Integer(), primary_key=True),
                    sa.Column("hours", sa.Integer(), nullable=False))
    op.create_index("ix_device_state_judge_again", "device_state", ["judge_again_at"],
                    postgresql_where=sa.text("judge_again_at IS NOT NULL"),
                    sqlite_where=sa.text("judge_again_at IS NOT NULL"))
    op.create_index("ix_device_state_judged_from", "device_state", ["judged_from"],
                    postgresql_where=sa.text("judged_from IS NOT NULL"), sqlite_where=sa.text("judged_from IS NOT NULL"))
    _triggers(True)
    # Each unit's own or nearest ancestor's max age, else the default (24 h).
    rows = op.get_bind().execute(sa.text("SELECT id, path, max_report_age_hours FROM units")).all()
    own = {path: int(h) for _i, path, h in rows if h is not None}
    ages = []
    for uid, path, _h in rows:
        parts = path.split("/")
        ages.append({"u": uid, "h": next((own[p] for p in ("/".join(parts[:i]) for i in range(len(parts), 0, -1))
                                          if p in own), 24)})
    if ages:
        op.get_bind().execute(sa.text("INSERT INTO unit_judged_ages (unit_id, hours) VALUES (:u, :h)"), ages)
    on = op.get_bind().dialect.name
    op.execute("UPDATE device_state SET " + ingest_judgement(on, "device_state.generated_at", "device_state.due_until",
                                                             "device_state.unit_id")
               + " WHERE last_report_id IS NOT NULL")


def downgrade() -> None:
    op.execute("UPDATE device_state SET counted_stale = 0, counted_due = 0")  # the triggers move the counts back
    _drop()
    op.drop_index("ix_device_state_judged_from", "device_state")
    op.drop_index("ix_device_state_judge_again", "device_state")
    op.drop_table("unit_judged_ages")
    with op.batch_alter_table("unit_state_deltas") as batch:
        batch.drop_column("due")
        batch.drop_column("stale")
    with op.batch_alter_table("device_state") as batch:
        for c in ("judge_again_at", "judged_from", "counted_due", "counted_stale"):
            batch.drop_column(c)
    _triggers(False)  # last: SQLite's batch copy of device_state drops its triggers
