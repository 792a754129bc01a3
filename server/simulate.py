"""A simulated fleet for the preview, the dashboard tests and demos — built through the
real code paths, so what the dashboard shows is what real agents would produce.

* units: a realistic municipal tree (Socialförvaltningen / IFO / Ekonomiskt bistånd …),
  created with :meth:`Store.add_unit`;
* devices: one enrolment token per unit (:meth:`Store.create_token`), each device with
  its own Ed25519 key, enrolled with :meth:`Store.enroll`;
* reports: synthetic *facts* in the shape of ``docs/facts.md`` (Windows 11 ≈ 65 %,
  macOS ≈ 20 %, Linux ≈ 15 %; a few Windows 10 and old macOS), judged by the real
  :func:`auditagent.evaluate.evaluate` with the shipped casework policy, wrapped by
  :mod:`auditagent.report` in a signed DSSE envelope and stored by
  :meth:`Store.ingest` — verified like any report from the network (only the
  ``received_at`` is set to the report's own time, so history can be older than the
  collector's 7-day freshness window);
* history: a few reports per working day over the last ``days`` days; devices that
  fix things (encryption switched on, a private Dropbox removed), laggards whose
  updates wait, some devices gone stale (last report > 24 h ago) and a few enrolled
  that never reported.

Deterministic for a seed (keys, facts, times, report ids), except the device ids the
collector assigns.

    from server.simulate import FleetSpec, simulate_fleet
    summary = simulate_fleet(store, FleetSpec(devices=300, days=30, seed=7))
"""
from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from sqlalchemy import update

from auditagent.host import CommandResult
from auditagent.probes import not_applicable
from auditagent.probes.patches.section import patches_section
from auditagent.reasons import reason
from server.db import devices as devices_table
from server.store import Store

# (unit path, weight: share of the fleet)
UNITS: tuple[tuple[str, float], ...] = (
    ("Socialförvaltningen/IFO/Ekonomiskt bistånd", 9),
    ("Socialförvaltningen/IFO/Barn och unga/Utredning", 8),
    ("Socialförvaltningen/IFO/Barn och unga/Familjehem", 5),
    ("Socialförvaltningen/IFO/Vuxen/Missbruk", 6),
    ("Socialförvaltningen/IFO/Vuxen/Våld i nära relationer", 3),
    ("Socialförvaltningen/Äldreomsorg/Biståndshandläggning", 6),
    ("Socialförvaltningen/LSS/Handläggning", 4),
    ("Arbetsmarknadsförvaltningen/Jobbcenter/Norr", 6),
    ("Arbetsmarknadsförvaltningen/Jobbcenter/Söder", 6),
    ("Arbetsmarknadsförvaltningen/Vuxenutbildning", 4),
    ("Arbetsmarknadsförvaltningen/Integration och etablering", 3),
    ("Hälso- och sjukvård/Hemsjukvård/Team Öst", 7),
    ("Hälso- och sjukvård/Hemsjukvård/Team Väst", 7),
    ("Hälso- och sjukvård/Rehabilitering", 5),
    ("Hälso- och sjukvård/Elevhälsa", 4),
)

_PREFIX = {"Socialförvaltningen": "SOC", "Arbetsmarknadsförvaltningen": "AMF", "Hälso- och sjukvård": "HSV"}
APPROVED_TENANT = "00000000-0000-0000-0000-000000000000"  # the casework policy's example tenant
APPROVED_NEXTCLOUD = "https://moln.example.se"
AGENT_VERSION = "0.1.0"
OLD_AGENT_VERSIONS = ("0.0.9", "0.0.8")
MACOS_NEWEST = ("macOS Tahoe 26.1", "26.1")  # softwareupdate's title, version


@dataclass(frozen=True)
class FleetSpec:
    devices: int = 300
    days: int = 30
    reports_per_day: float = 2.5  # on a working day; weekends far fewer
    seed: int = 1
    stale_fraction: float = 0.07  # last report 2–10 days ago
    never_fraction: float = 0.03  # enrolled, never reported
    units: tuple[tuple[str, float], ...] = UNITS


@dataclass
class FleetSummary:
    units: list[str] = field(default_factory=list)
    devices: int = 0
    reports: int = 0
    never_reported: int = 0
    stale: int = 0
    ready_now: int = 0
    by_platform: dict[str, int] = field(default_factory=dict)
    device_ids: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ one device's life


@dataclass
class _Profile:
    platform: str
    os: dict[str, Any]
    hostname: str
    serial: str
    agent_version: str
    encrypted_from: float | None  # day index (0 = first day) from which the disk is encrypted; None: never
    update_every: float  # days between installed updates
    update_phase: float
    reboot_lag: bool  # often leaves a restart pending after updates
    private_cloud: str | None  # dropbox / google_drive personal account …
    private_cloud_until: float | None  # day it is removed (None: stays)
    firewall_off_from: float | None
    idle_seconds: int
    signature_stale: bool
    unknown_disk: bool
    last_day: float | None  # day of the last report (stale devices); None: reports until now
    never: bool
    upgrade_day: float | None  # Windows 23H2 → 24H2 feature update on this day


def _windows_os(rng: random.Random) -> dict[str, Any]:
    r = rng.random()
    if r < 0.06:  # Windows 10 22H2: unsupported
        return {"id": "windows", "name": "Microsoft Windows 10 Enterprise", "version": "10.0.19045",
                "build": f"19045.{rng.randint(4000, 5200)}", "release": "22H2", "edition": "Enterprise",
                "kernel": "10.0.19045", "arch": "AMD64"}
    if r < 0.20:  # 23H2, below the casework minimum until its feature update
        return {"id": "windows", "name": "Microsoft Windows 11 Enterprise", "version": "10.0.22631",
                "build": f"22631.{rng.randint(4000, 4900)}", "release": "23H2", "edition": "Enterprise",
                "kernel": "10.0.22631", "arch": "AMD64"}
    return {"id": "windows", "name": "Microsoft Windows 11 Enterprise", "version": "10.0.26100",
            "build": f"26100.{rng.randint(2000, 4400)}", "release": "24H2", "edition": "Enterprise",
            "kernel": "10.0.26100", "arch": "AMD64"}


def _macos_os(rng: random.Random) -> dict[str, Any]:
    r = rng.random()
    if r < 0.10:
        ver, build, rel = rng.choice([("13.6.9", "22G830", "Ventura"), ("14.7.1", "23H222", "Sonoma")])
    elif r < 0.45:
        ver, build, rel = "15.3.2", "24D81", "Sequoia"
    else:
        ver, build, rel = rng.choice([("15.6.1", "24G90", "Sequoia"), ("26.1", "25B78", "Tahoe")])
    return {"id": "macos", "name": "macOS", "version": ver, "build": build, "release": rel, "edition": None,
            "kernel": None, "arch": rng.choice(["arm64", "arm64", "x86_64"])}


def _linux_os(rng: random.Random) -> dict[str, Any]:
    choice = rng.choices([("ubuntu", "Ubuntu 24.04.3 LTS", "24.04", "noble"),
                          ("ubuntu", "Ubuntu 22.04.5 LTS", "22.04", "jammy"),
                          ("debian", "Debian GNU/Linux 12 (bookworm)", "12", "bookworm"),
                          ("fedora", "Fedora Linux 43 (Workstation Edition)", "43", None),
                          ("debian", "Debian GNU/Linux 11 (bullseye)", "11", "bullseye")],
                         weights=[45, 20, 20, 10, 5])[0]
    return {"id": choice[0], "name": choice[1], "version": choice[2], "build": None, "release": choice[3],
            "edition": None, "kernel": "6.8.0-51-generic", "arch": "x86_64"}


def _profile(rng: random.Random, n: int, unit: str, spec: FleetSpec) -> _Profile:
    platform = rng.choices(["windows", "macos", "linux"], weights=[65, 20, 15])[0]
    os_ = {"windows": _windows_os, "macos": _macos_os, "linux": _linux_os}[platform](rng)
    prefix = _PREFIX.get(unit.split("/")[0], "KOM")
    hostname = f"{prefix}-{'WLM'[['windows', 'linux', 'macos'].index(platform)]}{10000 + n:05d}"
    r = rng.random()
    encrypted_from: float | None = -1.0
    if r < 0.05:
        encrypted_from = None  # never encrypted
    elif r < 0.12:
        encrypted_from = rng.uniform(0, spec.days)  # switched on during the period
    update_every = rng.uniform(1.5, 8) if rng.random() > 0.12 else rng.uniform(16, 40)
    private = None
    until = None
    pr = rng.random()
    if pr < 0.07:
        private = "dropbox"
    elif pr < 0.10:
        private = "google_drive"
    elif pr < 0.12:
        private = "onedrive_personal"
    if private and rng.random() < 0.4:
        until = rng.uniform(0, spec.days)
    never = rng.random() < spec.never_fraction
    stale = (not never) and rng.random() < spec.stale_fraction
    return _Profile(
        platform=platform, os=os_, hostname=hostname, serial=f"SN{rng.getrandbits(40):010X}",
        agent_version=rng.choice(OLD_AGENT_VERSIONS) if rng.random() < 0.08 else AGENT_VERSION,
        encrypted_from=encrypted_from, update_every=update_every, update_phase=rng.uniform(0, update_every),
        reboot_lag=rng.random() < 0.08, private_cloud=private, private_cloud_until=until,
        firewall_off_from=rng.uniform(0, spec.days) if rng.random() < 0.03 else None,
        idle_seconds=rng.choice([300] * 24 + [180, 240, 600, 900]) if platform != "linux" else
        rng.choice([300] * 16 + [0, 900]),
        signature_stale=rng.random() < 0.03, unknown_disk=platform == "linux" and rng.random() < 0.04,
        last_day=(spec.days - rng.uniform(1.2, 10)) if stale else None, never=never,
        upgrade_day=rng.uniform(0, spec.days) if os_.get("release") == "23H2" and rng.random() < 0.6 else None)


def _offered_upgrades(os_: dict[str, Any]) -> list[str]:
    """A Mac below the newest major release is offered it (softwareupdate's title and version,
    as the macOS probe keeps them): a choice, not a pending update."""
    if os_["id"] != "macos" or int(os_["version"].split(".")[0]) >= int(MACOS_NEWEST[1].split(".")[0]):
        return []
    return [MACOS_NEWEST[0]]


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).replace(microsecond=0).isoformat()


def synth_facts(p: _Profile, day: float, t: dt.datetime, rng: random.Random) -> dict[str, Any]:
    """Facts for profile ``p`` at time ``t`` (``day`` = days since the start of the history)."""
    platform = p.platform
    os_ = dict(p.os)
    if p.upgrade_day is not None and day >= p.upgrade_day:
        os_.update(version="10.0.26100", build="26100.4061", release="24H2", kernel="10.0.26100")
    encrypted = p.encrypted_from is not None and day >= p.encrypted_from
    if platform == "windows":
        volumes = [{"mount": "C:", "device": None, "role": "system", "fixed": True, "encrypted": encrypted,
                    "method": "bitlocker" if encrypted else None,
                    "state": "encrypted" if encrypted else "decrypted", "percent": 100.0 if encrypted else 0.0,
                    "stack": [], "detail": {"protection": "on" if encrypted else "off",
                                            "source": "Get-BitLockerVolume"}}]
    elif platform == "macos":
        volumes = [{"mount": "/System/Volumes/Data", "device": "disk3s5", "role": "system", "fixed": True,
                    "encrypted": encrypted, "method": "filevault" if encrypted else None,
                    "state": "encrypted" if encrypted else "decrypted", "percent": None, "stack": [],
                    "detail": {"name": "Data", "container": "disk3"}}]
    else:
        volumes = [{"mount": "/", "device": "/dev/mapper/vg-root", "role": "system", "fixed": True,
                    "encrypted": None if p.unknown_disk else encrypted,
                    "method": "luks2" if encrypted else None, "state": "encrypted" if encrypted else None,
                    "percent": None,
                    "stack": ["dm-1 (lvm)", "dm-0 (crypt LUKS2)", "nvme0n1p3"] if encrypted else ["nvme0n1p3"],
                    "detail": {}},
                   {"mount": "[SWAP]", "device": "/dev/zram0", "role": "swap", "fixed": True, "encrypted": True,
                    "method": "ram", "state": None, "percent": None, "stack": ["zram0"], "detail": {}}]
    disk = {"status": "ok", "reasons": [], "volumes": volumes}
    if platform == "linux" and p.unknown_disk:
        # What the Linux probe says in a sandbox without /sys/class/block where lsblk is refused.
        disk = {"status": "unknown", "volumes": [], "reasons": [
            reason("file.unreadable", "/sys/class/block", "lsblk used instead"),
            CommandResult(argv=("lsblk",), returncode=None, error="permission").why_not()]}
    # Updates: installed every `update_every` days; security updates wait in between.
    since = (day - p.update_phase) % p.update_every
    last_update = t - dt.timedelta(days=since)
    pending_sec = 0 if since < 3 else int(1 + since // 4)
    patches = patches_section(
        manager={"windows": "windows_update", "macos": "softwareupdate"}.get(
            platform, "dnf" if os_["id"] == "fedora" else "apt"),
        last_update=_iso(last_update), pending=pending_sec + (1 if since > 1 else 0), pending_security=pending_sec,
        oldest_days=round(max(since - 2, 0.0), 1) if pending_sec else None, names=[],
        reboot=bool(p.reboot_lag and since < 2), reasons=[], offered_upgrades=_offered_upgrades(os_))
    clients: list[dict[str, Any]] = []
    if platform == "windows":
        clients.append({"name": "onedrive", "installed": True, "running": True,
                        "accounts": [{"kind": "business", "tenant": APPROVED_TENANT, "server": None,
                                      "email_domain": "kommun.example.se"}],
                        "evidence": ["process:OneDrive.exe"]})
    elif platform == "linux" and rng.random() < 0.9:
        clients.append({"name": "nextcloud", "installed": True, "running": True,
                        "accounts": [{"kind": None, "tenant": None, "server": APPROVED_NEXTCLOUD,
                                      "email_domain": None}],
                        "evidence": ["file:~/.config/Nextcloud/nextcloud.cfg"]})
    if p.private_cloud and (p.private_cloud_until is None or day < p.private_cloud_until):
        if p.private_cloud == "onedrive_personal":
            clients.append({"name": "onedrive", "installed": True, "running": True,
                            "accounts": [{"kind": "personal", "tenant": None, "server": None,
                                          "email_domain": "outlook.com"}], "evidence": ["process:OneDrive.exe"]})
        else:
            clients.append({"name": p.private_cloud, "installed": True, "running": rng.random() < 0.7,
                            "accounts": [{"kind": "personal", "tenant": None, "server": None,
                                          "email_domain": "gmail.com"}],
                            "evidence": [f"process:{'Dropbox' if p.private_cloud == 'dropbox' else 'Google Drive'}"]})
    fw_on = not (p.firewall_off_from is not None and day >= p.firewall_off_from)
    if platform == "windows":
        firewall = {"status": "ok", "reasons": [], "enabled": True if fw_on else False, "backend": "windows",
                    "default_inbound": "drop",
                    "profiles": {"domain": True, "private": True, "public": fw_on}, "rules": None}
    elif platform == "macos":
        firewall = {"status": "ok", "reasons": [], "enabled": fw_on, "backend": "macos_alf", "default_inbound": None,
                    "profiles": None, "rules": 6}
    else:
        firewall = {"status": "ok", "reasons": [], "enabled": fw_on, "backend": "nftables",
                    "default_inbound": "drop" if fw_on else "accept", "profiles": None, "rules": 12 if fw_on else 0}
    screen = {"status": "ok", "reasons": [], "enabled": p.idle_seconds > 0, "idle_seconds": p.idle_seconds or None,
              "desktop": {"windows": "windows", "macos": "macos"}.get(platform, "gnome")}
    if platform == "windows":
        anti = {"status": "ok", "reasons": [], "product": "Microsoft Defender", "realtime": True,
                "signature_age_days": round(rng.uniform(3.5, 9) if p.signature_stale else rng.uniform(0.1, 1.5), 2)}
    else:
        anti = not_applicable("antimalware")
    return {"collected_at": _iso(t), "platform": platform, "os": {"status": "ok", "reasons": [], **os_},
            "disk": disk, "patches": patches, "cloud": {"status": "ok", "reasons": [], "clients": clients},
            "firewall": firewall, "screen_lock": screen, "antimalware": anti}


def _report_times(p: _Profile, start: dt.datetime, spec: FleetSpec, rng: random.Random,
                  now: dt.datetime) -> list[dt.datetime]:
    """A few reports per working day (07–17 local ≈ 06–16 UTC), rare ones at weekends."""
    times: list[dt.datetime] = []
    for d in range(spec.days + 1):
        day0 = (start + dt.timedelta(days=d)).replace(hour=0, minute=0, second=0, microsecond=0)
        weekend = day0.weekday() >= 5
        mean = spec.reports_per_day * (0.1 if weekend else 1.0)
        n = int(mean) + (1 if rng.random() < mean - int(mean) else 0)
        for _ in range(n):
            t = day0 + dt.timedelta(hours=rng.uniform(6, 16))
            if t < start or t > now - dt.timedelta(minutes=2):
                continue
            if p.last_day is not None and (t - start).total_seconds() / 86400 > p.last_day:
                continue
            times.append(t)
    times.sort()
    if not times and p.last_day is None:  # everyone still in use has a recent report
        times.append(now - dt.timedelta(hours=rng.uniform(0.5, 6)))
    return times


# ------------------------------------------------------------------ the fleet


def simulate_fleet(store: Store, spec: FleetSpec = FleetSpec(), *, now: dt.datetime | None = None,
                   progress: Callable[[str], None] | None = None) -> FleetSummary:
    """Create the units, enrol ``spec.devices`` devices and ingest their report history."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from auditagent import report as wire
    from auditagent.evaluate import evaluate
    from auditagent.policy import default_policy_path, load_policy

    rng = random.Random(spec.seed)
    now = now or dt.datetime.now(dt.timezone.utc)
    start = now - dt.timedelta(days=spec.days)
    policy = load_policy(default_policy_path())
    pol = {"id": policy.id, "version": policy.version, "sha256": policy.digest}
    summary = FleetSummary()
    paths = [u for u, _ in spec.units]
    weights = [w for _, w in spec.units]
    tokens: dict[str, str] = {}
    for path in paths:
        store.add_unit(path)
        summary.units.append(path)
    # Every unit gets devices; the rest by weight.
    assignment = list(paths[:spec.devices]) + rng.choices(paths, weights=weights, k=max(spec.devices - len(paths), 0))
    counts = {u: assignment.count(u) for u in paths}
    for path in paths:
        if counts[path]:
            tokens[path], _ = store.create_token(path, expires_in=dt.timedelta(hours=1), uses=counts[path],
                                                 note="simulated fleet")
    for n, unit in enumerate(assignment):
        p = _profile(rng, n, unit, spec)
        key = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
        enrolled = store.enroll(token=tokens[unit], public_key_pem=wire.public_key_pem(key.public_key()),
                                device={"hostname": p.hostname, "serial": p.serial, "os": p.os["name"],
                                        "platform": p.platform, "agent_version": p.agent_version})
        device_id = enrolled["device_id"]
        summary.device_ids.append(device_id)
        summary.devices += 1
        summary.by_platform[p.platform] = summary.by_platform.get(p.platform, 0) + 1
        times = [] if p.never else _report_times(p, start, spec, rng, now)
        # The enrolment happened before the first report.
        first = times[0] if times else now - dt.timedelta(hours=rng.uniform(1, 48))
        with store.engine.begin() as conn:
            conn.execute(update(devices_table).where(devices_table.c.id == device_id)
                         .values(enrolled_at=first - dt.timedelta(minutes=rng.uniform(5, 600))))
        if p.never:
            summary.never_reported += 1
            continue
        device = {"id": device_id, "hostname": p.hostname, "serial": p.serial, "os": p.os["name"],
                  "platform": p.platform}
        verdict = None
        for seq, t in enumerate(times, start=1):
            day = (t - start).total_seconds() / 86400
            facts = synth_facts(p, day, t, rng)
            evaluation = evaluate(policy, facts)
            predicate = wire.build_predicate(
                report_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)), device=device,
                agent_version=p.agent_version, policy=pol, facts=facts,
                results=evaluation.to_dict(with_remediation=False)["results"], verdict=evaluation.verdict,
                sequence=seq, generated_at=facts["collected_at"].replace("+00:00", "Z"),
                spool={"evicted": 0, "pending": 0})
            statement = wire.build_statement(device_id=device_id, public_key=key.public_key(), predicate=predicate)
            body = wire.envelope_bytes(wire.sign_envelope(statement, key))
            store.ingest(body, received_at=t + dt.timedelta(seconds=rng.uniform(0.2, 30)))
            summary.reports += 1
            verdict = evaluation.verdict
        if p.last_day is not None:
            summary.stale += 1
        if verdict == "ready":
            summary.ready_now += 1
        if progress and (n + 1) % 50 == 0:
            progress(f"simulated {n + 1}/{spec.devices} devices, {summary.reports} reports")
    return summary


def add_device(store: Store, unit_path: str, hostname: str, *, platform: str = "windows", reports: int = 3,
               seed: int = 0, now: dt.datetime | None = None, **traits: Any) -> str:
    """Enrol one device in ``unit_path`` (created if missing) and store ``reports`` signed
    reports over the last hours; a compliant laptop unless ``traits`` say otherwise
    (``idle_seconds=900``, ``encrypted_from=None``, ``private_cloud="dropbox"`` …, the
    fields of the simulator's device profile). Returns the device id."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from auditagent import report as wire
    from auditagent.evaluate import evaluate
    from auditagent.policy import default_policy_path, load_policy

    rng = random.Random(seed)
    now = now or dt.datetime.now(dt.timezone.utc)
    store.add_unit(unit_path)
    os_ = {"windows": {"id": "windows", "name": "Microsoft Windows 11 Enterprise", "version": "10.0.26100",
                       "build": "26100.4061", "release": "24H2", "edition": "Enterprise", "kernel": "10.0.26100",
                       "arch": "AMD64"},
           "macos": {"id": "macos", "name": "macOS", "version": "15.6.1", "build": "24G90", "release": "Sequoia",
                     "edition": None, "kernel": None, "arch": "arm64"},
           "linux": {"id": "ubuntu", "name": "Ubuntu 24.04.3 LTS", "version": "24.04", "build": None,
                     "release": "noble", "edition": None, "kernel": "6.8.0-51-generic", "arch": "x86_64"}}[platform]
    base = dict(platform=platform, os=os_, hostname=hostname, serial=f"SN{rng.getrandbits(40):010X}",
                agent_version=AGENT_VERSION, encrypted_from=-1.0, update_every=3.0, update_phase=0.0,
                reboot_lag=False, private_cloud=None, private_cloud_until=None, firewall_off_from=None,
                idle_seconds=300, signature_stale=False, unknown_disk=False, last_day=None, never=False,
                upgrade_day=None)
    base.update(traits)
    p = _Profile(**base)
    token, _ = store.create_token(unit_path, expires_in=dt.timedelta(minutes=10), uses=1, note="simulated device")
    key = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
    device_id = store.enroll(token=token, public_key_pem=wire.public_key_pem(key.public_key()),
                             device={"hostname": hostname, "serial": p.serial, "os": os_["name"],
                                     "platform": platform, "agent_version": p.agent_version})["device_id"]
    with store.engine.begin() as conn:  # enrolled before its first report
        conn.execute(update(devices_table).where(devices_table.c.id == device_id)
                     .values(enrolled_at=now - dt.timedelta(hours=reports * 2 + 1)))
    policy = load_policy(default_policy_path())
    pol = {"id": policy.id, "version": policy.version, "sha256": policy.digest}
    device = {"id": device_id, "hostname": hostname, "serial": p.serial, "os": os_["name"], "platform": platform}
    for seq in range(1, reports + 1):
        t = now - dt.timedelta(hours=(reports - seq) * 2 + 0.5)
        facts = synth_facts(p, 1.0, t, rng)
        evaluation = evaluate(policy, facts)
        predicate = wire.build_predicate(
            device=device, agent_version=p.agent_version, policy=pol, facts=facts,
            results=evaluation.to_dict(with_remediation=False)["results"], verdict=evaluation.verdict,
            sequence=seq, generated_at=facts["collected_at"].replace("+00:00", "Z"))
        statement = wire.build_statement(device_id=device_id, public_key=key.public_key(), predicate=predicate)
        store.ingest(wire.envelope_bytes(wire.sign_envelope(statement, key)), received_at=t + dt.timedelta(seconds=2))
    return device_id


def main(argv: list[str] | None = None) -> int:
    """``python -m server.simulate --db URL [--devices N] [--days D] [--seed S]``"""
    import argparse
    import time

    from server import migrate
    from server.db import make_engine, resolve_db_url
    from server.logs import configure_logging

    ap = argparse.ArgumentParser(prog="python -m server.simulate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default=None)
    ap.add_argument("--devices", type=int, default=300)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--reports-per-day", type=float, default=2.5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    configure_logging("warning")
    engine = make_engine(resolve_db_url(args.db), pool_size=2, max_overflow=2)
    migrate.upgrade(engine)
    t0 = time.perf_counter()
    s = simulate_fleet(Store(engine), FleetSpec(devices=args.devices, days=args.days,
                                                reports_per_day=args.reports_per_day, seed=args.seed),
                       progress=print)
    print(f"{s.devices} devices in {len(s.units)} units, {s.reports} reports "
          f"({s.ready_now} ready now, {s.stale} stale, {s.never_reported} never reported; {s.by_platform}) "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
