"""Initial collector schema: units tree, enrolment tokens, devices and key history,
append-only reports, latest state per device, signed policies per unit.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "units",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("units.id", name="fk_units_parent"), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("path", sa.String(2000), nullable=False),
        sa.Column("depth", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("path", name="uq_units_path"),
    )
    op.create_table(
        "enrolment_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_tokens_unit"), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("max_uses", sa.Integer, nullable=False),
        sa.Column("uses", sa.Integer, nullable=False, server_default="0"),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("note", sa.String(500), nullable=True),
        sa.UniqueConstraint("token_sha256", name="uq_enrolment_tokens_sha256"),
        sa.CheckConstraint("uses <= max_uses", name="ck_enrolment_tokens_uses"),
    )
    op.create_index("ix_enrolment_tokens_unit", "enrolment_tokens", ["unit_id"])
    op.create_table(
        "devices",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_devices_unit"), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("serial", sa.String(255), nullable=True),
        sa.Column("os", sa.String(500), nullable=True),
        sa.Column("platform", sa.String(32), nullable=True),
        sa.Column("agent_version", sa.String(64), nullable=True),
        sa.Column("current_keyid", sa.String(64), nullable=False),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("enrolled_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("revoked_reason", sa.String(500), nullable=True),
    )
    op.create_index("ix_devices_unit", "devices", ["unit_id"])
    op.create_table(
        "device_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id", name="fk_device_keys_device"),
                  nullable=False),
        sa.Column("keyid", sa.String(64), nullable=False),
        sa.Column("public_key_pem", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("retired_at", TS, nullable=True),
        sa.UniqueConstraint("device_id", "keyid", name="uq_device_keys_device_keyid"),
    )
    op.create_table(
        "reports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("report_id", sa.String(36), nullable=False),
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id", name="fk_reports_device"), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("keyid", sa.String(64), nullable=False),
        sa.Column("generated_at", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("policy_id", sa.String(200), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("policy_sha256", sa.String(64), nullable=False),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.Column("envelope", sa.Text, nullable=False),
        sa.UniqueConstraint("report_id", name="uq_reports_report_id"),
        sa.UniqueConstraint("device_id", "sequence", name="uq_reports_device_sequence"),
        sa.CheckConstraint("sequence >= 1", name="ck_reports_sequence"),
    )
    op.create_index("ix_reports_device_received", "reports", ["device_id", "received_at"])
    op.create_table(
        "device_state",
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id", name="fk_device_state_device"),
                  primary_key=True),
        sa.Column("last_sequence", sa.BigInteger, nullable=False),
        sa.Column("last_report_id", sa.String(36), nullable=True),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.Column("policy_id", sa.String(200), nullable=True),
        sa.Column("policy_version", sa.String(64), nullable=True),
        sa.Column("policy_sha256", sa.String(64), nullable=True),
        sa.Column("agent_version", sa.String(64), nullable=True),
        sa.Column("facts", sa.JSON, nullable=True),
        sa.Column("results", sa.JSON, nullable=True),
        sa.Column("generated_at", TS, nullable=True),
        sa.Column("received_at", TS, nullable=True),
    )
    op.create_table(
        "unit_policies",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_unit_policies_unit"), nullable=False),
        sa.Column("policy_id", sa.String(200), nullable=True),
        sa.Column("policy_version", sa.String(64), nullable=True),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.Column("envelope", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_unit_policies_unit", "unit_policies", ["unit_id", "id"])
    # Append-only reports on PostgreSQL: the database refuses UPDATE and DELETE.
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION auditagent_reports_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'reports are append-only'; END $$""")
        op.execute("""
            CREATE TRIGGER reports_append_only BEFORE UPDATE OR DELETE ON reports
            FOR EACH ROW EXECUTE FUNCTION auditagent_reports_append_only()""")
    else:
        op.execute("""
            CREATE TRIGGER reports_no_update BEFORE UPDATE ON reports
            BEGIN SELECT RAISE(ABORT, 'reports are append-only'); END""")
        op.execute("""
            CREATE TRIGGER reports_no_delete BEFORE DELETE ON reports
            BEGIN SELECT RAISE(ABORT, 'reports are append-only'); END""")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS reports_append_only ON reports")
        op.execute("DROP FUNCTION IF EXISTS auditagent_reports_append_only()")
    for name in ("unit_policies", "device_state", "reports", "device_keys", "devices", "enrolment_tokens", "units"):
        op.drop_table(name)
