"""Pure parsers of Linux package-manager outputs and logs (apt/dpkg, dnf/yum/rpm,
pacman, flatpak). Each takes text and returns plain data."""
from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

# --------------------------------------------------------------------------- apt / dpkg


def is_security_origin(origin: str) -> bool:
    """An apt origin/suite that carries security fixes: ``jammy-security``,
    ``Debian-Security:12/oldstable-security``, ``bookworm-security``."""
    o = origin.lower()
    return "-security" in o or o.startswith("debian-security") or "/security" in o


def _dpkg_order(c: str) -> int:
    # dpkg's verrevcmp: "~" sorts before everything, even the end; letters before other signs.
    return -1 if c == "~" else 0 if c.isdigit() else ord(c) if c.isalpha() else ord(c) + 256


def _dpkg_part_cmp(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ca = _dpkg_order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            cb = _dpkg_order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ca != cb:
                return -1 if ca < cb else 1
            i, j = i + 1, j + 1
        da = re.match(r"\d*", a[i:]).group(0)
        db = re.match(r"\d*", b[j:]).group(0)
        if int(da or 0) != int(db or 0):
            return -1 if int(da or 0) < int(db or 0) else 1
        i, j = i + len(da), j + len(db)
    return 0


def dpkg_version_compare(a: str, b: str) -> int:
    """Debian version order (deb-version(7): epoch, upstream, revision; ``~`` before
    anything): -1, 0 or 1, as ``dpkg --compare-versions`` decides."""
    def split(v: str) -> tuple[int, str, str]:
        epoch, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
        upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "")
        return int(epoch) if epoch.isdigit() else 0, upstream, revision
    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _dpkg_part_cmp(ua, ub) or _dpkg_part_cmp(ra, rb)


def parse_apt_get_simulate(text: str) -> list[dict[str, Any]]:
    """``apt-get -s dist-upgrade`` ``Inst`` lines (stable, scripted-upon format; run with
    LC_ALL=C for the prose around them). New packages pulled in (no ``[old]``) are not updates,
    nor are downgrades (a pin or a removed repository: apt would install an older version)."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^Inst (\S+)(?: \[([^\]]*)\])? \((\S+) (.*?)(?: \[([^\]]+)\])?\)", line)
        if not m or m.group(2) is None:
            continue
        if dpkg_version_compare(m.group(3), m.group(2)) <= 0:
            continue
        origins = [o.strip() for o in m.group(4).split(",") if o.strip()]
        out.append({"name": m.group(1), "from": m.group(2), "version": m.group(3), "origins": origins,
                    "security": any(is_security_origin(o) for o in origins)})
    return out


def parse_apt_list_upgradable(text: str) -> list[dict[str, Any]]:
    """``apt list --upgradable``: ``name/suite[,suite…] version arch [upgradable from: old]``."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^([^/\s]+)/(\S+) (\S+) (\S+) \[upgradable from: ([^\]]+)\]", line)
        if not m:
            continue
        suites = sorted(set(m.group(2).split(",")))
        out.append({"name": m.group(1), "from": m.group(5), "version": m.group(3), "origins": suites,
                    "security": any(is_security_origin(s) for s in suites)})
    return out


def parse_apt_check_human(text: str) -> dict[str, int | None]:
    """update-notifier's ``apt-check --human-readable`` (English only, for captures)."""
    # "N updates can be applied immediately." (Ubuntu 20.04 on); "N packages can be updated." before.
    pending = re.search(r"^(\d+) (?:updates?|packages?) can be (?:applied|updated)", text, re.M)
    security = re.search(r"^(\d+) (?:of these )?updates? (?:is a|are) (?:standard )?security updates?", text, re.M)
    return {"pending": int(pending.group(1)) if pending else None,
            "security": int(security.group(1)) if security else (0 if pending else None)}


# apt's list headers: apt 2 wording, then apt 3's (APT::Output-Version >= 30).
_PHASING_HEADERS = ("The following upgrades have been deferred due to phasing:", "Not upgrading yet due to phasing:")
_KEPT_HEADERS = ("The following packages have been kept back:", "Not upgrading:")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.~-]*(?::[a-z0-9-]+)?$")


def _apt_list(lines: list[str], start: int) -> list[dict[str, Any]]:
    """The package list under a header: names several to a line (apt 2 and 3 pack them
    into columns), or one ``name (old => new)`` a line with ``-V``. Ends at the next
    header, summary or blank line. A list whose indentation was lost (pasted through a
    web page) still reads, since each line must consist of package names only."""
    out: list[dict[str, Any]] = []
    for line in lines[start:]:
        text = line.strip()
        if not text or text.endswith(":"):
            break
        m = re.fullmatch(r"(\S+) \((\S+) => (\S+)\)", text)
        if m:
            out.append({"name": m.group(1), "from": m.group(2), "version": m.group(3)})
            continue
        names = text.split()
        if not all(_PACKAGE.match(n) for n in names):
            break
        out.extend({"name": n, "from": None, "version": None} for n in names)
    return out


def parse_apt_phasing(text: str) -> dict[str, Any]:
    """apt's phasing and kept-back lists and its summary, apt 2 (``N upgraded, …, M not
    upgraded.``) or apt 3 (``Summary:`` / ``Upgrading: N, …, Not Upgrading: M``)."""
    lines = text.splitlines()
    deferred: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        header = line.strip()
        if header in _PHASING_HEADERS:
            deferred += _apt_list(lines, i + 1)
        elif header in _KEPT_HEADERS:
            kept += _apt_list(lines, i + 1)
    upgraded = not_upgraded = None
    summary = re.search(r"(\d+) upgraded, (\d+) newly installed, (\d+) to remove and (\d+) not upgraded", text)
    if summary:
        upgraded, not_upgraded = int(summary.group(1)), int(summary.group(4))
    else:
        m = re.search(r"^\s*Upgrading: (\d+),.*?Not Upgrading: (\d+)\s*$", text, re.M)
        if m:
            upgraded, not_upgraded = int(m.group(1)), int(m.group(2))
    return {"deferred": deferred, "kept_back": kept, "upgraded": upgraded, "not_upgraded": not_upgraded}


DPKG_CHANGE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (?:status installed|upgrade|install) ")


def parse_dpkg_log_last(text: str) -> dt.datetime | None:
    """Newest package install/upgrade in a dpkg.log (local time, naive)."""
    # ISO stamps sort as text, so the newest is found without parsing every line's date.
    stamps = [m.group(1) for m in map(DPKG_CHANGE.match, text.splitlines()) if m]
    return dt.datetime.fromisoformat(max(stamps)) if stamps else None  # the regex fixed the layout


def parse_reboot_required_pkgs(text: str) -> list[str]:
    """/var/run/reboot-required.pkgs: one package per line, repeats allowed (each trigger appends)."""
    seen: list[str] = []
    for line in text.splitlines():
        name = line.strip()
        if name and name not in seen:
            seen.append(name)
    return seen


# --------------------------------------------------------------------------- dnf / yum / rpm


def parse_dnf_check_update(text: str) -> list[dict[str, str]]:
    """``dnf/yum check-update``: ``name.arch  version  repo`` rows (exit 100 = updates exist).
    A name too long for its column is printed alone, the rest of its row indented on the
    next line (yum and dnf 4); the two lines are one package. The ``Obsoleting Packages``
    section repeats packages and is not counted."""
    out = []
    held: str | None = None  # a lone ``name.arch`` waiting for its wrapped version and repo
    for line in text.splitlines():
        if line.startswith("Obsoleting"):
            break
        parts = line.split()
        if held is not None and line[:1].isspace() and len(parts) == 2:
            parts, line = [held] + parts, held
        held = parts[0] if len(parts) == 1 and "." in parts[0] and not line[:1].isspace() else None
        if len(parts) != 3 or "." not in parts[0] or line.startswith((" ", "Last metadata", "Security:")):
            continue
        name, _, arch = parts[0].rpartition(".")
        if not re.match(r"^[\w:.~+^-]+$", parts[1]):
            continue
        out.append({"name": name, "arch": arch, "version": parts[1], "repo": parts[2]})
    return out


# dnf 5's advisory list row: name, type, severity, package, issued date and time. In a narrow
# terminal libsmartcols cuts the type and severity columns ("secu", "Importan").
_DNF5_ADVISORY = re.compile(r"^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s*$")


def parse_dnf_updateinfo(text: str) -> list[dict[str, str]]:
    """Security advisories of ``dnf updateinfo list --security``: dnf 4 / yum rows
    ``ADVISORY  Severity/Sec.  nevra``, or dnf 5's ``Name Type Severity Package Issued``
    table (Fedora 41 on), of which only rows of type security count."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and "/Sec." in parts[1] or len(parts) == 3 and parts[1] == "security":
            out.append({"advisory": parts[0], "severity": parts[1].split("/")[0], "package": parts[2]})
            continue
        m = _DNF5_ADVISORY.match(line)
        if m and len(m.group(2)) >= 4 and "security".startswith(m.group(2)):
            out.append({"advisory": m.group(1), "severity": m.group(3), "package": m.group(4)})
    return out


def parse_dnf_advisory_json(text: str) -> list[dict[str, str]]:
    """dnf 5's ``updateinfo|advisory list --json``: a JSON array of ``{name, type, severity,
    nevra, buildtime}`` (``buildtime`` an epoch number in early dnf 5, a ``YYYY-MM-DD
    HH:MM:SS`` text later; not read), or with ``--with-bz``/``--with-cve`` ``{advisory_name,
    advisory_type, advisory_severity, nevra, references}``. Security rows only, in the shape
    of parse_dnf_updateinfo. Anything else raises ValueError: never read as "none pending"."""
    data = json.loads(text)
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise ValueError("dnf advisory JSON is not a list of objects")
    out = []
    for e in data:
        kind = e.get("type", e.get("advisory_type"))
        name, nevra = e.get("name", e.get("advisory_name")), e.get("nevra")
        if not isinstance(name, str) or not isinstance(nevra, str) or not isinstance(kind, str):
            raise ValueError("dnf advisory JSON entry without name, type or nevra")
        if kind.lower() == "security":
            out.append({"advisory": name, "severity": str(e.get("severity", e.get("advisory_severity")) or ""),
                        "package": nevra})
    return out


def nevra_name(nevra: str) -> str:
    """``openssl-1:1.1.1k-9.el8_7.x86_64`` → ``openssl``."""
    m = re.match(r"^(.+?)-(?:\d+:)?[^-]+-[^-]+$", nevra)
    return m.group(1) if m else nevra


def parse_needs_restarting(text: str, returncode: int | None) -> bool | None:
    """``dnf needs-restarting -r``: exit 1 = reboot needed, 0 = not; the text agrees."""
    if "Reboot is required" in text:
        return True
    if "Reboot should not be necessary" in text:
        return False
    return {0: False, 1: True}.get(returncode) if returncode is not None else None


def parse_rpm_install_times(text: str) -> float | None:
    """``rpm -qa --qf '%{INSTALLTIME}\\n'``: epoch seconds, one per package → newest."""
    times = [int(x) for x in text.split() if x.isdigit()]
    return float(max(times)) if times else None


# --------------------------------------------------------------------------- pacman / flatpak


def parse_pacman_qu(text: str) -> list[dict[str, Any]]:
    """``pacman -Qu`` (and pacman-contrib's ``checkupdates``): ``name old -> new``, with
    `` [ignored]`` after a package that IgnorePkg/IgnoreGroup keeps back (pacman 4.1 on).
    An ignored update is still one the laptop lacks: it stays in the list, marked."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^(\S+) (\S+) -> (\S+)( \[ignored\])?\s*$", line.strip())
        if m:
            out.append({"name": m.group(1), "from": m.group(2), "version": m.group(3),
                        "ignored": bool(m.group(4))})
    return out


def parse_pacman_log_last(text: str) -> dt.datetime | None:
    """/var/log/pacman.log: ``[2022-12-01T10:00:00+0100] [ALPM] upgraded x (a -> b)``."""
    last = None
    for line in text.splitlines():
        m = re.match(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4})\] \[ALPM\] (?:installed|upgraded) ", line)
        if m:
            stamp = dt.datetime.fromisoformat(m.group(1))
            if last is None or stamp > last:
                last = stamp
    return last


def parse_flatpak_updates(text: str) -> list[dict[str, str | None]]:
    """``flatpak remote-ls --updates``: tab-separated name, application id, version, branch, arch."""
    out = []
    for line in text.splitlines():
        cols = line.split("\t")
        if len(cols) >= 5:
            out.append({"name": cols[0], "application": cols[1], "version": cols[2] or None,
                        "branch": cols[3], "arch": cols[4]})
    return out
