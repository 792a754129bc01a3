"""Linux ``patches`` section for apt (Debian, Ubuntu, Mint …), dnf/yum (Fedora, RHEL
family), zypper (openSUSE, SLES) and pacman (Arch).

Package-manager queries are slow, so they go through ctx.cache (the facts carry
when the query ran): reused until the package manager's inputs change (lists, installed
packages, sources; auditagent/package_inputs.py), or for CACHE_TTL where those cannot be read. How long a security update has
been waiting is this agent's own observation: first-seen times are kept across runs.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Callable

from auditagent import package_inputs
from auditagent.probes import ProbeContext
from auditagent.probes.os_info.linux import read_os_release
from auditagent.probes.patches.linux_parsers import (nevra_name, parse_apt_get_simulate, parse_dnf_advisory_json,
                                                      parse_dnf_check_update,
                                                      parse_dnf_updateinfo, parse_dpkg_log_last,
                                                      parse_needs_restarting, parse_pacman_log_last,
                                                      parse_pacman_qu, parse_rpm_install_times)
from auditagent.probes.patches.zypper_parsers import (parse_zypper_list_patches, parse_zypper_list_updates,
                                                       parse_zypper_needs_rebooting)
from auditagent.reasons import reason

C_ENV = {"LC_ALL": "C", "LANG": "C", "LANGUAGE": ""}
CACHE_TTL = 6 * 3600
FIRST_SEEN_KEY = "patches-security-first-seen"
NAMES_CAP = 50


class QueryFailed(Exception):
    """A package-manager query failed: raised inside the cache's compute so failures are never cached."""


def _run_ok(ctx: ProbeContext, argv: list[str], ok_codes: tuple[int, ...] = (0,), timeout: float = 120) -> str:
    res = ctx.host.run(argv, timeout=timeout, env=C_ENV)
    if res.error or res.returncode not in ok_codes:
        raise QueryFailed(res.why_not())
    return res.text()


# --------------------------------------------------------------------------- local time of logs


def local_zone_name(ctx: ProbeContext) -> str | None:
    """The machine's zone name (dpkg.log is written in local time): /etc/timezone, then the
    /etc/localtime link; None when neither says."""
    try:
        return ctx.host.read_text("/etc/timezone").strip() or None
    except OSError:
        try:
            target = ctx.host.readlink("/etc/localtime")
            return target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else None
        except OSError:
            return None


def local_zone(name: str | None) -> dt.tzinfo:
    """The zone of that name; UTC for none or one this machine does not know."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # only when dpkg.log is read again

    try:
        return ZoneInfo(name) if name else dt.timezone.utc
    except (ZoneInfoNotFoundError, ValueError):
        return dt.timezone.utc


# --------------------------------------------------------------------------- apt


# -s: simulate (no root, no lock); dist-upgrade also counts updates needing new packages.
APT_QUERY = ("apt-get", "-s", "-o", "Debug::NoLocking=1", "dist-upgrade")


def _apt_pending() -> Callable[[ProbeContext], dict[str, Any]]:
    def query(ctx: ProbeContext) -> dict[str, Any]:
        text = _run_ok(ctx, list(APT_QUERY))
        pkgs = parse_apt_get_simulate(text)
        return {"pending": len(pkgs), "security": sorted({p["name"] for p in pkgs if p["security"]})}
    return query


def _dpkg_last_update(ctx: ProbeContext, reasons: list[str]) -> str | None:
    """The newest install/upgrade, read from the dpkg logs again only when they (or dpkg's
    status, or the zone they are written in) changed: a laptop's dpkg.log is hundreds of KB."""
    name = local_zone_name(ctx)
    inputs = package_inputs.fingerprint(ctx.host, "dpkg-log")
    if inputs is None:
        return _dpkg_last_from_logs(ctx, name, reasons)

    def compute() -> dict[str, Any]:
        found: list[str] = []
        return {"last": _dpkg_last_from_logs(ctx, name, found), "reasons": found}

    value, _ = ctx.cache.get_or_compute("patches-dpkg-last-update", CACHE_TTL, compute,
                                        now=ctx.host.now().timestamp(), inputs=f"{inputs} {name}")
    reasons.extend(value["reasons"])
    return value["last"]


def _dpkg_last_from_logs(ctx: ProbeContext, zone_name: str | None, reasons: list[str]) -> str | None:
    zone = local_zone(zone_name)
    for path in package_inputs.DPKG_LOGS:  # newest file first: the first with an install line has the newest one
        try:
            data = ctx.host.read_bytes(path)
        except OSError:
            continue
        if path.endswith(".gz"):
            import gzip  # rotated logs only

            try:
                data = gzip.decompress(data)
            except (OSError, EOFError):
                continue
        last = parse_dpkg_log_last(data.decode("utf-8", errors="replace"))
        if last is not None:
            return last.replace(tzinfo=zone).astimezone(dt.timezone.utc).isoformat(timespec="seconds")
    try:  # logs rotated away: dpkg's status database changes with every install
        mtime = ctx.host.stat_mtime("/var/lib/dpkg/status")
        reasons.append(reason("patches.dpkg_status_time"))
        return dt.datetime.fromtimestamp(mtime, dt.timezone.utc).isoformat(timespec="seconds")
    except OSError:
        reasons.append(reason("file.missing", "/var/log/dpkg.log"))
        return None


def _kernel_reboot_needed(ctx: ProbeContext) -> bool | None:
    """A newer kernel is installed than the one running (the modules tree says which)."""
    try:
        running = ctx.host.read_text("/proc/sys/kernel/osrelease").strip()
        installed = ctx.host.listdir("/lib/modules")
    except OSError:
        return None
    if running not in installed:
        return None  # a kernel not managed by the package manager (VM, container)

    def key(v: str) -> list:
        return [(0, int(x), "") if x.isdigit() else (1, 0, x) for x in re.split(r"[.-]", v)]
    return max(installed, key=key) != running


def _apt_reboot(ctx: ProbeContext, reasons: list[str]) -> bool | None:
    for path in ("/var/run/reboot-required", "/run/reboot-required"):
        if ctx.host.exists(path):
            return True
    kernel = _kernel_reboot_needed(ctx)
    if kernel is not None:
        return kernel
    # Without update-notifier nothing writes the flag file, so its absence proves nothing.
    if ctx.host.exists("/usr/share/update-notifier/notify-reboot-required"):
        return False
    reasons.append(reason("patches.reboot_unknowable"))
    return None


# --------------------------------------------------------------------------- dnf


def _dnf_pending(tool: str) -> Callable[[ProbeContext], dict[str, Any]]:
    def query(ctx: ProbeContext) -> dict[str, Any]:
        text = _run_ok(ctx, [tool, "-q", "check-update"], ok_codes=(0, 100))  # 100 = updates exist
        pkgs = parse_dnf_check_update(text)
        # updateinfo lists advisories that apply to installed packages: each is pending.
        security = sorted({nevra_name(a["package"]) for a in _dnf_security_advisories(ctx, tool)})
        return {"pending": len(pkgs), "security": security}
    return query


def _dnf_security_advisories(ctx: ProbeContext, tool: str) -> list[dict[str, str]]:
    """dnf 5 answers ``--json`` (structured); dnf 4 and yum refuse the option, and then
    their text rows are read."""
    if tool == "dnf":
        res = ctx.host.run([tool, "-q", "updateinfo", "list", "--security", "--json"], timeout=120, env=C_ENV)
        if res.ok and res.text().lstrip().startswith("["):
            try:
                return parse_dnf_advisory_json(res.text())
            except ValueError as exc:
                raise QueryFailed(str(exc)) from exc
    return parse_dnf_updateinfo(_run_ok(ctx, [tool, "-q", "updateinfo", "list", "--security"]))


def _rpm_last_update(ctx: ProbeContext, reasons: list[str]) -> str | None:
    res = ctx.host.run(["rpm", "-qa", "--qf", "%{INSTALLTIME}\\n"], timeout=60, env=C_ENV)
    newest = parse_rpm_install_times(res.text()) if res.ok else None
    if newest is None:
        reasons.append(res.why_not())
        return None
    return dt.datetime.fromtimestamp(newest, dt.timezone.utc).isoformat(timespec="seconds")


def _dnf_reboot(ctx: ProbeContext, tool: str, reasons: list[str]) -> bool | None:
    res = ctx.host.run([tool, "needs-restarting", "-r"], timeout=60, env=C_ENV)
    if res.error:
        reasons.append(res.why_not())
        return None
    value = parse_needs_restarting(res.text(), res.returncode)
    if value is None:
        reasons.append(res.why_not())
    return value


# --------------------------------------------------------------------------- zypper

# --no-refresh: the agent reads what the system's own refresh fetched (as with apt's lists);
# it neither needs the network nor takes the repositories' lock for long.
ZYPPER = ["zypper", "--xmlout", "--non-interactive", "--no-refresh"]


def _zypper_xml(ctx: ProbeContext, args: list[str], parse: Callable[[str], list]) -> list:
    # 100/101 (ZYPPER_EXIT_INF_UPDATE_NEEDED / _SEC_UPDATE_NEEDED) are information, not
    # failure: newer zyppers answer list-patches with them as patch-check does.
    text = _run_ok(ctx, ZYPPER + args, ok_codes=(0, 100, 101))
    try:
        return parse(text)
    except ValueError as exc:
        raise QueryFailed(str(exc)) from exc


def _zypper_has_updateinfo(ctx: ProbeContext) -> bool | None:
    """Whether any repository carries patch metadata: libzypp keeps each repository's raw
    metadata in /var/cache/zypp/raw/<alias>/repodata, and patches come from its
    ``*updateinfo.xml*``. None when the cache cannot be read."""
    root = "/var/cache/zypp/raw"
    try:
        aliases = ctx.host.listdir(root)
    except OSError:
        return None
    for alias in aliases:
        try:
            if any("updateinfo" in name for name in ctx.host.listdir(f"{root}/{alias}/repodata")):
                return True
        except OSError:
            continue
    return False


# os-release IDs of openSUSE's rolling distributions: they are updated with ``zypper dup``
# (MicroOS through transactional-update, which runs dup), never ``zypper update``.
# list-updates lists what ``update`` would do: a newer version of an installed package
# from the same vendor. What dup adds (new packages a renamed library needs, vendor
# changes, removals, downgrades to the snapshot) it does not count, and dup --dry-run
# needs root and the zypp lock, which the agent's read-only unit neither has nor takes.
ROLLING_IDS = frozenset({"opensuse-tumbleweed", "opensuse-slowroll", "opensuse-microos"})


def zypper_rolling_release(ctx: ProbeContext) -> str | None:
    """The os-release ID when this is one of openSUSE's rolling distributions. Tumbleweed
    before its own ID (2017) said ``ID=opensuse``; its CPE_NAME names it."""
    release = read_os_release(ctx.host) or {}
    ident = release.get("ID", "")
    if ident in ROLLING_IDS:
        return ident
    if ident == "opensuse" and release.get("CPE_NAME", "").startswith("cpe:/o:opensuse:tumbleweed:"):
        return "opensuse-tumbleweed"
    return None


def _zypper_pending(ctx: ProbeContext) -> dict[str, Any]:
    # A rolling release: no count rather than an undercount (the probe says why).
    pkgs = None if zypper_rolling_release(ctx) else _zypper_xml(ctx, ["list-updates"], parse_zypper_list_updates)
    # The applicable (needed) patches only: --all would list every patch ever published for
    # the product, descriptions included (megabytes on SLES).
    patches = _zypper_xml(ctx, ["list-patches"], parse_zypper_list_patches)
    security = sorted({p["name"] for p in patches if p["category"] == "security" and p["pending"]})
    if not patches and _zypper_has_updateinfo(ctx) is not True:
        # No patch needed, but also no patch metadata seen (Tumbleweed's main repository, a
        # third-party repository only, or an unreadable cache): "0 security updates" would be a guess.
        return {"pending": None if pkgs is None else len(pkgs), "security": None}
    return {"pending": None if pkgs is None else len(pkgs), "security": security}


def _zypper_reboot(ctx: ProbeContext, reasons: list[str]) -> bool | None:
    # libzypp writes this flag (on /run, so a reboot clears it) when a package it installed
    # asks for a reboot; ``zypper needs-rebooting`` answers from the same flag. Whether this
    # zypper has that command is asked once per zypper installed (the rpm database is among
    # the inputs), not every hour: with it, no flag means no reboot awaited.
    for path in ("/run/reboot-needed", "/var/run/reboot-needed"):
        if ctx.host.exists(path):
            return True

    def knows_flag() -> bool:
        res = ctx.host.run(["zypper", "--non-interactive", "needs-rebooting"], timeout=60, env=C_ENV)
        if res.error:  # not run at all (timeout, not found): ask again next time
            raise QueryFailed(res.why_not())
        return parse_zypper_needs_rebooting(res.returncode) is not None
    try:
        known, _ = ctx.cache.get_or_compute("patches-zypper-needs-rebooting", CACHE_TTL, knows_flag,
                                            now=ctx.host.now().timestamp(),
                                            inputs=package_inputs.fingerprint(ctx.host, "zypper"))
    except QueryFailed:
        known = False
    if known:
        return False
    value = _kernel_reboot_needed(ctx)  # an older zypper, without the flag
    if value is None:
        reasons.append(reason("patches.reboot_unknowable"))
    return value


# --------------------------------------------------------------------------- pacman


def _pacman_pending(ctx: ProbeContext) -> dict[str, Any]:
    res = ctx.host.run(["pacman", "-Qu"], timeout=60, env=C_ENV)
    if res.error or res.returncode not in (0, 1):  # 1 = nothing to upgrade
        raise QueryFailed(res.why_not())
    return {"pending": len(parse_pacman_qu(res.text())), "security": None}


def _pacman_last_update(ctx: ProbeContext, reasons: list[str]) -> str | None:
    try:
        last = parse_pacman_log_last(ctx.host.read_text("/var/log/pacman.log"))
    except OSError:
        last = None
    if last is None:
        reasons.append(reason("file.missing", "/var/log/pacman.log"))
        return None
    return last.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- glue


def _oldest_days(ctx: ProbeContext, names: list[str]) -> float | None:
    """Days the longest-waiting pending security update has been seen by this agent."""
    now = ctx.host.now()
    first_seen = ctx.cache.load(FIRST_SEEN_KEY) or {}
    if not isinstance(first_seen, dict):
        first_seen = {}
    current = {name: first_seen.get(name) or now.isoformat(timespec="seconds") for name in names}
    ctx.cache.store(FIRST_SEEN_KEY, current)
    if not current:
        return 0.0
    oldest = min(dt.datetime.fromisoformat(v) for v in current.values())
    return round((now - oldest).total_seconds() / 86400, 2)


def detect_manager(ctx: ProbeContext) -> str | None:
    # zypper before dnf: openSUSE can carry dnf as an extra, Fedora and RHEL never carry zypper.
    for tool, manager in (("apt-get", "apt"), ("zypper", "zypper"), ("dnf", "dnf"), ("yum", "yum"),
                          ("pacman", "pacman")):
        if ctx.host.which(tool):
            return manager
    return None


def probe(ctx: ProbeContext) -> dict[str, Any]:
    manager = detect_manager(ctx)
    base: dict[str, Any] = {"manager": None, "last_update": None, "pending": None, "pending_security": None,
                            "pending_security_oldest_days": None, "pending_names": [], "reboot_required": None,
                            "offered_upgrades": [],
                            "cached_at": None, "cache_ttl_seconds": None}
    if manager is None:
        return {"status": "unknown", "reasons": [reason("patches.no_manager")], **base}
    reasons: list[str] = []
    if manager == "apt":
        query, last, reboot = _apt_pending(), _dpkg_last_update, _apt_reboot
    elif manager in ("dnf", "yum"):
        query, last = _dnf_pending(manager), _rpm_last_update
        reboot = lambda c, r: _dnf_reboot(c, manager, r)  # noqa: E731
    elif manager == "zypper":
        query, last, reboot = _zypper_pending, _rpm_last_update, _zypper_reboot
    else:
        query, last, reboot = _pacman_pending, _pacman_last_update, lambda c, r: _kernel_reboot_needed(c)
    facts = dict(base, manager="dnf" if manager == "yum" else manager)
    try:
        value, meta = ctx.cache.get_or_compute(f"patches-{manager}", CACHE_TTL, lambda: query(ctx),
                                               now=ctx.host.now().timestamp(),
                                               inputs=package_inputs.fingerprint(ctx.host, manager))
        facts.update(pending=value["pending"], cached_at=meta["cached_at"], cache_ttl_seconds=meta["cache_ttl_seconds"])
        if value["pending"] is None and manager == "zypper":
            reasons.append(reason("patches.rolling_release", zypper_rolling_release(ctx) or "zypper"))
        security = value["security"]
        if security is not None:
            facts["pending_security"] = len(security)
            facts["pending_names"] = security[:NAMES_CAP]
            facts["pending_security_oldest_days"] = _oldest_days(ctx, security)
        else:
            reasons.append(reason("patches.no_security_info", manager))
    except QueryFailed as exc:
        reasons.append(reason("tool.failed", manager, exc))
    facts["last_update"] = last(ctx, reasons)
    facts["reboot_required"] = reboot(ctx, reasons)
    seen = [facts[k] is not None for k in ("pending", "pending_security", "last_update", "reboot_required")]
    facts["status"] = "ok" if all(seen) else "partial" if any(seen) else "unknown"
    facts["reasons"] = reasons
    return {"status": facts.pop("status"), "reasons": facts.pop("reasons"), **facts}
