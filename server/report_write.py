"""Writing verified reports: a batch of prepared reports (one per device) stored in the
caller's transaction, for :class:`server.group_commit.GroupCommit`.

The sequence rule is decided by the database. The UPDATE of ``device_state`` takes each
device's row lock and advances ``last_sequence`` only if the report's sequence is above
it AND the device is still active with this key AND the report id is not stored yet;
otherwise it touches no row and nothing of that report is stored. UNIQUE(device_id,
sequence) and UNIQUE(report_id) on ``reports`` back it up (a violation undoes the whole
transaction; the group commit then redoes each report alone). On PostgreSQL, where
``reports`` is partitioned by month and a UNIQUE index would have to include the month,
the same NOT EXISTS conditions under the device's row lock decide alone. Neither check
reads ``reports`` for a new report (0023): the id is looked up in ``report_ids`` (one
primary-key probe; written with each stored report), and the (device, sequence) lookup,
which probes every monthly partition, runs only for a sequence at or below the device's
``stored_sequence_max`` (history and replays). The report's
facts and results segments (server/report_pack.py) go to ``report_blobs`` (ON CONFLICT DO
NOTHING: stored once per month), only for reports stored. The latest results
(``device_checks``) and the report's local day (``device_days``, in the Store's time zone) are written in the same
transaction, only for the devices whose state advanced.

Plain SQL on the hot path: building SQLAlchemy statements per request cost more CPU
than verifying the signature.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from sqlalchemy.engine import Connection

from server.judged_sql import AGES_LOCK_KEY, ingest_judgement

# A prepared report (built by Store.ingest): the columns below (``body`` and ``signature``
# as bytes), plus ``check_list`` as rows, ``month`` (of
# receipt) and ``blobs``: the segments to store, [(sha256, zlib data)] (those this
# process has not stored this month yet).
# (The keyid and the policy's sha256 are in the signed payload, not stored apart: 0018.)
_REPORT_COLUMNS = ("report_id", "device_id", "sequence", "generated_at", "received_at", "verdict",
                   "policy_id", "policy_version", "body", "signature")
_REPORT_VALUES = ("report_id", "device_id", "sequence", "generated_at", "received_at", "verdict",
                  "policy_id", "policy_version", "body", "signature")
# Each stored report raises its device's highest stored sequence (never lowers it).
_RAISE_MAX = ("stored_sequence_max = CASE WHEN device_state.stored_sequence_max < {sequence} THEN {sequence} "
              "ELSE device_state.stored_sequence_max END")
_STATE_SET = ("last_sequence = {sequence}, " + _RAISE_MAX + ", last_report_id = {report_id}, verdict = {verdict}, "
              "policy_id = {policy_id}, policy_version = {policy_version}, policy_sha256 = {policy_sha256}, "
              "agent_version = {agent_version}, "
              "generated_at = {generated_at}, received_at = {received_at}, failing_required = {failing_required}")
_ACTIVE_WITH_KEY = ("EXISTS (SELECT 1 FROM devices WHERE devices.id = {device_id} AND devices.revoked_at IS NULL "
                    "AND devices.current_keyid = {kid})")
# A report older than the latest state (lower sequence or earlier generated_at) does not
# advance it: the store keeps it as history (store_history). "Not stored yet": its id is
# not in report_ids, and its sequence is above the highest stored for the device or not
# found in reports (evaluated in that order: OR stops at the first arm that holds).
# ``{stored_max}`` is that highest sequence, as the statement can read it.
_NOT_STORED = ("NOT EXISTS (SELECT 1 FROM report_ids WHERE report_ids.report_id = {report_id}) "
               "AND ({sequence} > {stored_max} OR NOT EXISTS (SELECT 1 FROM reports "
               "WHERE reports.device_id = {device_id} AND reports.sequence = {sequence}))")
_STATE_WHERE = ("device_state.device_id = {device_id} AND device_state.last_sequence < {sequence} "
                "AND (device_state.generated_at IS NULL OR device_state.generated_at <= {generated_at}) "
                "AND " + _ACTIVE_WITH_KEY + " AND " + _NOT_STORED)
_STORED_MAX_OF = "(SELECT s.stored_sequence_max FROM device_state s WHERE s.device_id = {device_id})"
_NAMES = set(_REPORT_VALUES) | {"kid", "policy_sha256", "agent_version", "failing_required", "day", "ready_strict",
                                 "month"}


def _fill(template: str, marks: dict[str, str], stored_max: str = "device_state.stored_sequence_max") -> str:
    """``template`` with each column's mark; ``stored_max`` as the statement reads the device's
    highest stored sequence (device_state's row in an UPDATE of it, else a subquery)."""
    return template.format(stored_max=stored_max, **marks)


def _history_fill(template: str, marks: dict[str, str]) -> str:
    return _fill(template, marks, _STORED_MAX_OF.format(**marks))


# ------------------------------------------------------------------ failing since, grace (0012)

# A check's failing run, carried over from its previous row (the device's latest stored
# state, never a scan of history): still failing → the run's start and deadline stay;
# newly failing → this report's time and its policy's deadline (precomputed per row);
# met → neither. Both dialects, one rule. In an upsert's SET, ``device_checks.*`` is the
# previous row and ``EXCLUDED.*`` the new one.
_NOT_MET = "IN ('fail', 'unknown')"  # = server.store.FAILING_STATUSES


def _carried(old: str, new: str) -> dict[str, str]:
    """A check's row from its new values (``new``, this report's) and its previous row
    (``old``; all NULL when there was none)."""
    return {
        "severity": f"{new}.severity", "status": f"{new}.status",
        "failing_since": f"CASE WHEN {new}.status {_NOT_MET} THEN COALESCE(CASE WHEN {old}.status {_NOT_MET} "
                         f"THEN {old}.failing_since END, {new}.failing_since) END",
        "due_until": f"CASE WHEN {new}.status {_NOT_MET} THEN CASE WHEN {old}.status {_NOT_MET} "
                     f"AND {old}.failing_since IS NOT NULL THEN {old}.due_until ELSE {new}.due_until END END",
    }


_NEW_CHECK = _carried("device_checks", "EXCLUDED")
# A check that an hourly report repeats (the usual case) keeps its row as it is: the update
# is skipped where it would write the same values (no new row version, no WAL for it).
# ``{distinct}`` is the dialect's null-safe "differs": IS DISTINCT FROM, or SQLite's IS NOT.
_UPSERT_CHECK = (
    "INSERT INTO device_checks (device_id, check_id, severity, status, failing_since, due_until) {rows} "
    "ON CONFLICT (device_id, check_id) DO UPDATE SET " + ", ".join(f"{c} = {v}" for c, v in _NEW_CHECK.items())
    + " WHERE " + " OR ".join(f"device_checks.{c} {{distinct}} {v}" for c, v in _NEW_CHECK.items()))
# Then the device's own: its failing required checks' earliest start and deadline, and
# those of them without grace (what makes it not ready at once).
_REQ_FAILING_ROW = "{t}.severity = 'required' AND {t}.status " + _NOT_MET
_REQ_FAILING = ("FROM device_checks dc WHERE dc.device_id = device_state.device_id AND "
                + _REQ_FAILING_ROW.format(t="dc"))
_DEVICE_RUN = ("UPDATE device_state SET failing_since = (SELECT MIN(dc.failing_since) " + _REQ_FAILING + "), "
               "due_until = (SELECT MIN(dc.due_until) " + _REQ_FAILING + "), failing_hard = COALESCE(({hard}), '') "
               "WHERE device_state.device_id {which}")
# The report's day row (the day's last report wins) keeps the device's run as this report
# left it (0016), read from device_state after its run is updated: a closed day of the trend
# is then judged by the same rule as now, due while its deadline is ahead. One statement
# for both dialects, over rows ``{rows}`` of (device_id, day, ready_strict, failing_required).
_UPSERT_DAY = (
    "INSERT INTO device_days (device_id, day, ready_strict, failing_required, unit_id, due_until, failing_hard) "
    "SELECT x.device_id, x.day, x.ready_strict, x.failing_required, run.unit_id, run.due_until, run.failing_hard "
    "FROM {rows} JOIN {run} run ON run.device_id = x.device_id WHERE true "
    "ON CONFLICT (device_id, day) DO UPDATE SET ready_strict = excluded.ready_strict, "
    "failing_required = excluded.failing_required, due_until = excluded.due_until, "
    "failing_hard = excluded.failing_hard")
_DEVICE_RUN_SQLITE = _DEVICE_RUN.format(  # group_concat keeps the order of an ordered subquery
    hard="SELECT group_concat(check_id, ',') FROM (SELECT dc.check_id " + _REQ_FAILING
         + " AND dc.due_until IS NULL ORDER BY dc.check_id)", which="= :device_id")


# ------------------------------------------------------------------ PostgreSQL

# One statement for the whole batch. The batch travels as typed arrays, one per column,
# bound in binary (psycopg's ``%(name)b``): the bytes arrive as bytea, the times as
# timestamptz, nothing is parsed from text (a JSON batch with hex bytes cost ~17 % of
# PostgreSQL's CPU in decoding). ``unnest`` turns the arrays back into rows: the reports
# (``b``), their checks (``c``, keyed by device) and the segments to store (``bl``, keyed
# by device). Each data-modifying CTE keys on the devices that advanced.
_PG_REPORT_TYPES = {
    "device_id": "text", "kid": "text", "sequence": "bigint", "report_id": "text", "verdict": "text",
    "policy_id": "text", "policy_version": "text", "policy_sha256": "text", "agent_version": "text",
    "generated_at": "timestamptz", "received_at": "timestamptz", "body": "bytea", "signature": "bytea",
    "month": "date", "day": "date", "ready_strict": "boolean", "failing_required": "text", "late": "boolean",
}
_PG_CHECK_TYPES = {"device_id": "text", "check_id": "text", "severity": "text", "status": "text",
                   "failing_since": "timestamptz", "due_until": "timestamptz"}
_PG_BLOB_TYPES = {"device_id": "text", "month": "date", "sha": "bytea", "data": "bytea"}


def _unnest(prefix: str, types: dict[str, str], alias: str) -> str:
    """Rows of the arrays bound as ``%(prefix_column)b`` (each cast: an all-NULL array has no type of its own)."""
    return (f"{alias} AS (SELECT * FROM unnest(" + ", ".join(f"%({prefix}{n})b::{t}[]" for n, t in types.items())
            + f") AS {alias}(" + ", ".join(types) + ")), ")


_PG_ROWS = (_unnest("r_", _PG_REPORT_TYPES, "b") + _unnest("c_", _PG_CHECK_TYPES, "c")
            + _unnest("s_", _PG_BLOB_TYPES, "bl"))
_B = {n: f"b.{n}" for n in _NAMES}
_ADVANCED = "b JOIN advanced a ON a.device_id = b.device_id JOIN devices d ON d.id = b.device_id"


def _ids_of(keys: str) -> str:
    """The CTE recording the ids of the reports of the devices in CTE ``keys`` (report_ids)."""
    return ("ids AS (INSERT INTO report_ids (report_id, month) SELECT b.report_id, b.month FROM b "
            f"JOIN {keys} k ON k.device_id = b.device_id), ")


def _blobs_of(keys: str) -> str:
    """The CTE storing the segments of the reports of the devices in CTE ``keys`` (once per month and digest)."""
    return ("blobs AS (INSERT INTO report_blobs (month, sha256, data) SELECT DISTINCT ON (x.month, x.sha) "
            f"x.month, x.sha, x.data FROM bl x JOIN {keys} k ON k.device_id = x.device_id ON CONFLICT DO NOTHING), ")


# Each check's row as this report leaves it, carried over from its previous row (read in
# the statement's snapshot: only ingest writes device_checks, under the device's advisory
# lock), and from them the device's run, so that device_state is updated once per report.
# The previous rows (``prev``) are read a device at a time, by the primary key's prefix
# (OFFSET 0 keeps the subquery a lookup per device: joined freely, the planner may scan
# the whole table, or use the (check_id, status) index and filter every device's rows);
# then every join is between the batch's own rows, which a hash serves whatever the
# estimates (a nested loop over them grows with the square of the batch).
_PG_NEW_CHECKS = (
    "prev AS (SELECT o.* FROM b CROSS JOIN LATERAL (SELECT o.device_id, o.check_id, o.status, o.failing_since, "
    "o.due_until FROM device_checks o WHERE o.device_id = b.device_id OFFSET 0) o), "
    "new_checks AS (SELECT x.device_id, x.check_id, "
    + ", ".join(f"{v} AS {c}" for c, v in _carried("o", "x").items()) + " FROM c x "
    "LEFT JOIN prev o ON o.device_id = x.device_id AND o.check_id = x.check_id), "
    "run AS (SELECT n.device_id, MIN(n.failing_since) FILTER (WHERE " + _REQ_FAILING_ROW.format(t="n") + ") AS since, "
    "MIN(n.due_until) FILTER (WHERE " + _REQ_FAILING_ROW.format(t="n") + ") AS due, "
    "string_agg(n.check_id, ',' ORDER BY n.check_id) FILTER (WHERE " + _REQ_FAILING_ROW.format(t="n")
    + " AND n.due_until IS NULL) AS hard FROM new_checks n GROUP BY n.device_id), ")
BATCH_SQL_PG = (
    "WITH " + _PG_ROWS + _PG_NEW_CHECKS +
    "advanced AS (UPDATE device_state SET " + _fill(_STATE_SET, _B) + ", failing_since = r.since, "
    "due_until = r.due, failing_hard = COALESCE(r.hard, ''), "
    + ingest_judgement("postgresql", "b.generated_at", "r.due", "device_state.unit_id") +
    " FROM b LEFT JOIN run r ON r.device_id = b.device_id "
    "WHERE " + _fill(_STATE_WHERE, _B) + " RETURNING device_state.device_id, device_state.unit_id, "
    "device_state.due_until, device_state.failing_hard), "
    "stored AS (INSERT INTO reports (" + ", ".join(_REPORT_COLUMNS) + ") SELECT "
    + ", ".join(_B[v] for v in _REPORT_VALUES) + " FROM " + _ADVANCED + " RETURNING reports.device_id), "
    + _ids_of("advanced") + _blobs_of("advanced") +
    # The previous rows this report no longer has (MATERIALIZED: found among the batch's rows
    # alone, before the join with ``advanced``, whose estimate of one row would make it a loop).
    "dropped AS MATERIALIZED (SELECT p.device_id, p.check_id FROM prev p WHERE NOT EXISTS "
    "(SELECT 1 FROM c x WHERE x.device_id = p.device_id AND x.check_id = p.check_id)), "
    "gone AS (DELETE FROM device_checks USING dropped g JOIN advanced a ON a.device_id = g.device_id "
    "WHERE device_checks.device_id = g.device_id AND device_checks.check_id = g.check_id), "
    "upserted AS (" + _UPSERT_CHECK.format(rows="SELECT n.device_id, n.check_id, n.severity, n.status, "
                                           "n.failing_since, n.due_until FROM new_checks n JOIN advanced a "
                                           "ON a.device_id = n.device_id", distinct="IS DISTINCT FROM") + "), "
    "day_row AS (" + _UPSERT_DAY.format(rows="b x", run="advanced") + "), "
    # A report whose local day had already ended when it arrived changes a closed day of the
    # trend: its unit's cached days are redone (see server.readiness.trend).
    "late_day AS (UPDATE units SET history_version = units.history_version + 1 "
    "WHERE units.id IN (SELECT d.unit_id FROM " + _ADVANCED + " WHERE b.late)) "
    "SELECT device_id FROM stored")


def _batch_arrays(items: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """The batch as the parameters of :data:`_PG_ROWS`: one list per column."""
    out: dict[str, list[Any]] = {f"r_{n}": [it[n] for it in items] for n in _PG_REPORT_TYPES}
    checks = [(it["device_id"], c) for it in items for c in it["check_list"]]
    out.update({f"c_{n}": [dev if n == "device_id" else c[n] for dev, c in checks] for n in _PG_CHECK_TYPES})
    blobs = [(it["device_id"], it["month"], sha, data) for it in items for sha, data in it["blobs"]]
    out.update({f"s_{n}": [b[i] for b in blobs] for i, n in enumerate(_PG_BLOB_TYPES)})
    return out


# Transaction-scoped advisory locks on each report's id and device (two-key form, a
# namespace of our own), taken in one sorted order before the statement that checks
# NOT EXISTS: READ COMMITTED gives that statement a snapshot taken after any concurrent
# transaction storing the same id or device has committed, so the check is exact without
# a UNIQUE index across partitions (and sorted keys cannot deadlock).
_LOCK_NAMESPACE = 0x61756469  # 'audi'
# The batch's first statement also gives its transaction PostgreSQL's default plan choice
# back (set_config(..., true) is SET LOCAL, in the same round trip): the engine's
# connections plan custom plans only (server/db.py, for the pages), but the batch
# statement's plan does not depend on its values, and its generic plan saved ~15 % of
# PostgreSQL's CPU per report (measured, batches of 16).
# It also holds the judged max ages' lock shared (server/readiness/judged.py: a change of
# them waits for the batches in flight, and later batches read the new hours).
_LOCK_PG = ("SELECT pg_advisory_xact_lock(%(ns)s, k), (SELECT set_config('plan_cache_mode', 'auto', true)), "
            f"(SELECT pg_advisory_xact_lock_shared(hashtext('{AGES_LOCK_KEY}'))) FROM "
            "(SELECT DISTINCT hashtext(x) AS k FROM unnest(%(keys)s::text[]) AS x ORDER BY 1) AS keys")


def lock_reports_pg(conn: Connection, items: Sequence[dict[str, Any]]) -> None:
    keys = [f"r:{it['report_id']}" for it in items] + [f"d:{it['device_id']}" for it in items]
    conn.exec_driver_sql(_LOCK_PG, {"ns": _LOCK_NAMESPACE, "keys": keys}).all()


def store_batch_pg(conn: Connection, items: Sequence[dict[str, Any]]) -> list[bool]:
    lock_reports_pg(conn, items)
    stored = {r[0] for r in conn.exec_driver_sql(BATCH_SQL_PG, _batch_arrays(items))}
    return [it["device_id"] in stored for it in items]


# ------------------------------------------------------------------ SQLite

# One writer at a time (BEGIN IMMEDIATE): the same steps per report, in one transaction.
_N = {n: f":{n}" for n in _NAMES}
_ADVANCE_SQLITE = "UPDATE device_state SET " + _fill(_STATE_SET, _N) + " WHERE " + _fill(_STATE_WHERE, _N)
_INSERT_SQLITE = ("INSERT INTO reports (" + ", ".join(_REPORT_COLUMNS) + ") VALUES ("
                  + ", ".join(f":{v}" for v in _REPORT_VALUES) + ")")
_INSERT_ID_SQLITE = "INSERT INTO report_ids (report_id, month) VALUES (:report_id, :month)"
_DELETE_CHECKS_SQLITE = ("DELETE FROM device_checks WHERE device_id = :device_id AND check_id NOT IN "
                         "(SELECT value FROM json_each(:check_ids))")
_UPSERT_CHECK_SQLITE = _UPSERT_CHECK.format(rows="VALUES (?, ?, ?, ?, ?, ?)", distinct="IS NOT")
_UPSERT_DAY_SQLITE = _UPSERT_DAY.format(
    rows="(SELECT :device_id AS device_id, :day AS day, :ready_strict AS ready_strict, "
         ":failing_required AS failing_required) x", run="device_state")
# The stored judgement of the time-dependent inputs, from the run just updated (judged.py).
_JUDGE_SQLITE = ("UPDATE device_state SET " + ingest_judgement("sqlite", "device_state.generated_at", "device_state.due_until",
                                                              "device_state.unit_id")
                 + " WHERE device_id = :device_id")
_BLOB_SQLITE = "INSERT OR IGNORE INTO report_blobs (month, sha256, data) VALUES (?, ?, ?)"
_LATE_DAY_SQLITE = ("UPDATE units SET history_version = history_version + 1 "
                    "WHERE id = (SELECT unit_id FROM devices WHERE id = :device_id)")


def _sqlite_time(t: Any) -> str:
    """The text SQLAlchemy's SQLite DateTime stores (naive UTC), so ORM/Core reads agree."""
    import datetime as dt

    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def _sqlite_time_or_none(t: Any) -> str | None:
    return None if t is None else _sqlite_time(t)


def _sqlite_params(it: dict[str, Any]) -> dict[str, Any]:
    return {**it, "generated_at": _sqlite_time(it["generated_at"]), "received_at": _sqlite_time(it["received_at"]),
            "day": it["day"].isoformat(), "month": it["month"].isoformat(),
            "ready_strict": 1 if it["ready_strict"] else 0}


def _store_blobs_sqlite(conn: Connection, it: dict[str, Any]) -> None:
    if it["blobs"]:
        month = it["month"].isoformat()
        conn.exec_driver_sql(_BLOB_SQLITE, [(month, sha, data) for sha, data in it["blobs"]])


def store_batch_sqlite(conn: Connection, items: Sequence[dict[str, Any]]) -> list[bool]:
    out = []
    for it in items:
        params = _sqlite_params(it)
        if conn.exec_driver_sql(_ADVANCE_SQLITE, params).rowcount != 1:
            out.append(False)
            continue
        conn.exec_driver_sql(_INSERT_SQLITE, params)
        conn.exec_driver_sql(_INSERT_ID_SQLITE, params)
        _store_blobs_sqlite(conn, it)
        conn.exec_driver_sql(_DELETE_CHECKS_SQLITE, {"device_id": it["device_id"], "check_ids": json.dumps(
            [c["check_id"] for c in it["check_list"]])})
        if it["check_list"]:
            conn.exec_driver_sql(_UPSERT_CHECK_SQLITE, [
                (it["device_id"], c["check_id"], c["severity"], c["status"], _sqlite_time_or_none(c["failing_since"]),
                 _sqlite_time_or_none(c["due_until"])) for c in it["check_list"]])
        conn.exec_driver_sql(_DEVICE_RUN_SQLITE, {"device_id": it["device_id"]})
        conn.exec_driver_sql(_JUDGE_SQLITE, {"device_id": it["device_id"]})
        conn.exec_driver_sql(_UPSERT_DAY_SQLITE, params)
        if it["late"]:
            conn.exec_driver_sql(_LATE_DAY_SQLITE, params)
        out.append(True)
    return out


# ------------------------------------------------------------------ history

# A report older than the latest state: stored in ``reports`` (the timeline) and, if its
# day has no row yet, ``device_days`` (the trend); device_state and device_checks stay.
_HISTORY = ("INSERT INTO reports (" + ", ".join(_REPORT_COLUMNS) + ") SELECT "
            + ", ".join("{" + v + "}" for v in _REPORT_VALUES) + " WHERE " + _ACTIVE_WITH_KEY + " AND " + _NOT_STORED)
# ... and raises the device's highest stored sequence where it is above (a report can be
# history by its earlier generated_at with a sequence above the latest state's).
_HISTORY_MAX = ("UPDATE device_state SET stored_sequence_max = {sequence} {source} WHERE "
                "device_state.device_id = {device_id} AND device_state.stored_sequence_max < {sequence}")
# The day row of a report stored as history keeps no grace (its failing checks count as
# without): its run is not known without reading history.
_HISTORY_DAY = ("INSERT INTO device_days (device_id, day, ready_strict, failing_required, unit_id, failing_hard) "
                "VALUES ({device_id}, {day}, {ready_strict}, {failing_required}, "
                "(SELECT unit_id FROM devices WHERE id = {device_id}), {failing_required}) "
                "ON CONFLICT (device_id, day) DO NOTHING")
_HISTORY_SQLITE, _HISTORY_DAY_SQLITE = _history_fill(_HISTORY, _N), _fill(_HISTORY_DAY, _N)
_HISTORY_MAX_SQLITE = _HISTORY_MAX.format(source="", **_N)
_STORED = "b JOIN stored s ON s.device_id = b.device_id JOIN devices d ON d.id = b.device_id"
# PostgreSQL: the same as one statement over the batch form (its typed arrays).
HISTORY_SQL_PG = (
    "WITH " + _PG_ROWS +
    "stored AS (INSERT INTO reports (" + ", ".join(_REPORT_COLUMNS) + ") SELECT "
    + ", ".join(_B[v] for v in _REPORT_VALUES) + " FROM b WHERE " + _fill(_ACTIVE_WITH_KEY, _B)
    + " AND " + _history_fill(_NOT_STORED, _B) + " RETURNING reports.device_id), "
    + _ids_of("stored") + _blobs_of("stored") +
    "high AS (" + _HISTORY_MAX.format(source="FROM b JOIN stored s ON s.device_id = b.device_id", **_B) + "), "
    "day_row AS (INSERT INTO device_days (device_id, day, ready_strict, failing_required, unit_id, failing_hard) "
    "SELECT b.device_id, b.day, b.ready_strict, b.failing_required, d.unit_id, b.failing_required FROM "
    + _STORED + " "
    "ON CONFLICT (device_id, day) DO NOTHING), "
    "late_day AS (UPDATE units SET history_version = units.history_version + 1 "
    "WHERE units.id IN (SELECT d.unit_id FROM " + _STORED + " WHERE b.late)) "
    "SELECT device_id FROM stored")


_LOCK_ACTIVE_PG = ("SELECT id FROM devices WHERE id = %(device_id)s AND revoked_at IS NULL "
                   "AND current_keyid = %(kid)s FOR NO KEY UPDATE")


def store_history(conn: Connection, item: dict[str, Any]) -> bool:
    """Store ``item`` as history in the caller's transaction; False if the device is no
    longer active with this key or its sequence or report id is stored already."""
    if conn.dialect.name == "postgresql":
        # The device row locked against revocation and re-key until this commits (NO KEY:
        # foreign-key checks of concurrent inserts into reports do not wait on it).
        if conn.exec_driver_sql(_LOCK_ACTIVE_PG, item).first() is None:
            return False
        lock_reports_pg(conn, [item])
        return conn.exec_driver_sql(HISTORY_SQL_PG, _batch_arrays([item])).first() is not None
    params = _sqlite_params(item)
    if conn.exec_driver_sql(_HISTORY_SQLITE, params).rowcount != 1:
        return False
    conn.exec_driver_sql(_INSERT_ID_SQLITE, params)
    conn.exec_driver_sql(_HISTORY_MAX_SQLITE, params)
    _store_blobs_sqlite(conn, item)
    conn.exec_driver_sql(_HISTORY_DAY_SQLITE, params)
    if item["late"]:
        conn.exec_driver_sql(_LATE_DAY_SQLITE, params)
    return True


def store_batch_for(dialect: str):
    return store_batch_pg if dialect == "postgresql" else store_batch_sqlite
