"""What the collector needs to hold under attack:

* ``enrolment_tokens.device_id``: a re-enrol token an administrator issued for one
  device (NULL: an ordinary unit token, which can only enrol *new* devices or re-key a
  device that proves possession of its current key).
* ``throttle``: failure counters and blocks for log-in and enrolment, one row per key
  (``pair:<user>|<addr>``, ``addr:<addr>``, ``account:<user>``, ``enroll:<addr>``, …),
  counted by one atomic upsert so parallel guesses are all counted, shared by every
  collector process on the database.

Revision ID: 0007
Revises: 0006
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("enrolment_tokens") as batch:
        batch.add_column(sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id",
                                   name="fk_enrolment_tokens_device"), nullable=True))
    op.create_table(
        "throttle",
        sa.Column("key", sa.String(400), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("blocks", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("throttle")
    with op.batch_alter_table("enrolment_tokens") as batch:
        batch.drop_column("device_id")
