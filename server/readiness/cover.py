"""Exception cover: which failing checks an active exception excuses (on the device, or
on its unit or any ancestor unit), gathered once per request.
"""
from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol, Sequence

from sqlalchemy import String, and_, cast, exists, literal, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from server.db import device_checks, device_state, exceptions, unit_state_deltas, units
from server.readiness.scope import ancestor_or_self
from server.readiness.sql import at_param, moment, none_of, one_of, ts_param

def exception_active(now: dt.datetime | None, e: Any = exceptions) -> ColumnElement[bool]:
    """SQL: the exception is in force at ``now`` (None: at the statement's moment parameter, :func:`at_param`)."""
    at = at_param() if now is None else ts_param(now)
    return and_(e.c.revoked_at.is_(None), e.c.expires_at > at, e.c.granted_at <= at)


@functools.cache
def _active_exceptions() -> Any:
    """The exceptions in force at the moment parameter: (check, device, unit path). Built once."""
    e, eu = exceptions.alias("aex"), units.alias("aexu")
    return (select(e.c.check_id, e.c.device_id, eu.c.path).select_from(e.outerjoin(eu, eu.c.id == e.c.unit_id))
            .where(exception_active(None, e)))


@functools.cache
def _unit_paths() -> Any:
    return select(units.c.id, units.c.path)


def covered_exists(conn: Connection, now: dt.datetime, check_col: Any, device_col: Any, unit_path_col: Any) -> Any:
    """SQL EXISTS: an active exception covers ``check_col`` on this device (device-level, or
    on its unit or any ancestor unit). Correlated: for a page of rows, not for a fleet."""
    e = exceptions.alias("ex")
    eu = units.alias("exu")
    return (exists(select(literal(1)).select_from(e.outerjoin(eu, eu.c.id == e.c.unit_id))
                   .where(e.c.check_id == check_col, exception_active(now, e),
                          or_(e.c.device_id == device_col,
                              and_(e.c.unit_id.is_not(None), ancestor_or_self(eu.c.path, unit_path_col))))
                   .correlate_except(e, eu)))


class Covers(Protocol):
    """What the state rule asks of exceptions: are all of a device's failing checks covered
    (at the moment judged)? :class:`Cover` answers for now, the trend's day cover for the
    end of each past day."""

    def covers_all(self, failing: Any, unit_id: Any, device_id: Any, *, hard: bool = False) -> Any: ...


@dataclass(frozen=True)
class Cover:
    """What the active exceptions cover, gathered once per request (there are few): the
    checks excepted unit-wide per unit (an exception on a unit covers its whole subtree)
    and per device. Handed to SQL as short literal lists — bounded by the number of
    exceptions, not of devices — so the planner sees exactly how little they select."""

    unit_checks: frozenset[tuple[str, int]] = frozenset()  # (check_id, unit id)
    device_checks: frozenset[tuple[str, str]] = frozenset()  # (check_id, device id)
    ready_pairs: frozenset[tuple[int, str]] = frozenset()  # (unit id, failing_required) covered unit-wide
    named_devices: frozenset[str] = frozenset()  # devices with a device exception …
    ready_devices: frozenset[str] = frozenset()  # … and those of them whose failing checks are all covered
    hard_devices: frozenset[str] = frozenset()  # … and those whose failing checks without grace are all covered

    # Pairs are matched as one text key ("check unit", "check device"): check ids hold no
    # space, and a list of plain values is looked up from a hash, where a list of row
    # values would be compared one by one.

    def covers_check(self, check_col: Any, device_col: Any, unit_id_col: Any) -> ColumnElement[bool]:
        """SQL: an active exception covers this check on this device."""
        return or_(self.covers_unit_check(check_col, unit_id_col),
                   one_of(_key(check_col, device_col), sorted(f"{c} {d}" for c, d in self.device_checks)))

    def covers_unit_check(self, check_col: Any, unit_id_col: Any) -> ColumnElement[bool]:
        """SQL: an active exception on the unit (or an ancestor) covers this check."""
        return one_of(_key(check_col, unit_id_col), sorted(f"{c} {u}" for c, u in self.unit_checks))

    def split(self, failing_required: str, unit_id: int, device_id: str) -> tuple[list[str], list[str]]:
        """A device's failing required checks (device_state.failing_required, "a,b") as
        (not covered, covered): :meth:`covers_check`'s rule in Python, for a pass over many
        devices that already holds their failing checks and needs no lookup per check."""
        failing: list[str] = []
        excepted: list[str] = []
        if failing_required:
            if unit_id not in self._covered_units and device_id not in self._covered_devices:
                return failing_required.split(","), excepted  # no exception bears on it: nothing to split
            for c in failing_required.split(","):
                covered = (c, unit_id) in self.unit_checks or (c, device_id) in self.device_checks
                (excepted if covered else failing).append(c)
        return failing, excepted

    def covers_all(self, failing: Any, unit_id: Any, device_id: Any, *, hard: bool = False) -> ColumnElement[bool]:
        """SQL over a device_state row's columns: every check in ``failing`` (its failing
        required checks; ``hard``: those without grace, ``failing_hard``) is covered."""
        by_unit = and_(one_of(_key(failing, unit_id), sorted(f"{f} {u}" for u, f in self.ready_pairs)),
                       none_of(device_id, sorted(self.named_devices)))
        return or_(by_unit, one_of(device_id, sorted(self.hard_devices if hard else self.ready_devices)))

    @cached_property
    def _covered_units(self) -> frozenset[int]:
        return frozenset(u for _c, u in self.unit_checks)

    @cached_property
    def _covered_devices(self) -> frozenset[str]:
        return frozenset(d for _c, d in self.device_checks)

    @property
    def own_devices(self) -> list[str]:
        """The devices whose own exceptions bear on their state (judged one by one)."""
        return sorted(self.named_devices | self.ready_devices | self.hard_devices)


def _key(text_col: Any, other_col: Any) -> Any:
    return text_col + literal(" ") + cast(other_col, String)


def exception_cover(conn: Connection, now: dt.datetime, unit_ids: Sequence[int] | None = None, *,
                    device_ids: Sequence[str] | None = None) -> Cover:
    """The :class:`Cover` of the exceptions active at ``now`` (for devices of ``unit_ids``;
    with ``device_ids``, for those devices only: one device's page)."""
    active = conn.execute(_active_exceptions(), moment(now)).all()
    if not active:
        return Cover()
    by_unit_path: dict[str, set[str]] = {}
    by_device: dict[str, set[str]] = {}
    for check_id, device_id, path in active:
        if device_id is not None:
            if device_ids is None or device_id in device_ids:
                by_device.setdefault(device_id, set()).add(check_id)
        elif path is not None:
            by_unit_path.setdefault(path, set()).add(check_id)
    unit_cov: dict[int, set[str]] = {}
    if by_unit_path:
        for uid, path in conn.execute(_unit_paths()).all():
            for p, checks in by_unit_path.items():
                if path == p or path.startswith(p + "/"):
                    unit_cov.setdefault(uid, set()).update(checks)
    wanted = set(unit_cov) if unit_ids is None else set(unit_cov) & set(unit_ids)
    s, g = device_state, unit_state_deltas
    ready_pairs = set()
    if wanted:  # the sets of failing checks, all of them or those without grace, that the unit covers
        # Read off the groups kept at ingest (every set a device of the unit has, perhaps a
        # few it had: each pair is tested alike, so an unused one changes nothing).
        for uid, *sets in conn.execute(select(g.c.unit_id, g.c.failing_required, g.c.failing_hard).distinct()
                                       .where(one_of(g.c.unit_id, sorted(wanted)), g.c.failing_required != "")).all():
            for failing in sets:  # (failing_hard is a part of failing_required: '' when that is)
                if failing and set(failing.split(",")) <= unit_cov[uid]:
                    ready_pairs.add((uid, failing))
    # Device exceptions: only those on devices of ``unit_ids`` matter to this request; of
    # them, those in a unit with covered pairs must be kept out of the unit-wide test.
    dev_unit: dict[str, int] = {}
    ready_devices, hard_devices = set(), set()
    if by_device:
        q = (select(s.c.device_id, s.c.unit_id, s.c.failing_required, s.c.failing_hard)
             .where(one_of(s.c.device_id, sorted(by_device))))
        if unit_ids is not None:
            q = q.where(one_of(s.c.unit_id, unit_ids))
        for dev, uid, failing, hard in conn.execute(q).all():
            dev_unit[dev] = uid
            covered = unit_cov.get(uid, set()) | by_device[dev]
            if failing and set(failing.split(",")) <= covered:
                ready_devices.add(dev)
            if hard and set(hard.split(",")) <= covered:
                hard_devices.add(dev)
    pair_units = {u for u, _f in ready_pairs}
    return Cover(unit_checks=frozenset((c, u) for u, cs in unit_cov.items() for c in cs
                                       if unit_ids is None or u in wanted),
                 device_checks=frozenset((c, d) for d, cs in by_device.items() for c in cs if d in dev_unit),
                 ready_pairs=frozenset(ready_pairs),
                 named_devices=frozenset(d for d, u in dev_unit.items() if u in pair_units),
                 ready_devices=frozenset(ready_devices), hard_devices=frozenset(hard_devices))

