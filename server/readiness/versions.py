"""Agent versions: their order, the fleet's distribution, and who runs an outdated one.
"""
from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from server.db import device_state
from server.readiness.scope import Scope, scope_unit_ids
from server.readiness.state import not_revoked
from server.readiness.sql import one_of

@dataclass(frozen=True)
class AgentVersions:
    newest: str | None  # newest version reported anywhere (or the configured minimum if higher)
    minimum: str | None  # configured minimum, if any
    distribution: list[tuple[str, int]]  # (version, devices) in the unit's subtree, newest first
    outdated: int  # devices in the subtree below ``newest``


@functools.lru_cache(maxsize=1024)  # pure, and a fleet runs a handful of versions
def version_key(v: str | None) -> tuple[Any, ...]:
    """Sort key for agent versions: numeric parts compare as numbers ('0.10.0' > '0.9.1')."""
    if not v:
        return ()
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.\-+]", v))


def fleet_agent_versions(conn: Connection) -> list[str]:
    """Every agent version some active device runs. A loose index scan (one index probe
    per distinct version, of which there are a handful), not a pass over every device."""
    return list(conn.execute(_fleet_versions_statement()).scalars().all())


@functools.cache
def _fleet_versions_statement() -> Any:
    """:func:`fleet_agent_versions`' statement: it holds no value, so it is built once."""
    s, s2, s3 = device_state, device_state.alias("next_v"), device_state.alias("any_v")
    walk = select(func.min(s.c.agent_version).label("v")).cte("versions", recursive=True)
    walk = walk.union_all(select(select(func.min(s2.c.agent_version)).where(s2.c.agent_version > walk.c.v)
                                 .scalar_subquery()).where(walk.c.v.is_not(None)))
    # LIMIT 1: probe per version, rather than a semi-join the planner would run over every device.
    in_use = (select(s3.c.device_id).where(s3.c.agent_version == walk.c.v, not_revoked(s3.c.device_id))
              .limit(1).scalar_subquery().is_not(None))
    return select(walk.c.v).where(walk.c.v.is_not(None), in_use)


def versions_of(conn: Connection, dist_by_version: dict[str | None, int], minimum: str | None, *,
                    whole_fleet: bool = False) -> AgentVersions:
    """The distribution given, and how many of it run an agent older than the newest
    version reported anywhere in the fleet (a version number is not confidential) or the
    configured ``minimum``."""
    dist = [(v, n) for v, n in dist_by_version.items() if v]
    all_versions = [v for v, _ in dist] if whole_fleet else fleet_agent_versions(conn)
    newest = max(all_versions, key=version_key) if all_versions else None
    if minimum and (newest is None or version_key(minimum) > version_key(newest)):
        newest = minimum
    dist.sort(key=lambda x: version_key(x[0]), reverse=True)
    outdated = sum(n for v, n in dist if newest and version_key(v) < version_key(newest))
    return AgentVersions(newest=newest, minimum=minimum, distribution=dist, outdated=outdated)


def agent_versions(conn: Connection, scope: Scope, root: str | None, now: dt.datetime, *,
                   minimum: str | None = None) -> AgentVersions:
    """Agent version distribution in the subtree at ``root`` (None: the whole scope), and
    how many devices there run an agent older than the newest one in the fleet (or ``minimum``)."""
    ids = scope_unit_ids(conn, scope, root)
    s = device_state
    q = (select(s.c.agent_version, func.count().label("n")).where(not_revoked(s.c.device_id))
         .group_by(s.c.agent_version))
    if ids is not None:
        q = q.where(one_of(s.c.unit_id, ids))
    dist = {r.agent_version: int(r.n) for r in conn.execute(q)}
    return versions_of(conn, dist, minimum, whole_fleet=ids is None)

