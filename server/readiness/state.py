"""How a device's state is decided — one definition, used by every page, the trend, the
API and the exports.

================ ==========================================================================
never_reported   enrolled, no report stored yet
stale            its latest report was generated more than the unit's max report age ago
                 (``units.max_report_age_hours`` of the unit or its nearest ancestor that
                 sets one, else the collector default, 24 h)
due              a required check is not met and not covered, but every such check is
                 inside its grace period: its failing run started under a policy that
                 gives the check ``grace_hours``, and ``now`` is before the earliest
                 deadline (failing since + grace) of the device's failing checks
not_ready        a required check is not met (status fail or unknown), no active
                 exception covers it (for that device, or for its unit or any ancestor)
                 and it has no grace left
ready            otherwise: every required check passes (or is not applicable) or is
                 covered by an active exception
================ ==========================================================================

Revoked devices are left out everywhere. Readiness % = (ready + due) / all devices (of
every state) × 100, one decimal (:func:`percent`, :func:`ready_share`); None for a unit
without devices. *Due* is counted with the ready ones but shown apart.

The state is a function of time: a due device becomes not ready when its deadline passes
without a passing report, judged at the moment asked — nothing needs to run at the
deadline. The deadline is kept at ingest (``device_state.due_until``, the earliest of
its failing required checks'; ``failing_hard``, those without grace); once the earliest
deadline has passed the device is not ready unless exceptions cover every failing check.

The state is computed from device_state alone (it carries the device's unit and its
failing required checks); the few active exceptions come from :mod:`.cover`. Counts of
many devices (the tiles, the tree) apply the same rule once per group of alike devices,
read from the per-unit counts kept at ingest (``unit_state_deltas``, migration 0016),
with only the devices whose state depends on the moment (stale, within grace), the
revoked ones and those with their own exception read one by one (:func:`device_groups`).
"""
from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

from sqlalchemy import Integer, and_, case, delete, exists, func, literal, or_, select, text, union_all
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, Select

from server.db import device_state, devices, unit_judged_ages, unit_max_age_history, unit_state_deltas, units, utc
from server.readiness.cover import Cover, Covers, exception_cover
from server.readiness.scope import Scope, ancestor_or_self, scope_unit_ids
from server.readiness.sql import at_param, contains_item, dialect, minus_hours, moment, none_of, one_of, ts_param

READY, DUE, NOT_READY, STALE, NEVER_REPORTED = "ready", "due", "not_ready", "stale", "never_reported"
STATES = (READY, DUE, NOT_READY, STALE, NEVER_REPORTED)
COUNTED_READY = (READY, DUE)  # the states the readiness percentage counts
DEFAULT_MAX_REPORT_AGE_HOURS = 24

# ------------------------------------------------------------------ the device state (one definition)


def unit_max_age(name: str = "unit_age", *, now: dt.datetime | None = None, conn: Connection | None = None,
                 default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS,
                 unit_ids: Sequence[int] | None = None) -> Any:
    """CTE (unit_id, path, max_age_hours-or-NULL[, cutoff]): each unit's own or nearest
    ancestor's max report age; with ``now``, also the time before which its devices'
    latest report is stale — computed once per unit (of ``unit_ids``; None: all), not
    once per device."""
    u = units.alias("mu")
    a = units.alias("ma")
    hours = (select(a.c.max_report_age_hours)
             .where(a.c.max_report_age_hours.is_not(None), ancestor_or_self(a.c.path, u.c.path))
             .order_by(a.c.depth.desc()).limit(1).scalar_subquery())
    # Materialised: 1 row per unit, computed once, not once per device joined to it.
    ages = select(u.c.id.label("unit_id"), u.c.path.label("path"), hours.label("max_age_hours"))
    if unit_ids is not None:  # one device's unit (a gateway's question) needs no fleet-wide pass
        ages = ages.where(one_of(u.c.id, unit_ids))
    ages = (ages.cte(name if now is None else name + "_hours").prefix_with("MATERIALIZED", dialect="postgresql"))
    if now is None:
        return ages
    assert conn is not None
    return (select(ages, minus_hours(conn, now, func.coalesce(ages.c.max_age_hours, default_max_age_hours))
                   .label("cutoff"))
            .cte(name).prefix_with("MATERIALIZED", dialect="postgresql"))

def max_age_in_force(conn: Connection, unit_paths: dict[int, str], instants: Sequence[dt.datetime], *,
                     default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> dict[int, list[int]]:
    """Per unit (id → path): the max report age in force at each of ``instants`` — the same
    rule as :func:`unit_max_age` (own, else the nearest ancestor's, else the default),
    applied to each unit's history of settings (``unit_max_age_history``) instead of
    today's. A few rows: one per change."""
    h = unit_max_age_history
    changes: dict[str, list[tuple[dt.datetime, int | None]]] = {}
    for path, hours, at in conn.execute(select(units.c.path, h.c.max_report_age_hours, h.c.from_at)
                                        .join(units, units.c.id == h.c.unit_id).order_by(h.c.from_at, h.c.id)):
        changes.setdefault(path, []).append((utc(at), hours))  # type: ignore[arg-type]

    def setting(path: str, t: dt.datetime) -> int | None:
        value = None
        for at, hours in changes.get(path, ()):
            if at > t:
                break
            value = hours
        return value

    out: dict[int, list[int]] = {}
    for uid, path in unit_paths.items():
        parts = path.split("/")
        chain = ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]  # self first, then ancestors
        out[uid] = [next((v for v in (setting(p, t) for p in chain) if v is not None), default_max_age_hours)
                    for t in instants]
    return out


def not_revoked(device_col: Any) -> Any:
    """SQL: the device is not revoked (an anti-join on the few revoked ones, partial index)."""
    return ~exists(select(literal(1)).where(devices.c.id == device_col, devices.c.revoked_at.is_not(None)))


def stale_clause(conn: Connection, s: Any, now: dt.datetime, *,
                 default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> ColumnElement[bool]:
    """SQL on a device_state relation ``s``: the device is stale at ``now`` — the same rule
    as :func:`is_stale`, with each unit's cutoff as a literal (few units set their own max
    age), so a pass over many rows needs no join to the units."""
    return _stale_rule(s, age_groups(conn, default_max_age_hours),
                       lambda h: ts_param(now - dt.timedelta(hours=h)), default_max_age_hours)


AgeGroups = tuple[tuple[int, tuple[int, ...]], ...]  # (hours, unit ids) of the units not on the default


def age_groups(conn: Connection, default_max_age_hours: int) -> AgeGroups:
    """The units whose max report age (own or inherited) is not the default, by hours."""
    own: dict[int, list[int]] = {}
    for uid, hours in inherited_max_ages(conn).items():
        own.setdefault(hours, []).append(uid)
    own.pop(default_max_age_hours, None)  # same as the default: no need to list them
    return tuple(sorted((h, tuple(sorted(ids))) for h, ids in own.items()))


def _stale_rule(s: Any, ages: AgeGroups, cut: Any, default_max_age_hours: int) -> ColumnElement[bool]:
    """:func:`stale_clause` with ``cut(hours)``: the SQL instant that many hours before now."""
    listed = sorted(u for _h, ids in ages for u in ids)
    cond = [and_(none_of(s.c.unit_id, listed), s.c.generated_at < cut(default_max_age_hours))]
    cond += [and_(one_of(s.c.unit_id, ids), s.c.generated_at < cut(h)) for h, ids in ages]
    return and_(s.c.last_report_id.is_not(None), or_(*cond))


def moment_of(now: dt.datetime, ages: AgeGroups, default_max_age_hours: int) -> dict[str, Any]:
    """The values of the parameters (:func:`at_param`) of a statement judging states at
    ``now`` with these age groups."""
    return moment(now, {default_max_age_hours, *(h for h, _ids in ages)})


def inherited_max_ages(conn: Connection) -> dict[int, int]:
    """Per unit that has one: the max report age of the unit or its nearest ancestor that
    sets one (:func:`unit_max_age`'s rule), from one read of the units (a few hundred)."""
    # One read per transaction: a page asks once per query that tells stale devices apart.
    txn = conn.get_transaction()
    kept = conn.info.get("own_max_ages")
    if txn is not None and kept is not None and kept[0] is txn:
        return kept[1]
    rows = conn.execute(select(units.c.id, units.c.path, units.c.max_report_age_hours)).all()
    out = _inherited_ages(rows)
    if txn is not None:
        conn.info["own_max_ages"] = (txn, out)
    return out


def _inherited_ages(rows: Sequence[Any]) -> dict[int, int]:
    setting = {path: int(h) for _i, path, h in rows if h is not None}
    if not setting:
        return {}
    out = {}
    for uid, path, _h in rows:
        parts = path.split("/")
        hours = next((setting[p] for p in ("/".join(parts[:i]) for i in range(len(parts), 0, -1)) if p in setting),
                     None)
        if hours is not None:
            out[uid] = hours
    return out


def is_stale(s: Any, cut: Any) -> ColumnElement[bool]:
    """SQL: the device (a device_state relation ``s``) reported, but last before its unit's cutoff."""
    return and_(s.c.last_report_id.is_not(None), s.c.generated_at < cut.c.cutoff)


def state_of(*, never: Any, stale: Any, due_open: Any, failing_required: Any, failing_hard: Any, unit_id: Any,
             device_id: Any, cover: Covers) -> ColumnElement[str]:
    """THE rule (the table above) as SQL over its inputs: whether the device never
    reported, whether its latest report is stale, whether its earliest grace deadline is
    still ahead, its failing required checks (all, and those without grace), its unit and
    id (for the exceptions that cover them). Applied to one device's row
    (:func:`device_states`) or to a group of devices alike in all of them
    (:func:`state_counts`)."""
    return case(
        (never, NEVER_REPORTED),
        (stale, STALE),
        (failing_required == "", READY),
        (cover.covers_all(failing_required, unit_id, device_id), READY),
        (and_(due_open, or_(failing_hard == "", cover.covers_all(failing_hard, unit_id, device_id, hard=True))), DUE),
        else_=NOT_READY)


def device_groups(unit_ids: Sequence[int] | None, *, cover: Cover, ages: AgeGroups, revoked: Sequence[str],
                  default_max_age_hours: int, split: Sequence[str] = (), unsettled: Sequence[int] = ()) -> Any:
    """Active devices (of ``unit_ids``; None: all) in groups alike in every input of
    :func:`state_of`: (unit_id, agent_version, failing_required, failing_hard, device_id —
    '' for a group, the id for a device with its own exception —, never, stale, due, n).

    Read from ``unit_state_deltas`` (counts per group kept at ingest and by the sweep, each
    device counted with its stored stale and within-grace flags: :mod:`.judged`), then
    corrected from the rows of the devices those counts cannot judge: the revoked ones
    (taken out), those whose stored flags may not hold at the moment (their span has ended
    or not begun, or their unit's max age changed since: ``unsettled``) and those with
    their own exception (each moved to its own row). Those are found through indexes
    (judge_again_at, judged_from, the few ids and units), so a page reads the groups and a
    few devices, not the fleet. ``split``: more devices to count by their own row (those
    with any device exception, when each failing check's cover matters). The moment judged
    is :func:`at_param`'s parameters; ``ages``: :func:`age_groups`; ``revoked``: the revoked
    devices' ids."""
    s, d = device_state, unit_state_deltas
    keys = (s.c.unit_id, s.c.agent_version, s.c.failing_required, s.c.failing_hard)
    own = sorted(set(cover.own_devices) | set(split))
    stale = _stale_rule(s, ages, at_param, default_max_age_hours)
    due = and_(s.c.last_report_id.is_not(None), s.c.due_until > at_param())
    where = [or_(needs_own_judgement(s, at_param(), unsettled), one_of(s.c.device_id, sorted(set(own) | set(revoked))))]
    where.append(s.c.unit_id.is_not(None) if unit_ids is None else one_of(s.c.unit_id, unit_ids))
    flag = lambda cond: case((cond, 1), else_=0)  # noqa: E731
    # Each list is matched once per device read, here; the parts below test the flags.
    special = (select(*keys, s.c.device_id, flag(s.c.last_report_id.is_(None)).label("never"),
                      flag(stale).label("stale"), flag(and_(due, ~stale)).label("due"),
                      s.c.counted_stale, s.c.counted_due,
                      flag(one_of(s.c.device_id, revoked)).label("revoked"),
                      flag(one_of(s.c.device_id, own)).label("own"))
               .where(*where).cte("special_devices").prefix_with("MATERIALIZED", dialect="postgresql"))
    x = special.c
    base = select(d.c.unit_id, d.c.agent_version, d.c.failing_required, d.c.failing_hard,
                  literal("").label("device_id"), d.c.never, (d.c.stale * d.c.n).label("stale"),
                  (d.c.due * d.c.n).label("due"), d.c.n)
    if unit_ids is not None:
        base = base.where(one_of(d.c.unit_id, unit_ids))
    xkeys = (x.unit_id, x.agent_version, x.failing_required, x.failing_hard)
    # Each device read leaves its group as counted; unless revoked it comes back as judged
    # now, in its group or (with its own exception) on a row of its own.
    taken_out = select(*xkeys, literal(""), -x.never, -x.counted_stale, -x.counted_due, literal(-1))
    judged = select(*xkeys, case((x.own == 1, x.device_id), else_=literal("")), x.never, x.stale, x.due,
                    literal(1)).where(x.revoked == 0)
    u = union_all(base, taken_out, judged).subquery("group_rows")
    return (select(u.c.unit_id, u.c.agent_version, u.c.failing_required, u.c.failing_hard, u.c.device_id,
                   func.sum(u.c.never).label("never"), func.sum(u.c.stale).label("stale"),
                   func.sum(u.c.due).label("due"), func.sum(u.c.n).label("n"))
            .group_by(u.c.unit_id, u.c.agent_version, u.c.failing_required, u.c.failing_hard, u.c.device_id)
            .having(func.sum(u.c.n) > 0))


# ------------------------------------------------------------------ the stored judgement (.judged)


def hours_in_force(conn: Connection, default_max_age_hours: int) -> dict[int, int]:
    """Per unit: the max report age in force (own, nearest ancestor's, else the default)."""
    own = inherited_max_ages(conn)
    return {int(uid): own.get(uid, default_max_age_hours) for (uid,) in conn.execute(select(units.c.id)).all()}


def unsettled_units(conn: Connection, default_max_age_hours: int) -> tuple[int, ...]:
    """The units whose devices' stored judgement may be made with other hours than those in
    force now (changed since, or never settled): a page judges their devices one by one."""
    stored = dict(conn.execute(select(unit_judged_ages.c.unit_id, unit_judged_ages.c.hours)).all())
    return tuple(sorted(u for u, h in hours_in_force(conn, default_max_age_hours).items() if stored.get(u) != h))


def needs_own_judgement(s: Any, at: Any, units_unsettled: Sequence[int]) -> Any:
    """SQL on device_state ``s``: its stored flags may not hold at ``at`` (each part through an index)."""
    parts = [s.c.judge_again_at <= at, s.c.judged_from >= at]
    if units_unsettled:
        parts.append(one_of(s.c.unit_id, list(units_unsettled)))
    return or_(*parts)


FOLD_AFTER_ROWS = 20_000  # +1/-1 rows since the last fold: summing them costs more than folding


def _fold_when_long(conn: Connection) -> None:
    """PostgreSQL: fold the counts when their rows have grown long (ids are handed out in
    order and a fold leaves one row per group, so max − min bounds the rows; both read
    off the primary key). In its own transaction: it commits whatever the reader does,
    and blocks no report (they only insert). SQLite folds in the daily retention run."""
    lo, hi = conn.execute(select(func.min(unit_state_deltas.c.id), func.max(unit_state_deltas.c.id))).one()
    if hi is None or hi - lo <= FOLD_AFTER_ROWS:
        return
    pool = conn.engine.pool
    if hasattr(pool, "checkedout") and pool.checkedout() >= pool.size() + max(getattr(pool, "_max_overflow", 0), 0):
        return  # no connection to spare: never wait on the pool while holding one (a later read folds)
    with conn.engine.begin() as other:
        compact_groups(other)


def compact_groups(conn: Connection) -> int:
    """Fold ``unit_state_deltas`` into one row per group (the sums do not change; readers
    see the rows before or after). On PostgreSQL one statement (DELETE … RETURNING feeds
    the INSERT, so two compactions at once never count a row twice); SQLite has one
    writer at a time. Returns the rows folded."""
    d = unit_state_deltas
    cols = "unit_id, agent_version, failing_required, failing_hard, stale, due"
    sums = f"SELECT {cols}, sum(n), sum(never) FROM {{src}} GROUP BY {cols} HAVING sum(n) <> 0 OR sum(never) <> 0"
    if dialect(conn) == "postgresql":
        return int(conn.execute(text(
            f"WITH gone AS (DELETE FROM unit_state_deltas RETURNING {cols}, n, never), "
            f"kept AS (INSERT INTO unit_state_deltas ({cols}, n, never) {sums.format(src='gone')} RETURNING 1) "
            "SELECT (SELECT count(*) FROM gone)")).scalar_one())
    top = conn.execute(select(func.max(d.c.id))).scalar_one()
    if top is None:
        return 0
    conn.execute(text(f"INSERT INTO unit_state_deltas ({cols}, n, never) "
                      + sums.format(src="(SELECT * FROM unit_state_deltas WHERE id <= :top)")), {"top": top})
    return int(conn.execute(delete(d).where(d.c.id <= top)).rowcount)


class StateRow(NamedTuple):
    unit_id: int
    state: str
    agent_version: str | None
    n: int


class BlockingRow(NamedTuple):
    unit_id: int
    check_id: str
    n: int  # due or not-ready devices of the unit failing the check, not covered by an exception


class FailingRow(NamedTuple):
    """Devices failing a required check (all units asked, together), by how they count on
    a unit page: judged on a fresh report and not covered, covered, or stale."""
    check_id: str
    failing: int
    excepted: int
    stale: int


def state_rows(conn: Connection, now: dt.datetime, unit_ids: Sequence[int] | None = None, *,
               cover: Cover | None = None, blocking: bool = False, failing: bool = False,
               default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS,
               ) -> tuple[list[StateRow], list[BlockingRow], list[FailingRow]]:
    """Active devices (of ``unit_ids``; None: all) per (unit, state, agent version) — the
    same counts as grouping :func:`device_states`, but :func:`state_of` is applied once
    per group of devices with the same inputs (:func:`device_groups`), not once per
    device: each group is split into its never-reported, stale, fresh-within-grace and
    other fresh devices. Devices with their own exception are judged one by one (there
    are few). With ``blocking``, from the same pass: per unit and failing required check,
    the due and not-ready devices failing it that no exception covers (the overview's
    "why": the pass returns them per unit, set of failing checks and device with an
    exception of its own, and :meth:`Cover.split` takes the covered checks out). With
    ``failing``,
    from the same pass: per failing required check, the devices failing it on a fresh
    report, uncovered and covered, and the stale ones (a unit page's checks failing most;
    the devices with any device exception are then counted by their own row, so each
    check's cover is the device's own)."""
    if cover is None:
        cover = exception_cover(conn, now, unit_ids)
    if dialect(conn) == "postgresql":
        _fold_when_long(conn)
    revoked = tuple(conn.execute(select(devices.c.id).where(devices.c.revoked_at.is_not(None))).scalars().all())
    ages = age_groups(conn, default_max_age_hours)
    checks = tuple(sorted({c for (f,) in conn.execute(select(unit_state_deltas.c.failing_required).distinct()).all()
                           for c in f.split(",") if c})) if failing else ()
    statement = _state_rows_statement(dialect(conn), None if unit_ids is None else tuple(unit_ids), cover,
                                      tuple(sorted({d for _c, d in cover.device_checks})) if failing or blocking
                                      else (), revoked, ages, default_max_age_hours, blocking, checks,
                                      unsettled_units(conn, default_max_age_hours))
    rows: list[StateRow] = []
    block: dict[tuple[int, str], int] = {}
    fail: dict[str, list[int]] = {}
    split = cover.split
    # All rows at once (the driver's fetchall; thousands of rows on an overview).
    for kind, unit_id, state, version, k in conn.execute(statement, moment_of(now, ages, default_max_age_hours)).all():
        if kind == 0:
            rows.append(StateRow(int(unit_id), str(state), version, int(k)))
        elif kind == 1:  # state: the failing checks; version: the device ('' for a group)
            for check in split(state, unit_id, version)[0]:
                block[unit_id, check] = block.get((unit_id, check), 0) + int(k)
        else:
            fail.setdefault(str(state), [0, 0, 0])[kind - 2] = int(k)
    return (rows, [BlockingRow(int(u), c, n) for (u, c), n in block.items()],
            [FailingRow(c, *n) for c, n in sorted(fail.items()) if any(n)])


@functools.lru_cache(maxsize=64)
def _state_rows_statement(on: str, unit_ids: tuple[int, ...] | None, cover: Cover, split: tuple[str, ...],
                          revoked: tuple[str, ...], ages: AgeGroups, default_max_age_hours: int, blocking: bool,
                          checks: tuple[str, ...], unsettled: tuple[int, ...] = ()) -> Any:
    """:func:`state_rows`' one statement (``on``: the dialect), built once for the same
    values (a fleet's units, exceptions and revoked devices change seldom; the moment is
    a parameter, :func:`moment_of`): SQLAlchemy's building it costs more than PostgreSQL
    running it, and the same statement object keeps its cache key, so its compiled form
    is found at once. ``checks``: the failing checks to count (a unit page), else ()."""
    groups = device_groups(unit_ids, cover=cover, ages=ages, revoked=revoked,
                           default_max_age_hours=default_max_age_hours, split=split, unsettled=unsettled)
    g = groups.cte("state_groups").prefix_with("MATERIALIZED", dialect="postgresql")
    # Each group four times: its never-reported, stale, fresh-within-grace and other fresh devices.
    part = union_all(*[select(literal(a).label("never"), literal(b).label("stale"), literal(c).label("due"))
                       for a, b, c in ((1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 0, 0))]).subquery("state_part")
    n = case((part.c.never == 1, g.c.never), (part.c.stale == 1, g.c.stale), (part.c.due == 1, g.c.due),
             else_=g.c.n - g.c.never - g.c.stale - g.c.due)
    st = (select(g.c.unit_id, g.c.agent_version, g.c.failing_required, g.c.device_id, n.label("n"),
                 state_of(never=part.c.never == 1, stale=part.c.stale == 1, due_open=part.c.due == 1,
                          failing_required=g.c.failing_required, failing_hard=g.c.failing_hard,
                          unit_id=g.c.unit_id, device_id=g.c.device_id, cover=cover).label("state"))
          .select_from(g.join(part, literal(True))).where(n > 0)
          .cte("group_states").prefix_with("MATERIALIZED", dialect="postgresql"))
    counts = (select(literal(0).label("kind"), st.c.unit_id, st.c.state, st.c.agent_version,
                     func.sum(st.c.n).label("n"))
              .group_by(st.c.unit_id, st.c.state, st.c.agent_version))
    parts: list[Any] = [counts]
    if blocking:  # kind 1: due and not-ready devices per (unit, failing checks, device with its own exception)
        parts.append(select(literal(1), st.c.unit_id, st.c.failing_required, st.c.device_id, func.sum(st.c.n))
                     .where(st.c.state.in_((DUE, NOT_READY)))
                     .group_by(st.c.unit_id, st.c.failing_required, st.c.device_id))
    if checks:  # kinds 2, 3, 4: failing on a fresh report uncovered, covered; stale
        ck = union_all(*[select(literal(c).label("check_id")) for c in checks]).subquery("checks")
        fresh = g.c.n - g.c.never - g.c.stale
        covered = cover.covers_check(ck.c.check_id, g.c.device_id, g.c.unit_id)
        gk = g.join(ck, contains_item(on, g.c.failing_required, ck.c.check_id))
        for kind, count in ((2, case((covered, 0), else_=fresh)), (3, case((covered, fresh), else_=0)),
                            (4, g.c.stale)):
            parts.append(select(literal(kind), literal(0), ck.c.check_id, literal(None), func.sum(count))
                         .select_from(gk).group_by(ck.c.check_id))
    return union_all(*parts) if len(parts) > 1 else counts


def state_counts(conn: Connection, now: dt.datetime, unit_ids: Sequence[int] | None = None, *,
                 cover: Cover | None = None,
                 default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> list[tuple[int, str, str | None, int]]:
    """Active devices (of ``unit_ids``; None: all) per (unit, state, agent version):
    :func:`state_rows`."""
    return [tuple(r) for r in  # type: ignore[misc]
            state_rows(conn, now, unit_ids, cover=cover, default_max_age_hours=default_max_age_hours)[0]]


def device_states(conn: Connection, now: dt.datetime, unit_ids: Sequence[int] | None = None, *,
                  cover: Cover | None = None,
                  default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> Select:
    """SELECT of every active device (of ``unit_ids``; None: all) with its state, from
    device_state alone: columns id, unit_id, unit_path, agent_version, generated_at,
    received_at, last_report_id, state, failing_since, due_until (shown only where the
    state is due or not ready), failing_required (the required checks not met, "a,b": what
    the state is judged on). Use it as a subquery."""
    s = device_state
    cut = unit_max_age("unit_cutoff", now=now, conn=conn, default_max_age_hours=default_max_age_hours,
                       unit_ids=unit_ids)
    if cover is None:
        cover = exception_cover(conn, now, unit_ids)
    state = state_of(never=s.c.last_report_id.is_(None), stale=is_stale(s, cut), due_open=s.c.due_until > ts_param(now),
                     failing_required=s.c.failing_required, failing_hard=s.c.failing_hard, unit_id=s.c.unit_id,
                     device_id=s.c.device_id, cover=cover)
    q = (select(s.c.device_id.label("id"), s.c.unit_id, cut.c.path.label("unit_path"), s.c.agent_version,
                s.c.generated_at, s.c.received_at, s.c.last_report_id, state.label("state"),
                s.c.failing_since, s.c.due_until, s.c.failing_required)
         .select_from(s.join(cut, cut.c.unit_id == s.c.unit_id))
         .where(not_revoked(s.c.device_id)))
    if unit_ids is not None:
        q = q.where(one_of(s.c.unit_id, unit_ids))
    return q


def device_state_rows(conn: Connection, scope: Scope, now: dt.datetime, *, unit_ids: Sequence[int] | None = None,
                      cover: Cover | None = None,
                      default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> Select:
    """:func:`device_states` of the devices in scope (or of ``unit_ids``) with what a list
    of devices shows: adds hostname, platform, os, enrolled_at. (Joined on unit and id, the
    order device_state is read in: a device's unit is set at enrolment in both tables and
    never moves, and PostgreSQL reads the list columns off ix_devices_unit_cover alone.)"""
    if unit_ids is None:
        unit_ids = scope_unit_ids(conn, scope)
    st = device_states(conn, now, unit_ids, cover=cover, default_max_age_hours=default_max_age_hours).subquery("st")
    return (select(st.c.id, st.c.unit_id, st.c.unit_path, devices.c.hostname, devices.c.platform, devices.c.os,
                   st.c.agent_version, devices.c.enrolled_at, st.c.generated_at, st.c.received_at,
                   st.c.last_report_id, st.c.state, st.c.failing_since, st.c.due_until, st.c.failing_required)
            .select_from(st.join(devices, and_(devices.c.unit_id == st.c.unit_id, devices.c.id == st.c.id))))


def stale_longest(conn: Connection, now: dt.datetime, unit_ids: Sequence[int] | None, limit: int, *,
                  default_max_age_hours: int = DEFAULT_MAX_REPORT_AGE_HOURS) -> list["StaleDevice"]:
    """The devices (of ``unit_ids``) whose latest report is oldest among the stale ones.
    Staleness needs no exception: read straight off the generated_at index."""
    s = device_state
    cut = unit_max_age("stale_cutoff", now=now, conn=conn, default_max_age_hours=default_max_age_hours,
                       unit_ids=unit_ids)
    q = (select(s.c.device_id, devices.c.hostname, cut.c.path, s.c.generated_at, s.c.received_at)
         .select_from(s.join(cut, cut.c.unit_id == s.c.unit_id).join(devices, devices.c.id == s.c.device_id))
         .where(is_stale(s, cut), devices.c.revoked_at.is_(None))
         .order_by(s.c.generated_at, s.c.device_id).limit(limit))
    if unit_ids is not None:
        q = q.where(one_of(s.c.unit_id, unit_ids))
    return [StaleDevice(r.device_id, r.hostname, r.path, utc(r.generated_at), utc(r.received_at))
            for r in conn.execute(q).all()]

def percent(ready: int, total: int) -> float | None:
    return round(100.0 * ready / total, 1) if total else None


def ready_share(counts: dict[str, int]) -> float | None:
    """The readiness % of devices counted by state: ready and due over all."""
    return percent(sum(counts.get(s, 0) for s in COUNTED_READY), sum(counts.values()))

@dataclass(frozen=True)
class StaleDevice:
    id: str
    hostname: str
    unit_path: str
    last_seen: dt.datetime | None  # generated_at of the latest report
    received_at: dt.datetime | None

