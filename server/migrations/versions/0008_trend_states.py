"""The trend's cache counts every state of a closed day, not only the ready devices:
``unit_day_ready.not_ready`` and ``.stale`` (never reported = enrolled − the three).
Rows counted before this (NULL) are counted again on first use.

``exceptions.expires_on``: the date an officer picked when granting by date (the exception
is valid through that day in the organisation's time zone), shown as that date.

Revision ID: 0008
Revises: 0007
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("unit_day_ready") as batch:
        batch.add_column(sa.Column("not_ready", sa.Integer, nullable=True))
        batch.add_column(sa.Column("stale", sa.Integer, nullable=True))
    with op.batch_alter_table("exceptions") as batch:
        batch.add_column(sa.Column("expires_on", sa.Date, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("exceptions") as batch:
        batch.drop_column("expires_on")
    with op.batch_alter_table("unit_day_ready") as batch:
        batch.drop_column("stale")
        batch.drop_column("not_ready")
