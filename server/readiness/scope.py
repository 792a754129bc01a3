"""Who may see what: a user's :class:`Scope` (a unit subtree), the look-ups that answer
404 outside it, and the errors every readiness function raises (an ApiError each, so
the API and the dashboard answer them alike).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import func, literal, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from server.db import devices, units
from server.store import ApiError

# ------------------------------------------------------------------ errors


class NotFound(ApiError):
    """404. A unit, device, report or exception outside the user's scope raises this too:
    out of scope is indistinguishable from missing."""

    def __init__(self, what: str, ident: Any) -> None:
        super().__init__(404, "not_found", f"{what} {ident}: not found")


class Forbidden(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(403, "forbidden", message)


class Invalid(ApiError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(422, "invalid", f"{field_name}: {message}", field=field_name)


# ------------------------------------------------------------------ scope


class Actor(Protocol):
    """Who asks: what this package needs of a signed-in user (server.auth.User has it),
    so readiness never imports the login code."""

    id: int
    role: str
    scope_path: str | None


@dataclass(frozen=True)
class Scope:
    """The units a user may see: the subtree at ``unit_path`` ('A/B'), or all (None)."""

    unit_path: str | None = None

    @classmethod
    def all(cls) -> "Scope":
        return cls(None)

    @classmethod
    def for_user(cls, user: Actor) -> "Scope":
        return cls(user.scope_path)

    def contains(self, path: str | None) -> bool:
        if self.unit_path is None:
            return True
        if path is None:
            return False
        return path == self.unit_path or path.startswith(self.unit_path + "/")

    def clause(self, path_col: Any) -> ColumnElement[bool]:
        """SQL: ``path_col`` lies in this scope (no LIKE: unit names may hold % or _)."""
        if self.unit_path is None:
            return literal(True) == literal(True)
        return in_subtree(path_col, self.unit_path)


def in_subtree(path_col: Any, root: str) -> ColumnElement[bool]:
    prefix = root + "/"
    return or_(path_col == root, func.substr(path_col, 1, len(prefix)) == prefix)


def ancestor_or_self(anc_path: Any, path: Any) -> ColumnElement[bool]:
    """SQL: the unit at ``anc_path`` is ``path`` or one of its ancestors (both columns)."""
    return or_(path == anc_path, func.substr(path, 1, func.length(anc_path) + 1) == anc_path + "/")


def scope_unit_ids(conn: Connection, scope: Scope, root: str | None = None) -> list[int] | None:
    """Ids of the units in scope (and under ``root``); None when that is every unit. Passed
    to queries as a list, so the planner sees how few rows a subtree selects."""
    if scope.unit_path is None and root is None:
        return None
    q = select(units.c.id).where(scope.clause(units.c.path))
    if root is not None:
        q = q.where(in_subtree(units.c.path, root))
    return list(conn.execute(q).scalars())



def visible_unit(conn: Connection, scope: Scope, unit_id: int) -> dict[str, Any]:
    row = conn.execute(select(units).where(units.c.id == unit_id)).mappings().first()
    if row is None or not scope.contains(row["path"]):
        raise NotFound("unit", unit_id)
    return dict(row)


def visible_device(conn: Connection, scope: Scope, device_id: str) -> dict[str, Any]:
    """The device row (with ``unit_path``) if it exists, is not revoked and lies in scope; else NotFound."""
    row = conn.execute(select(devices, units.c.path.label("unit_path"))
                       .join(units, units.c.id == devices.c.unit_id)
                       .where(devices.c.id == str(device_id)[:64])).mappings().first()
    if row is None or row["revoked_at"] is not None or not scope.contains(row["unit_path"]):
        raise NotFound("device", device_id)
    return dict(row)


