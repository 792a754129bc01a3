"""Readiness: what the dashboard, the API and the exports say about devices and units.

Computed in SQL from the latest-state rows (``device_state``, ``device_checks``,
``device_days``), on SQLite and PostgreSQL alike. Every function takes a SQLAlchemy
Connection, a :class:`Scope` (the unit subtree the user may see; ``Scope()`` = all
units) and ``now`` (so tests fix time). Nothing loops over devices in Python beyond the
page being shown; loops over units (a few hundred) and days (90) are fine.

Where to look:

=================== ==================================================================
``state``           how a device's state is decided (one definition) and the readiness %
``cover``           which failing checks active exceptions excuse
``units``           the overview tree and one unit's page
``devices``         one device: its row, its page, its timeline, signed reports, key
``trend``           the readiness trend per day
``exceptions``      granting, revoking and listing exceptions
``export``          CSV export
``versions``        agent versions and outdated agents
``audit``           the audit log
``scope``           who may see what; the errors raised (404/403/422)
``sql``             SQLite/PostgreSQL differences
=================== ==================================================================
"""
from __future__ import annotations

from server.readiness.state import (
    COUNTED_READY, DEFAULT_MAX_REPORT_AGE_HOURS, DUE, NEVER_REPORTED, NOT_READY, READY, STALE, STATES, StaleDevice,
    StateRow, device_state_rows, device_states, max_age_in_force, percent, ready_share, stale_longest, state_counts,
    state_rows, compact_groups,
    state_of)
from server.readiness.cover import (
    Cover, exception_cover)
from server.readiness.units import (
    FailingCheck, FailingRun, Overview, StateCounts, UnitDetail, UnitSummary, overview, scope_units, unit_detail,
    unit_tree)
from server.readiness.devices import (
    MAX_PER_PAGE, CheckResult, DeviceDetail, DevicePage, DeviceRow, SignedReport, Timeline, TimelineEntry,
    device_detail, device_public_key, device_timeline, report_envelope)
from server.readiness.trend import (
    BANDS, CLOSED_AFTER, TrendPoint, fresh_days, trend)
from server.readiness.exceptions import (
    MAX_EXCEPTION_DAYS, ExceptionInfo, get_exception, grant_exception, list_exceptions, revoke_exception)
from server.readiness.export import (
    CSV_COLUMNS, EXPORT_COLUMNS, ISO_UTC, MINUTES_UTC, XLSX_TYPE, ExportFilters, Labels, TimeText, csv_cell,
    csv_style_for, export_csv, export_for,
    export_csv_for, export_filename, export_fits, export_records, export_rows, export_xlsx, export_xlsx_for,
    export_machine_xlsx, EXCEL_MICROS, TimeMicros,
    xlsx_max_devices)
from server.readiness.versions import (
    AgentVersions, agent_versions, fleet_agent_versions, version_key)
from server.readiness.audit import (
    AuditEntry, audit_entries)
from server.readiness.scope import (
    Actor, Forbidden, Invalid, NotFound, Scope, in_subtree, scope_unit_ids, visible_device, visible_unit)

__all__ = [
    'COUNTED_READY', 'DEFAULT_MAX_REPORT_AGE_HOURS', 'DUE', 'NEVER_REPORTED', 'NOT_READY', 'READY', 'STALE', 'STATES', 'StaleDevice',
    'StateRow', 'state_rows', 'compact_groups', 'device_state_rows', 'device_states', 'percent', 'ready_share', 'stale_longest', 'state_counts', 'state_of', 'max_age_in_force', 'Cover', 'exception_cover',
    'FailingCheck', 'FailingRun', 'Overview', 'StateCounts', 'UnitDetail', 'UnitSummary', 'overview', 'scope_units',
    'unit_detail', 'unit_tree', 'MAX_PER_PAGE', 'CheckResult', 'DeviceDetail', 'DevicePage', 'DeviceRow',
    'SignedReport', 'Timeline', 'TimelineEntry', 'device_detail', 'device_public_key', 'device_timeline',
    'report_envelope', 'BANDS', 'CLOSED_AFTER', 'fresh_days', 'TrendPoint', 'trend', 'MAX_EXCEPTION_DAYS', 'ExceptionInfo',
    'get_exception', 'grant_exception', 'list_exceptions', 'revoke_exception', 'CSV_COLUMNS', 'EXPORT_COLUMNS', 'ISO_UTC', 'MINUTES_UTC', 'TimeText', 'XLSX_TYPE', 'ExportFilters', 'Labels', 'export_for', 'csv_style_for', 'export_csv_for',
    'export_filename', 'export_fits', 'export_records', 'xlsx_max_devices', 'export_xlsx', 'export_xlsx_for', 'csv_cell',
    'export_machine_xlsx', 'EXCEL_MICROS', 'TimeMicros',
    'export_csv', 'export_rows', 'AgentVersions', 'agent_versions', 'fleet_agent_versions', 'version_key',
    'AuditEntry', 'audit_entries', 'Actor', 'Forbidden', 'Invalid', 'NotFound', 'Scope', 'in_subtree',
    'scope_unit_ids', 'visible_device', 'visible_unit',
]
