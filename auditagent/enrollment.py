"""Enrolment: this device's identity with the collector.

``enroll`` makes a new Ed25519 key pair, registers the public key and the device's
basic identity (hostname, serial number, OS) with a unit's enrolment token, and
stores the answer in ``<state>/enrollment.json`` (0600): device id, collector URL,
TLS trust (CA bundle or pin), key id, unit and when.

Enrolling again rotates the key: the collector replaces the device's key (so the old
one stops being accepted), and reports still waiting in the spool are re-signed with
the new key so none is lost. The new key only replaces the old one once the
collector has accepted it; a crash in between is repaired on the next start.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from auditagent.durable import atomic_write
from auditagent.keys import DeviceKeyStore, KeyProblem, public_key_pem

ENROLLMENT_FILE = "enrollment.json"


@dataclass(frozen=True)
class Enrollment:
    """This device's enrolment: its id, collector, key id and trust settings."""

    device_id: str
    server: str
    keyid: str
    enrolled_at: str
    unit: str | None = None
    policy_url: str | None = None
    ca_bundle: str | None = None
    pinned_sha256: str | None = None
    insecure_http: bool = False
    hostname: str | None = None
    serial: str | None = None
    os: str | None = None
    platform: str | None = None

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode("utf-8")


class EnrollmentProblem(Exception):
    pass


def enrollment_path(state: Path) -> Path:
    return Path(state) / ENROLLMENT_FILE


def load_enrollment(state: Path) -> Enrollment | None:
    path = enrollment_path(state)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise EnrollmentProblem(f"{path} is damaged ({exc}); enrol again: auditagent enroll --server URL "
                                "--token TOKEN") from None
    known = set(Enrollment.__dataclass_fields__)
    try:
        return Enrollment(**{k: v for k, v in data.items() if k in known})
    except TypeError as exc:
        raise EnrollmentProblem(f"{path} is incomplete ({exc}); enrol again") from None


def save_enrollment(state: Path, enrollment: Enrollment) -> None:
    atomic_write(enrollment_path(state), enrollment.to_json(), mode=0o600)


def repair_pending_key(state: Path, keys: DeviceKeyStore) -> None:
    """A crash during re-enrolment can leave ``device.key.new`` behind. If the enrolment
    record already names it, it is the key the collector knows: make it current.
    Otherwise the re-enrolment never completed: drop it."""
    if not keys.pending_path.exists():
        return
    enrollment = load_enrollment(state)
    try:
        from auditagent.keys import keyid, load_private_key_file

        pending = load_private_key_file(keys.pending_path)
    except KeyProblem:
        keys.discard_pending()
        return
    if enrollment is not None and keyid(pending.public_key()) == enrollment.keyid:
        keys.commit_pending()
    else:
        keys.discard_pending()


# ------------------------------------------------------------------ identity


def device_identity(host: Any) -> dict[str, Any]:
    """hostname, serial number, OS name and platform — best effort, through the Host seam."""
    from auditagent.probes import ProbeContext, run_probe

    platform = host.platform
    os_section = run_probe("os", ProbeContext(host=host))
    os_name = os_section.get("name") or " ".join(str(x) for x in (os_section.get("id"), os_section.get("version"))
                                                  if x) or platform
    return {"hostname": socket.gethostname(), "serial": serial_number(host), "os": os_name, "platform": platform}


_SERIAL_JUNK = re.compile(r"^(|none|null|n/a|0+|default string|to be filled by o\.e\.m\.|system serial number|"
                          r"not specified|not applicable|chassis serial number)$", re.I)


def _clean_serial(value: str | None) -> str | None:
    value = (value or "").strip()
    return None if _SERIAL_JUNK.match(value) else value[:128]


def serial_number(host: Any) -> str | None:
    platform = host.platform
    try:
        if platform == "linux":
            for path in ("/sys/class/dmi/id/product_serial", "/sys/class/dmi/id/board_serial"):
                try:
                    serial = _clean_serial(host.read_text(path))
                except OSError:
                    continue
                if serial:
                    return serial
            return None
        if platform == "macos":
            res = host.run(["ioreg", "-c", "IOPlatformExpertDevice", "-d", "2"], timeout=10)
            if res.ok:
                m = re.search(r'"IOPlatformSerialNumber"\s*=\s*"([^"]*)"', res.text())
                return _clean_serial(m.group(1)) if m else None
            return None
        if platform == "windows":
            res = host.run(["powershell.exe", "-NoProfile", "-NonInteractive", "-Command",
                            "(Get-CimInstance -ClassName Win32_BIOS).SerialNumber"], timeout=20)
            return _clean_serial(res.text()) if res.ok else None
    except Exception:  # noqa: BLE001 - identity is best effort; never block enrolment on it
        return None
    return None


# ------------------------------------------------------------------ enrolling


def _rekey_proof(keys: DeviceKeyStore, previous: Enrollment, new_key: Any) -> dict[str, Any] | None:
    """The collector lets a device change its key only when asked with its current key:
    this signs the new key with the enrolled one. None if that key is gone (then only a
    re-enrol token IT creates for this device will do)."""
    from auditagent.keys import keyid
    from auditagent.report import sign_rekey

    try:
        current = keys.load()
    except KeyProblem:
        return None
    if keyid(current.public_key()) != previous.keyid:
        return None
    return sign_rekey(previous.device_id, new_key.public_key(), current)


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def enroll(*, state: Path, client: Any, token: str, identity: dict[str, Any], server: str,
           ca_bundle: str | None, pinned_sha256: str | None, insecure_http: bool, unit_hint: str | None,
           log: Any = None) -> Enrollment:
    """Register a new key with the collector; on success make it current and record the enrolment."""
    keys = DeviceKeyStore(Path(state) / "keys")
    from auditagent.keys import is_windows, restrict_to_owner

    if is_windows():  # pragma: no cover - owner-only ACL on the whole state folder
        restrict_to_owner(Path(state), directory=True)
    repair_pending_key(state, keys)
    previous = load_enrollment(state)
    new_key = keys.create_pending()
    from auditagent.keys import keyid

    from auditagent import __version__

    device = {k: identity.get(k) for k in ("hostname", "serial", "os", "platform")}
    device["agent_version"] = __version__
    payload: dict[str, Any] = {"token": token, "public_key": public_key_pem(new_key.public_key()), "device": device}
    if previous is not None and previous.server.rstrip("/") == server.rstrip("/"):
        payload["device_id"] = previous.device_id
        proof = _rekey_proof(keys, previous, new_key)
        if proof is not None:
            payload["rekey_proof"] = proof
    if unit_hint:
        payload["unit"] = unit_hint
    try:
        answer = client.enroll(payload)
    except BaseException:
        keys.discard_pending()
        raise
    device_id = str(answer.get("device_id") or "")
    if not device_id:
        keys.discard_pending()
        raise EnrollmentProblem("the collector accepted the enrolment but sent no device_id")
    kid = keyid(new_key.public_key())
    record = Enrollment(device_id=device_id, server=server.rstrip("/"), keyid=kid, enrolled_at=now_iso(),
                        unit=answer.get("unit"), policy_url=answer.get("policy_url"),
                        ca_bundle=str(ca_bundle) if ca_bundle else None, pinned_sha256=pinned_sha256,
                        insecure_http=insecure_http, hostname=identity.get("hostname"),
                        serial=identity.get("serial"), os=identity.get("os"), platform=identity.get("platform"))
    # Record first, then swap the key: a crash between is repaired by repair_pending_key.
    save_enrollment(state, record)
    keys.commit_pending()
    next_sequence = answer.get("next_sequence")
    if isinstance(next_sequence, int) and next_sequence > 1:
        # The collector has reports up to next_sequence - 1 from this device: never reuse those numbers.
        from auditagent.durable import SequenceCounter

        SequenceCounter(Path(state) / "sequence").advance_to(next_sequence - 1)
    if log is not None:
        log.info("enrolled", device_id=device_id, unit=record.unit, keyid=kid[:16],
                 rotated=previous is not None, server=record.server)
    return record
