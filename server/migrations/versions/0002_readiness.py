"""Readiness: users and sessions, exceptions with their audit log, the latest check
results per device (device_checks) and one row per device and day (device_days) for
the trend, and a per-unit maximum report age.

Existing devices get their device_checks filled from device_state.results, and one
device_days row for the day of their latest report, so summaries are right at once.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""
from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("units") as batch:
        batch.add_column(sa.Column("max_report_age_hours", sa.Integer, nullable=True))
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("password_hash", sa.String(300), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("scope_unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_users_scope_unit"), nullable=True),
        sa.Column("lang", sa.String(8), nullable=False, server_default="sv"),
        sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("disabled_at", TS, nullable=True),
        sa.UniqueConstraint("username", name="uq_users_username"),
        sa.CheckConstraint("role IN ('admin', 'security_officer', 'unit_manager')", name="ck_users_role"),
        sa.CheckConstraint("role <> 'unit_manager' OR scope_unit_id IS NOT NULL", name="ck_users_manager_scope"),
        sa.CheckConstraint("role <> 'admin' OR scope_unit_id IS NULL", name="ck_users_admin_scope"),
    )
    op.create_table(
        "sessions",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", name="fk_sessions_user"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
    )
    op.create_index("ix_sessions_user", "sessions", ["user_id"])
    op.create_table(
        "exceptions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("check_id", sa.String(200), nullable=False),
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id", name="fk_exceptions_device"), nullable=True),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_exceptions_unit"), nullable=True),
        sa.Column("justification", sa.Text, nullable=False),
        sa.Column("granted_by", sa.Integer, sa.ForeignKey("users.id", name="fk_exceptions_granted_by"), nullable=False),
        sa.Column("granted_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("revoked_by", sa.Integer, sa.ForeignKey("users.id", name="fk_exceptions_revoked_by"), nullable=True),
        sa.Column("revoke_reason", sa.Text, nullable=True),
        sa.CheckConstraint("(device_id IS NULL) <> (unit_id IS NULL)", name="ck_exceptions_target"),
    )
    op.create_index("ix_exceptions_check", "exceptions", ["check_id", "expires_at"])
    op.create_index("ix_exceptions_device", "exceptions", ["device_id"])
    op.create_index("ix_exceptions_unit", "exceptions", ["unit_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", name="fk_audit_log_user"), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_object", "audit_log", ["object_type", "object_id"])
    op.create_table(
        "device_checks",
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id", name="fk_device_checks_device"),
                  primary_key=True),
        sa.Column("check_id", sa.String(200), primary_key=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
    )
    op.create_index("ix_device_checks_check_status", "device_checks", ["check_id", "status"])
    op.create_table(
        "device_days",
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id", name="fk_device_days_device"),
                  primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("ready_strict", sa.Boolean, nullable=False),
        sa.Column("failing_required", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_device_days_day", "device_days", ["day"])
    op.create_index("ix_device_state_generated", "device_state", ["generated_at"])
    _backfill()


def _backfill() -> None:
    """device_checks and device_days from the latest state of devices reported before 0002."""
    from server.store import check_rows  # one definition of how results become rows

    bind = op.get_bind()
    ds = sa.table("device_state", sa.column("device_id"), sa.column("results", sa.JSON),
                  sa.column("generated_at", TS), sa.column("last_report_id"))
    dc = sa.table("device_checks", sa.column("device_id"), sa.column("check_id"), sa.column("severity"),
                  sa.column("status"))
    dd = sa.table("device_days", sa.column("device_id"), sa.column("day", sa.Date), sa.column("ready_strict", sa.Boolean),
                  sa.column("failing_required"))
    for row in bind.execute(sa.select(ds).where(ds.c.last_report_id.is_not(None))).mappings():
        results = row["results"]
        if isinstance(results, str):
            results = json.loads(results)
        rows, failing = check_rows(results or [])
        if rows:
            bind.execute(sa.insert(dc), [{"device_id": row["device_id"], **r} for r in rows])
        gen = row["generated_at"]
        if gen is not None:
            bind.execute(sa.insert(dd).values(device_id=row["device_id"], day=gen.date(), ready_strict=not failing,
                                              failing_required=",".join(failing)))


def downgrade() -> None:
    op.drop_index("ix_device_state_generated", "device_state")
    for name in ("device_days", "device_checks", "audit_log", "exceptions", "sessions", "users"):
        op.drop_table(name)
    with op.batch_alter_table("units") as batch:
        batch.drop_column("max_report_age_hours")
