"""What a package manager's answer to "which updates are pending?" depends on: its
package lists, its database of installed packages and its sources configuration. When
none of them has changed since the last query, the answer has not either, so the
patches probe reuses it instead of running the slow query (``apt-get -s dist-upgrade``
costs more CPU than the rest of the hourly run together). Read through the Host seam:
the modification times of those paths and of the entries directly inside them."""
from __future__ import annotations

import hashlib
from typing import Any

from auditagent.probes.os_info.linux import OS_RELEASE_PATHS

# dpkg's logs, newest first (logrotate keeps a year, monthly): the newest install's time.
DPKG_LOGS = ("/var/log/dpkg.log", "/var/log/dpkg.log.1") + tuple(f"/var/log/dpkg.log.{i}.gz" for i in range(2, 13))

INPUTS: dict[str, tuple[str, ...]] = {
    # apt: the lists (not lists/partial, where `apt update` downloads before it moves a
    # changed list in: a refresh that found nothing new must not cost a query), dpkg's
    # database and architectures, the auto-installed marks, sources, pins and settings.
    "apt": ("/var/lib/apt/lists", "/var/lib/dpkg/status", "/var/lib/dpkg/arch", "/var/lib/apt/extended_states",
            "/etc/apt/sources.list", "/etc/apt/sources.list.d", "/etc/apt/preferences", "/etc/apt/preferences.d",
            "/etc/apt/apt.conf", "/etc/apt/apt.conf.d"),
    # dnf 5 (Fedora 41 on) keeps its metadata in /var/cache/libdnf5 and its state in
    # /usr/lib/sysimage/libdnf5; without them a dnf 5 refresh would not renew the answer.
    "dnf": ("/var/cache/dnf", "/var/cache/libdnf5", "/var/lib/dnf", "/usr/lib/sysimage/libdnf5", "/var/lib/rpm",
            "/usr/lib/sysimage/rpm", "/etc/yum.repos.d", "/etc/dnf/dnf.conf", "/etc/dnf/libdnf5.conf.d"),
    "yum": ("/var/cache/yum", "/var/lib/yum", "/var/lib/rpm", "/etc/yum.repos.d", "/etc/yum.conf"),
    # zypper: the solver's per-repository caches (rewritten on refresh), the raw metadata,
    # the rpm database, repositories, locks and configuration; and os-release, which decides
    # whether list-updates is asked at all (a rolling release is not counted that way).
    "zypper": ("/var/cache/zypp/solv", "/var/cache/zypp/raw", "/var/lib/rpm", "/usr/lib/sysimage/rpm",
               "/etc/zypp/repos.d", "/etc/zypp/services.d", "/etc/zypp/locks", "/etc/zypp/zypp.conf")
              + OS_RELEASE_PATHS,
    # The newest install's time (patches' last_update): the logs, and dpkg's status (read
    # when the logs were rotated away).
    "dpkg-log": DPKG_LOGS + ("/var/lib/dpkg/status",),
    "pacman": ("/var/lib/pacman/sync", "/var/lib/pacman/local", "/etc/pacman.conf", "/etc/pacman.d"),
}


# Entries of an input folder that are not inputs: apt's download folder and lock file,
# touched by every `apt update` whether or not a list changed.
NOT_INPUTS: dict[str, frozenset[str]] = {"/var/lib/apt/lists": frozenset({"partial", "lock"})}


def _mtime(host: Any, path: str) -> str:
    try:
        return repr(host.stat_mtime(path))
    except OSError:
        return "-"


def fingerprint(host: Any, manager: str) -> str | None:
    """A digest of the modification times of ``manager``'s inputs (each path, and each
    entry directly inside a directory); None when none of them exists here, so the
    caller falls back to reusing the answer for a fixed time."""
    lines = []
    seen = False
    for path in INPUTS.get(manager, ()):
        if host.is_dir(path):
            try:
                names = [n for n in host.listdir(path) if n not in NOT_INPUTS.get(path, ())]
            except OSError:
                names = []
            lines.append(f"{path}/ {_mtime(host, path)} {len(names)}")
            lines.extend(f"{path}/{n} {_mtime(host, f'{path}/{n}')}" for n in names)
            seen = True
        else:
            stamp = _mtime(host, path)
            seen = seen or stamp != "-"
            lines.append(f"{path} {stamp}")
    if not seen:
        return None
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
