"""The collector's operations on storage: units, enrolment tokens, devices and their
keys, signed policies per unit, and report ingest.

Ingest verifies each report in the request's thread, then hands it to a group commit
(server/group_commit.py): reports of concurrent requests share one transaction, and
each request is answered once that transaction has committed. The sequence rule is
enforced by the database (server/report_write.py): a conditional ``UPDATE device_state
… WHERE last_sequence < :seq`` (which also re-checks that the device is not revoked and
the signing key is still current) takes the device's row lock, and
``UNIQUE(device_id, sequence)`` / ``UNIQUE(report_id)`` on the append-only ``reports``
table back it up. Two collector processes on one
PostgreSQL therefore cannot store a report twice or store an older sequence after a
newer one; Python never decides by reading first and writing after.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import unicodedata
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import structlog
from cryptography.exceptions import InvalidSignature
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from auditagent import report as wire
from server.db import (device_keys, device_state, devices, enrolment_tokens, now, reports, set_max_report_age,
                       unit_policies, units, utc, write_audit)
from server import partitions, report_pack
from server.group_commit import GroupCommit
from server.key_cache import LRUCache
from server.local_time import DEFAULT_ZONE, local_day
from server.report_read import SIGNED_COLUMNS, payload_of, signed_refs
from server.report_write import store_batch_for, store_history

log = structlog.get_logger("auditagent.collector")

TOKEN_PREFIX = "aaenr_"


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = wire.MAX_REPORT_BYTES
    # Only a clock running ahead is refused. A report generated long ago (a laptop
    # offline over a holiday) is history: stored, and never over a newer latest state.
    max_future_skew: dt.timedelta = dt.timedelta(minutes=10)


class NeedsDatabase(Exception):
    """:meth:`Store.verify` with ``cached_only`` would have to read the database."""


@dataclass(frozen=True, slots=True)
class VerifiedReport:
    """A report that passed every check, with the rows to write (``params``)."""
    statement: dict[str, Any]
    payload: bytes
    params: dict[str, Any]


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message", ...extra}}`` with ``status``
    (and ``headers``, e.g. Retry-After)."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


# Wire-module error codes → HTTP status on POST /v1/reports.
REPORT_ERROR_STATUS = {
    "malformed_json": 400,
    "malformed_envelope": 400,
    "bad_payload_type": 422,
    "schema_violation": 422,
    "unknown_keyid": 403,
    "bad_signature": 403,
}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


def normalise_unit_path(path: str) -> list[str]:
    """'Socialförvaltningen / IFO / Ekonomiskt bistånd' → ['Socialförvaltningen', 'IFO', 'Ekonomiskt bistånd']."""
    parts = [unicodedata.normalize("NFC", p.strip()) for p in str(path).split("/")]
    if not parts or any(not p for p in parts):
        raise ApiError(400, "bad_unit_path", f"unit path {path!r}: names separated by '/', none empty")
    if any(len(p) > 200 for p in parts):
        raise ApiError(400, "bad_unit_path", f"unit path {path!r}: a name is longer than 200 characters")
    return parts


def parse_duration(text: str) -> dt.timedelta:
    """'7d', '12h', '30m', '90s', '2w' → timedelta."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", str(text))
    if not m:
        raise ValueError(f"duration {text!r}: use a number and a unit, e.g. 30m, 12h, 7d, 2w")
    n, unit = int(m.group(1)), m.group(2)
    return dt.timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[unit]: n})


class _SodiumVerifier:
    """Ed25519 verification through libsodium (PyNaCl), duck-typed like cryptography's
    public key for :func:`auditagent.report.verify_decoded`: about twice as fast here,
    and cffi releases the GIL, so request threads verify in parallel."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def verify(self, signature: bytes, message: bytes) -> None:
        if len(signature) != 64:
            raise InvalidSignature()
        try:
            _sodium_open(signature + message, self.raw)
        except _SodiumBadSignature:
            raise InvalidSignature() from None


try:  # optional: the server extra installs PyNaCl; without it, cryptography verifies
    from nacl.bindings import crypto_sign_open as _sodium_open
    from nacl.exceptions import BadSignatureError as _SodiumBadSignature
except ImportError:  # pragma: no cover
    _sodium_open = None


@lru_cache(maxsize=65536)
def _public_key(raw: bytes) -> Any:
    if _sodium_open is not None:
        return _SodiumVerifier(raw)
    return wire.public_key_from_raw(raw)


def _verified_signature(decoded: wire.Decoded, kid: str, raw_key: bytes) -> bytes:
    """The signature by ``kid`` that verified (verify_decoded accepted one of them)."""
    mine = [sig for k, sig in decoded.signatures if k == kid]
    if len(mine) > 1:
        message = wire.pae(decoded.payload_type, decoded.payload)
        for sig in mine:
            try:
                _public_key(raw_key).verify(sig, message)
                return sig
            except InvalidSignature:
                continue
    return mine[0]


FAILING_STATUSES = ("fail", "unknown")  # a required check with any other status (pass, not_applicable) is met


def check_rows(results: list[dict[str, Any]]) -> tuple[list[dict[str, str]], list[str]]:
    """A report's results as device_checks rows (one per check id, the last one wins;
    a result without a severity counts as required, failing closed) and the sorted ids
    of the required checks that are not met."""
    by_id: dict[str, dict[str, str]] = {}
    for r in results:
        if not isinstance(r, dict) or not isinstance(r.get("check_id"), str):
            continue
        cid = r["check_id"][:200]
        sev = r.get("severity") if r.get("severity") in ("required", "recommended") else "required"
        by_id[cid] = {"check_id": cid, "severity": sev, "status": str(r.get("status"))[:16]}
    rows = list(by_id.values())
    return rows, failing_required(rows)


def failing_required(rows: list[dict[str, Any]]) -> list[str]:
    """The sorted ids of the required checks among ``rows`` that are not met."""
    return sorted(r["check_id"] for r in rows if r["severity"] == "required" and r["status"] in FAILING_STATUSES)


MAX_GRACE_HOURS = 24 * 365  # = auditagent.policy's bound on grace_hours


def grace_hours(result: Any) -> int | None:
    """A result's ``grace_hours`` (the policy's, carried in the report like its severity),
    or None: absent, not a whole number, or out of range — no grace, failing closed."""
    g = result.get("grace_hours") if isinstance(result, dict) else None
    if isinstance(g, int) and not isinstance(g, bool) and 1 <= g <= MAX_GRACE_HOURS:
        return g
    return None


def check_runs(results: list[dict[str, Any]], generated: dt.datetime) -> list[dict[str, Any]]:
    """:func:`check_rows` with what a check's run would be if it started with this report:
    ``failing_since`` (this report's time, if not met) and ``due_until`` (that + the
    policy's grace_hours). The write keeps the previous row's run where it continues."""
    graces = {r["check_id"][:200]: grace_hours(r) for r in results
              if isinstance(r, dict) and isinstance(r.get("check_id"), str)}
    out = []
    for row in check_rows(results)[0]:
        failing = row["status"] in FAILING_STATUSES
        g = graces.get(row["check_id"]) if failing else None
        out.append({**row, "failing_since": generated if failing else None,
                    "due_until": generated + dt.timedelta(hours=g) if g else None})
    return out


def _device_os(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)[:500]
    return str(value)[:500]


@dataclass
class Store:
    engine: Engine
    limits: Limits = field(default_factory=Limits)
    # Devices' current keys (id, raw key), least recently used dropped first.
    key_cache_size: int = 200_000
    # (month, sha256) of report segments this process has committed to report_blobs.
    blob_cache_size: int = 400_000
    # The organisation's time zone: a report is filed under its local day (device_days).
    time_zone: str = DEFAULT_ZONE
    _keys: LRUCache[tuple[str, bytes]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._keys = LRUCache(self.key_cache_size)
        self._blobs: LRUCache[bool] = LRUCache(self.blob_cache_size)
        self._partitions_month: dt.date | None = None
        self._writer = GroupCommit(self.engine, store_batch_for(self.engine.dialect.name))

    # ------------------------------------------------------------------ health

    def ready(self, head: str) -> bool:
        from server.migrate import current_revision

        try:
            return current_revision(self.engine) == head
        except Exception:  # noqa: BLE001 - not reachable → not ready
            return False

    # ------------------------------------------------------------------ units

    def add_unit(self, path: str) -> dict[str, Any]:
        """Create the unit and any missing ancestors; returns the (leaf) unit."""
        parts = normalise_unit_path(path)
        with self.engine.begin() as conn:
            parent_id = None
            row = None
            for depth in range(1, len(parts) + 1):
                p = "/".join(parts[:depth])
                row = conn.execute(select(units).where(units.c.path == p)).mappings().first()
                if row is None:
                    conn.execute(insert(units).values(parent_id=parent_id, name=parts[depth - 1], path=p,
                                                      depth=depth, created_at=now()))
                    row = conn.execute(select(units).where(units.c.path == p)).mappings().first()
                parent_id = row["id"]
            return dict(row)  # type: ignore[arg-type]

    def get_unit(self, path: str, conn: Any = None) -> dict[str, Any]:
        p = "/".join(normalise_unit_path(path))
        if conn is None:
            with self.engine.connect() as c:
                row = c.execute(select(units).where(units.c.path == p)).mappings().first()
        else:
            row = conn.execute(select(units).where(units.c.path == p)).mappings().first()
        if row is None:
            raise ApiError(404, "unknown_unit", f"unit {p!r} does not exist; create it with `unit add`")
        return dict(row)

    def set_unit_max_age(self, path: str, hours: int | None, conn: Any = None, *,
                         at: dt.datetime | None = None) -> dict[str, Any]:
        """Set (or clear, with None) the unit's max report age from ``at`` (default: now)
        on; sub-units without their own inherit it."""
        if hours is not None and not 1 <= int(hours) <= 24 * 365:
            raise ApiError(422, "invalid", "max_report_age_hours: between 1 and 8760")
        if conn is None:
            with self.engine.begin() as c:
                return self.set_unit_max_age(path, hours, c, at=at)
        unit = self.get_unit(path, conn)
        set_max_report_age(conn, unit["id"], hours, at or now())
        return {**unit, "max_report_age_hours": hours}

    def list_units(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            dev_count = (select(devices.c.unit_id, func.count().label("n"))
                         .where(devices.c.revoked_at.is_(None)).group_by(devices.c.unit_id).subquery())
            rows = conn.execute(select(units, func.coalesce(dev_count.c.n, 0).label("devices"))
                                .outerjoin(dev_count, dev_count.c.unit_id == units.c.id)
                                .order_by(units.c.path)).mappings().all()
            return [dict(r) for r in rows]

    # ------------------------------------------------------------------ tokens

    def create_token(self, unit_path: str | None, *, expires_in: dt.timedelta = dt.timedelta(days=7), uses: int = 1,
                     note: str | None = None, device_id: str | None = None,
                     actor_id: int | None = None) -> tuple[str, dict[str, Any]]:
        """A new enrolment token: returns (token, row). Only its sha256 is stored. With
        ``device_id``: a single-use re-enrol token for that one device (its unit's), which
        lets it enrol a new key without proof of the old one (a lost or wiped key); it
        is written to the audit log."""
        if uses < 1:
            raise ApiError(400, "bad_uses", "a token must allow at least one use")
        if expires_in.total_seconds() <= 0:
            raise ApiError(400, "bad_expiry", "a token must expire in the future")
        if device_id is not None and uses != 1:
            raise ApiError(400, "bad_uses", "a device's re-enrol token has exactly one use")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            if device_id is not None:
                dev = conn.execute(select(devices.c.unit_id, devices.c.revoked_at, units.c.path)
                                   .join(units, units.c.id == devices.c.unit_id)
                                   .where(devices.c.id == device_id)).first()
                if dev is None:
                    raise ApiError(404, "unknown_device", f"device {device_id}: not enrolled here")
                if dev.revoked_at is not None:
                    raise ApiError(409, "revoked_device", f"device {device_id}: revoked; enrol it as a new device")
                if unit_path is not None and "/".join(normalise_unit_path(unit_path)) != dev.path:
                    raise ApiError(400, "unit_mismatch", f"device {device_id} is in unit {dev.path!r}")
                unit = {"id": dev.unit_id, "path": dev.path}
            else:
                if unit_path is None:
                    raise ApiError(400, "bad_unit_path", "a token needs a unit (or a device to re-enrol)")
                unit = self.get_unit(unit_path, conn)
            created = now()
            values = dict(unit_id=unit["id"], token_sha256=hash_token(token), created_at=created,
                          expires_at=created + expires_in, max_uses=uses, uses=0, note=note, device_id=device_id)
            token_id = conn.execute(insert(enrolment_tokens).values(**values)
                                    .returning(enrolment_tokens.c.id)).scalar_one()
            if device_id is not None:
                write_audit(conn, actor_id, "token.create_reenrol", "device", device_id,
                            {"token_id": token_id, "unit": unit["path"],
                             "expires_at": values["expires_at"].isoformat(), "note": note}, created)
        values.pop("token_sha256")
        return token, {**values, "id": token_id, "unit": unit["path"]}

    def list_tokens(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(enrolment_tokens.c.id, units.c.path.label("unit"), enrolment_tokens.c.created_at,
                                       enrolment_tokens.c.expires_at, enrolment_tokens.c.uses,
                                       enrolment_tokens.c.max_uses, enrolment_tokens.c.revoked_at,
                                       enrolment_tokens.c.note, enrolment_tokens.c.device_id)
                                .join(units, units.c.id == enrolment_tokens.c.unit_id)
                                .order_by(enrolment_tokens.c.id)).mappings().all()
            return [dict(r) for r in rows]

    def revoke_token(self, token_id: int) -> bool:
        with self.engine.begin() as conn:
            res = conn.execute(update(enrolment_tokens).where(enrolment_tokens.c.id == token_id,
                                                              enrolment_tokens.c.revoked_at.is_(None))
                               .values(revoked_at=now()))
            return res.rowcount == 1

    # ------------------------------------------------------------------ enrolment

    def enroll(self, *, token: str, public_key_pem: str, device: dict[str, Any],
               device_id: str | None = None, rekey_proof: Any = None) -> dict[str, Any]:
        """Register a device's key with a token. A new device gets a fresh id. Re-keying an
        enrolled device (``device_id``) needs proof that the caller holds its current key
        (``rekey_proof``, :func:`auditagent.report.sign_rekey`), or a re-enrol token an
        administrator created for that device: a unit's install token alone cannot take a
        device over (device ids are not secrets)."""
        try:
            pub = wire.load_public_key_pem(public_key_pem)
        except wire.ReportError as exc:
            raise ApiError(422, "bad_public_key", exc.message) from None
        kid = wire.keyid(pub)
        raw = wire.raw_public_bytes(pub)
        pem = wire.public_key_pem(pub)
        hostname = str(device.get("hostname") or "").strip()
        if not hostname:
            raise ApiError(422, "schema_violation", "device.hostname: missing or empty")
        t = now()
        with self.engine.begin() as conn:
            tok = conn.execute(select(enrolment_tokens).where(enrolment_tokens.c.token_sha256 == hash_token(token))
                               ).mappings().first()
            if tok is None or tok["revoked_at"] is not None:
                raise ApiError(401, "invalid_token", "the enrolment token is not valid; ask IT for a new one")
            if utc(tok["expires_at"]) <= t:  # type: ignore[operator]
                raise ApiError(401, "expired_token", "the enrolment token has expired; ask IT for a new one")
            bound = tok["device_id"]
            if bound is not None and device_id not in (None, bound):
                raise ApiError(403, "token_for_other_device", "this re-enrol token was issued for another device")
            device_id = device_id or bound
            # Use-limit decided by the database: the conditional UPDATE wins or loses atomically.
            used = conn.execute(update(enrolment_tokens)
                                .where(enrolment_tokens.c.id == tok["id"],
                                       enrolment_tokens.c.uses < enrolment_tokens.c.max_uses,
                                       enrolment_tokens.c.expires_at > t,
                                       enrolment_tokens.c.revoked_at.is_(None))
                                .values(uses=enrolment_tokens.c.uses + 1))
            if used.rowcount != 1:
                raise ApiError(401, "token_exhausted", "the enrolment token has been used up; ask IT for a new one")
            unit_path = conn.execute(select(units.c.path).where(units.c.id == tok["unit_id"])).scalar_one()
            identity = dict(hostname=hostname[:255], serial=(str(device["serial"])[:255] if device.get("serial") else None),
                            os=_device_os(device.get("os")),
                            platform=(str(device["platform"])[:32] if device.get("platform") else None),
                            agent_version=(str(device["agent_version"])[:64] if device.get("agent_version") else None))
            if device_id:
                last = self._rekey(conn, device_id, tok, kid, raw, pem, identity, rekey_proof, t)
                event = "device.rekeyed"
            else:
                device_id = str(uuid.uuid4())
                conn.execute(insert(devices).values(id=device_id, unit_id=tok["unit_id"], current_keyid=kid,
                                                    public_key=raw, enrolled_at=t, **identity))
                conn.execute(insert(device_keys).values(device_id=device_id, keyid=kid, public_key_pem=pem,
                                                        created_at=t))
                conn.execute(insert(device_state).values(device_id=device_id, last_sequence=0, unit_id=tok["unit_id"],
                                                         agent_version=identity["agent_version"]))
                last = 0
                event = "device.enrolled"
                write_audit(conn, None, "device.enroll", "device", device_id,
                            {"hostname": identity["hostname"], "unit": unit_path, "keyid": kid[:16],
                             "token_id": tok["id"]}, t)
        self._keys.pop(device_id, None)
        log.info(event, device_id=device_id, unit=unit_path, keyid=kid[:16])
        return {"device_id": device_id, "unit": unit_path, "keyid": kid,
                "policy_url": f"/v1/devices/{device_id}/policy", "next_sequence": int(last) + 1}

    def _rekey(self, conn: Any, device_id: str, tok: Any, kid: str, raw: bytes, pem: str, identity: dict[str, Any],
               proof: Any, t: dt.datetime) -> int:
        """Give an enrolled device a new key, if the request may (see :meth:`enroll`);
        returns its last stored sequence."""
        dev = conn.execute(select(devices).where(devices.c.id == device_id)).mappings().first()
        if dev is None:
            raise ApiError(404, "unknown_device", f"device {device_id}: not enrolled here; enrol without "
                                                  "device_id to register it anew")
        if dev["revoked_at"] is not None:
            raise ApiError(403, "revoked_device", f"device {device_id}: revoked; IT must enrol it as a new device")
        if dev["unit_id"] != tok["unit_id"]:
            raise ApiError(403, "unit_mismatch", f"device {device_id}: belongs to another unit than this token")
        how = "reenrol_token" if tok["device_id"] == device_id else "proof"
        if how == "proof":
            if proof is None:
                raise ApiError(403, "rekey_needs_proof",
                               f"device {device_id}: is already enrolled; enrolling it again needs a request signed "
                               "with its current key (rekey_proof), or a re-enrol token IT creates for this device "
                               f"(`auditagent-collector token create --device {device_id}`)")
            try:
                wire.verify_rekey(proof, device_id=device_id, new_keyid=kid,
                                  current_key=wire.public_key_from_raw(bytes(dev["public_key"])), now=t,
                                  max_skew=self.limits.max_future_skew)
            except wire.ReportError as exc:
                raise ApiError(403, "bad_rekey_proof", f"device {device_id}: {exc.message}") from None
        if dev["current_keyid"] != kid:
            old = conn.execute(select(device_keys.c.id).where(device_keys.c.device_id == device_id,
                                                              device_keys.c.keyid == kid)).first()
            if old is not None:
                raise ApiError(409, "key_reused", f"device {device_id}: this key was retired; make a new one")
            conn.execute(update(device_keys).where(device_keys.c.device_id == device_id,
                                                   device_keys.c.retired_at.is_(None)).values(retired_at=t))
            conn.execute(insert(device_keys).values(device_id=device_id, keyid=kid, public_key_pem=pem,
                                                    created_at=t))
            write_audit(conn, None, "device.rekeyed", "device", device_id,
                        {"by": how, "token_id": tok["id"], "old_keyid": dev["current_keyid"][:16],
                         "new_keyid": kid[:16]}, t)
        conn.execute(update(devices).where(devices.c.id == device_id)
                     .values(current_keyid=kid, public_key=raw, enrolled_at=t, **identity))
        return int(conn.execute(select(device_state.c.last_sequence)
                                .where(device_state.c.device_id == device_id)).scalar_one())

    # ------------------------------------------------------------------ devices

    def list_devices(self, unit_path: str | None = None, *, include_revoked: bool = True) -> list[dict[str, Any]]:
        q = (select(devices.c.id, units.c.path.label("unit"), devices.c.hostname, devices.c.serial, devices.c.os,
                    devices.c.platform, devices.c.agent_version, devices.c.current_keyid, devices.c.enrolled_at,
                    devices.c.revoked_at, device_state.c.last_sequence, device_state.c.verdict,
                    device_state.c.received_at.label("last_report_at"))
             .join(units, units.c.id == devices.c.unit_id)
             .outerjoin(device_state, device_state.c.device_id == devices.c.id)
             .order_by(units.c.path, devices.c.hostname, devices.c.id))
        if unit_path:
            p = "/".join(normalise_unit_path(unit_path))
            q = q.where((units.c.path == p) | units.c.path.startswith(p + "/"))
        if not include_revoked:
            q = q.where(devices.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings().all()]

    def revoke_device(self, device_id: str, reason: str | None = None, actor_id: int | None = None) -> bool:
        with self.engine.begin() as conn:
            res = conn.execute(update(devices).where(devices.c.id == device_id, devices.c.revoked_at.is_(None))
                               .values(revoked_at=now(), revoked_reason=reason))
            if res.rowcount != 1:
                found = conn.execute(select(devices.c.id).where(devices.c.id == device_id)).first()
                if found is None:
                    raise ApiError(404, "unknown_device", f"device {device_id}: not enrolled here")
                return False
            conn.execute(update(device_keys).where(device_keys.c.device_id == device_id,
                                                   device_keys.c.retired_at.is_(None)).values(retired_at=now()))
            # Its past days leave its unit's trend: the unit's cached days are redone.
            conn.execute(update(units).where(units.c.id == select(devices.c.unit_id)
                                             .where(devices.c.id == device_id).scalar_subquery())
                         .values(history_version=units.c.history_version + 1))
            hostname = conn.execute(select(devices.c.hostname).where(devices.c.id == device_id)).scalar_one()
            write_audit(conn, actor_id, "device.revoke", "device", device_id,
                        {"hostname": hostname, "reason": reason}, now())
        log.info("device.revoked", device_id=device_id)
        return True

    # ------------------------------------------------------------------ policies

    def set_policy(self, unit_path: str, envelope: dict[str, Any], actor_id: int | None = None) -> dict[str, Any]:
        """Store a signed policy envelope for a unit (the collector never holds the signing key)."""
        try:
            payload, _ = wire.decode_policy_envelope(envelope)
        except wire.ReportError as exc:
            raise ApiError(422, exc.code, exc.message) from None
        policy_id = policy_version = None
        max_age: int | None = None
        try:
            import yaml

            doc = yaml.safe_load(payload)
            if isinstance(doc, dict):
                policy_id = str(doc["id"])[:200] if doc.get("id") is not None else None
                policy_version = str(doc["version"])[:64] if doc.get("version") is not None else None
                settings = doc.get("settings")
                if isinstance(settings, dict) and isinstance(settings.get("max_report_age_hours"), int) \
                        and not isinstance(settings["max_report_age_hours"], bool) \
                        and 1 <= settings["max_report_age_hours"] <= 24 * 365:
                    max_age = settings["max_report_age_hours"]
        except Exception:  # noqa: BLE001 - the agent validates the policy; we only label it
            pass
        sha = hashlib.sha256(payload).hexdigest()
        with self.engine.begin() as conn:
            unit = self.get_unit(unit_path, conn)
            conn.execute(insert(unit_policies).values(unit_id=unit["id"], policy_id=policy_id,
                                                      policy_version=policy_version, payload_sha256=sha,
                                                      envelope=json.dumps(envelope, separators=(",", ":")),
                                                      created_at=now()))
            if max_age is not None:  # the signed policy says when its devices go stale
                set_max_report_age(conn, unit["id"], max_age, now())
            write_audit(conn, actor_id, "policy.set", "unit", unit["id"],
                        {"unit": unit["path"], "policy_id": policy_id, "policy_version": policy_version,
                         "sha256": sha}, now())
        log.info("policy.set", unit=unit["path"], policy_id=policy_id, sha256=sha[:16])
        return {"unit": unit["path"], "policy_id": policy_id, "policy_version": policy_version, "sha256": sha,
                "max_report_age_hours": max_age}

    def policy_for_device(self, device_id: str) -> dict[str, Any]:
        """The signed policy of the device's unit or its nearest ancestor that has one.
        The endpoint asks only after the device proved its key (server/device_auth.py);
        a revoked or unknown device still gets no policy here."""
        nothing = ApiError(404, "no_policy", f"no signed policy for device {device_id[:64]!r} here; if this device "
                                             "is enrolled, IT sets its unit's policy with `auditagent-collector "
                                             "policy set`")
        with self.engine.connect() as conn:
            dev = conn.execute(select(devices.c.revoked_at, units.c.path)
                               .join(units, units.c.id == devices.c.unit_id)
                               .where(devices.c.id == device_id)).first()
            if dev is None or dev.revoked_at is not None:
                raise nothing
            parts = dev.path.split("/")
            ancestors = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
            row = conn.execute(select(unit_policies.c.envelope, unit_policies.c.payload_sha256,
                                      unit_policies.c.policy_id, unit_policies.c.policy_version,
                                      units.c.path)
                               .join(units, units.c.id == unit_policies.c.unit_id)
                               .where(units.c.path.in_(ancestors))
                               .order_by(units.c.depth.desc(), unit_policies.c.id.desc()).limit(1)).first()
        if row is None:
            raise nothing
        return {"envelope": row.envelope, "sha256": row.payload_sha256, "policy_id": row.policy_id,
                "policy_version": row.policy_version, "unit": row.path}

    # ------------------------------------------------------------------ reports

    def ingest(self, body: bytes, *, received_at: dt.datetime | None = None) -> tuple[int, dict[str, Any]]:
        """Verify and store one report envelope (bytes as received). Returns (status, body);
        raises ApiError for every refusal, with nothing stored."""
        verified = self.verify(body, received_at=received_at)
        if not isinstance(verified, VerifiedReport):
            return verified
        # Group commit: this returns once the transaction holding the report has committed
        # (server/group_commit.py); the statements are in server/report_write.py.
        try:
            stored = self._writer.store(verified.params)
        except IntegrityError:
            stored = False
        return self.settle(verified, stored)

    def submit(self, verified: VerifiedReport) -> Future:
        """:meth:`ingest`'s write without waiting (for an event loop): a future of whether
        the report was stored; then :meth:`settle` (which reads the database if not)."""
        return self._writer.submit(verified.params)

    def verify(self, body: bytes, *, received_at: dt.datetime | None = None,
               cached_only: bool = False) -> VerifiedReport | tuple[int, dict[str, Any]]:
        """The checks of :meth:`ingest` before anything is written: the report verified and
        its rows prepared, or the answer already (a resend of a stored report). Raises
        ApiError for a refusal. With ``cached_only`` it never reads the database: where a
        read is needed (the device's key not cached, a clock ahead, a new month's
        partitions) it raises :class:`NeedsDatabase` instead, before any work is kept."""
        try:
            envelope = wire.parse_envelope(body)
            decoded = wire.decode_envelope(envelope)
        except wire.ReportError as exc:
            raise ApiError(REPORT_ERROR_STATUS.get(exc.code, 400), exc.code, exc.message) from None
        device_id = decoded.device_id
        received = received_at or now()
        payload = decoded.payload
        # The device's current key, from a per-process cache or the database. The cache can
        # be stale (revoked or re-keyed by another process): the conditional UPDATE below
        # re-checks both in the database, so a stale entry can only cause a refusal.
        cached = self._keys.get(device_id)
        if cached is None or cached[0] not in decoded.keyids:
            if cached_only:
                raise NeedsDatabase()
            cached = self._load_key(device_id)
        kid, raw_key = cached
        if kid not in decoded.keyids:
            raise ApiError(403, "key_mismatch", f"device {device_id}: not signed with the device's current key "
                                                f"({kid[:16]}…); re-enrol if the key was replaced")
        # Verified outside any transaction: no lock is held while the CPU works.
        try:
            statement = wire.verify_decoded(decoded, _public_key(raw_key), expected_keyid=kid)
        except wire.ReportError as exc:
            raise ApiError(REPORT_ERROR_STATUS.get(exc.code, 400), exc.code,
                           f"device {device_id}: {exc.message}") from None
        p = statement["predicate"]
        generated = wire.parse_time(p["generated_at"])
        assert generated is not None  # validated
        if generated - received > self.limits.max_future_skew:
            if cached_only:
                raise NeedsDatabase()
            dup = self._duplicate(device_id, statement, payload)
            if dup is not None:
                return dup
            raise ApiError(422, "clock_skew", f"device {device_id}: generated_at {p['generated_at']} is more than "
                                              f"{self.limits.max_future_skew} ahead of the collector's clock "
                                              f"{received.isoformat()}; fix the device clock",
                           server_time=received.isoformat())
        seq = p["sequence"]
        policy = p["policy"]
        # One transaction. The conditional UPDATE takes the device's row lock and succeeds only
        # if this sequence is above the stored one AND the device is still active with this
        # key: the database decides, so concurrent collectors cannot break the sequence rule.
        # The signed bytes, compactly: the payload's body and its facts/results segments
        # (server/report_pack.py), and the signature that verified.
        packed = report_pack.pack(decoded.payload, refs=signed_refs(p["report_id"], device_id))
        month = partitions.month_of(received)
        if cached_only and partitions.month_of(now()) != self._partitions_month:
            raise NeedsDatabase()
        self._partitions_ahead()
        blobs = [(sha, report_pack.compress_segment(seg)) for sha, seg in packed.segments.items()
                 if (month, sha) not in self._blobs]
        params = dict(device_id=device_id, kid=kid, sequence=seq, report_id=p["report_id"], verdict=p["verdict"],
                      policy_id=policy["id"], policy_version=policy["version"], policy_sha256=policy["sha256"],
                      agent_version=p["agent_version"], generated_at=generated, received_at=received,
                      body=packed.body, signature=_verified_signature(decoded, kid, raw_key),
                      month=month, blobs=blobs)
        # The latest results as rows (device_checks) and the report's local day (device_days),
        # written in the same transaction, only if device_state actually advanced.
        check_list = check_runs(p["results"], generated)
        failing = failing_required(check_list)
        params.update(day=local_day(generated, self.time_zone), ready_strict=not failing,
                      failing_required=",".join(failing))
        # A report whose local day had already ended when it arrived changes a closed day of
        # the trend: its unit's cached days are redone (see server.readiness.trend). By the
        # collector's clock too, for reports stored with a received time in the past (the
        # preview's simulated history).
        arrived = local_day(max(received, now()), self.time_zone)
        params["late"] = params["day"] < arrived
        params["check_list"] = check_list
        return VerifiedReport(statement, payload, params)

    def settle(self, verified: VerifiedReport, stored: bool) -> tuple[int, dict[str, Any]]:
        """The answer once the write is done: stored (no database read), or why not —
        a resend, a refusal, or a report older than the latest state kept as history."""
        params = verified.params
        device_id, seq = params["device_id"], params["sequence"]
        if not stored:
            self._keys.pop(device_id)
            return self._conflict(device_id, verified.statement, verified.payload, params)
        self._remember_blobs(params)
        log.debug("report.stored", device_id=device_id, sequence=seq)
        return 201, {"report_id": params["report_id"], "status": "stored", "sequence": seq}

    def _load_key(self, device_id: str) -> tuple[str, bytes]:
        with self.engine.connect() as conn:
            dev = conn.execute(select(devices.c.current_keyid, devices.c.public_key, devices.c.revoked_at)
                               .where(devices.c.id == device_id)).first()
        if dev is None:
            raise ApiError(403, "unknown_device", f"device {device_id}: not enrolled here; enrol it first")
        if dev.revoked_at is not None:
            self._keys.pop(device_id)
            raise ApiError(403, "revoked_device", f"device {device_id}: revoked; reports are not accepted")
        entry = (dev.current_keyid, bytes(dev.public_key))
        self._keys.put(device_id, entry)
        return entry

    def _duplicate(self, device_id: str, statement: dict[str, Any], payload: bytes) -> tuple[int, dict[str, Any]] | None:
        """A resend of a stored report (the same signed bytes): 200; a report id stored with
        other content: 409; None if the id is not stored."""
        rid = (statement.get("predicate") or {}).get("report_id")
        with self.engine.connect() as conn:
            row = conn.execute(select(reports.c.sequence, *SIGNED_COLUMNS)
                               .where(reports.c.report_id == rid)).first()
            same = row is not None and row.device_id == device_id and payload_of(conn, row) == payload
        if same:
            return 200, {"report_id": rid, "status": "duplicate", "sequence": row.sequence}
        if row is not None:
            raise ApiError(409, "report_id_conflict", f"device {device_id}: report id {rid} is already stored with "
                                                      "other content; every report needs a fresh id")
        return None

    def _conflict(self, device_id: str, statement: dict[str, Any], payload: bytes,
                  params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """device_state did not advance: a resend (200 duplicate), a refusal, or a report
        older than the latest state (a lower sequence or an earlier generated_at), which
        is kept as history."""
        dup = self._duplicate(device_id, statement, payload)
        if dup is not None:
            return dup
        with self.engine.connect() as conn:
            dev = conn.execute(select(devices.c.revoked_at, devices.c.current_keyid, device_state.c.last_sequence)
                               .outerjoin(device_state, device_state.c.device_id == devices.c.id)
                               .where(devices.c.id == device_id)).first()
        if dev is None:
            raise ApiError(403, "unknown_device", f"device {device_id}: not enrolled here")
        if dev.revoked_at is not None:
            raise ApiError(403, "revoked_device", f"device {device_id}: revoked; reports are not accepted")
        if dev.current_keyid != params["kid"]:  # the key was rotated while this report was being stored
            raise ApiError(403, "key_mismatch", f"device {device_id}: the device's key changed; re-sign and resend")
        seq = statement["predicate"]["sequence"]
        last = int(dev.last_sequence or 0)
        if self._store_history(params):
            log.debug("report.stored_history", device_id=device_id, sequence=seq)
            return 201, {"report_id": params["report_id"], "status": "history", "sequence": seq}
        raise ApiError(409, "replayed_sequence", f"device {device_id}: a report with sequence {seq} is already "
                                                 f"stored (last sequence {last})", last_sequence=last)

    def _store_history(self, params: dict[str, Any]) -> bool:
        """Store a verified report that is older than the device's latest state: in
        ``reports`` (timeline) and, if its day has no row yet, ``device_days`` (trend);
        device_state and device_checks stay as they are. False if its sequence is
        already stored (UNIQUE(device_id, sequence) decides)."""
        try:
            with self.engine.begin() as conn:
                stored = store_history(conn, params)
        except IntegrityError:
            return False
        if stored:
            self._remember_blobs(params)
        return stored

    def _partitions_ahead(self) -> None:
        """The coming months' partitions, checked once a month per process (a report of a
        month without one lands in the default partition, so a failure here refuses nothing)."""
        month = partitions.month_of(now())
        if month == self._partitions_month:
            return
        try:
            partitions.ensure_ahead(self.engine, month)
        except Exception as exc:  # noqa: BLE001
            log.warning("partitions.ensure_failed", error=type(exc).__name__)
            return
        self._partitions_month = month

    def _remember_blobs(self, params: dict[str, Any]) -> None:
        """The segments just committed: later reports this month need not send them."""
        for sha, _ in params["blobs"]:
            self._blobs.put((params["month"], sha), True)

    def forget_blobs(self) -> None:
        """After retention dropped months: what this process remembers may be gone."""
        self._blobs = LRUCache(self.blob_cache_size)
