"""Trend days are the organisation's local days (issue 14 item 2, issue 11 item 1): a
cached day of ``unit_day_ready`` records the time zone it was counted in, so a zone
change never mixes days.

Existing cached rows were counted on UTC days: their zone stays NULL, which matches no
zone, so they are counted again on first use. ``device_days`` rows are not re-keyed: a
row keeps only its day, not the report's time, so the rows filed before this change stay
under their UTC day (one day early only for a report made in the last hour or two of a
UTC day); rows from now on are filed under the local day.

Revision ID: 0015
Revises: 0014
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("unit_day_ready", sa.Column("zone", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("unit_day_ready") as batch:
        batch.drop_column("zone")
