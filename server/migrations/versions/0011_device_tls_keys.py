"""The TLS key each device registered for its readiness certificates
(server/access.py): the public key (DER SubjectPublicKeyInfo) and the time the device
signed its registration (a later registration replaces it; an older one is refused).

Revision ID: 0011
Revises: 0010
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_tls_keys",
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), primary_key=True),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("key_sha256", sa.String(64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("device_tls_keys")
