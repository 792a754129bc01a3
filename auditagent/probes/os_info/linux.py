"""Linux ``os`` section: /etc/os-release (systemd's format, also on non-systemd
distributions) and the running kernel from /proc."""
from __future__ import annotations

import shlex
from typing import Any

from auditagent.probes import ProbeContext
from auditagent.reasons import reason

OS_RELEASE_PATHS = ("/etc/os-release", "/usr/lib/os-release")


def parse_os_release(text: str) -> dict[str, str]:
    """``KEY=value`` lines with shell quoting; comments and malformed lines are skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            parts = shlex.split(raw, posix=True)
        except ValueError:
            parts = [raw.strip("\"'")]
        out[key.strip()] = parts[0] if parts else ""
    return out


def read_os_release(host) -> dict[str, str] | None:
    """The first os-release file that can be read, parsed; None when neither can."""
    for path in OS_RELEASE_PATHS:
        try:
            return parse_os_release(host.read_text(path))
        except OSError:
            continue
    return None


def os_facts(release: dict[str, str]) -> dict[str, Any]:
    """Map os-release keys onto the ``os`` contract (kernel/arch are added by the caller)."""
    def val(*keys: str) -> str | None:
        for key in keys:
            if release.get(key):
                return release[key]
        return None

    variant = val("VARIANT")
    edition = variant.removesuffix(" Edition") if variant else None
    return {
        "id": val("ID"),
        # The distributions this one derives from (os-release ID_LIKE), nearest first: which
        # distribution's fix steps apply when there are none for this one.
        "id_like": (val("ID_LIKE") or "").split() or None,
        "name": val("PRETTY_NAME", "NAME"),
        "version": val("VERSION_ID"),
        "build": val("BUILD_ID"),
        # Derivatives (Mint, Pop) carry their own codename; the Ubuntu base one is the fallback.
        "release": val("VERSION_CODENAME", "UBUNTU_CODENAME"),
        "edition": edition,
    }


def _first_line(ctx: ProbeContext, path: str) -> str | None:
    try:
        return ctx.host.read_text(path).strip() or None
    except OSError:
        return None


def probe(ctx: ProbeContext) -> dict[str, Any]:
    reasons: list[str] = []
    release = read_os_release(ctx.host)
    if release is None:
        reasons.append(reason("file.missing", "os-release"))
        release = {}
    facts: dict[str, Any] = os_facts(release)
    facts["kernel"] = _first_line(ctx, "/proc/sys/kernel/osrelease")
    facts["arch"] = _first_line(ctx, "/proc/sys/kernel/arch")
    if facts["arch"] is None:  # /proc/sys/kernel/arch is young (5.x); uname is everywhere
        res = ctx.host.run(["uname", "-m"], timeout=5)
        facts["arch"] = res.text().strip() or None if res.ok else None
    if facts["kernel"] is None:
        reasons.append(reason("file.unreadable", "/proc/sys/kernel/osrelease"))
    if facts["arch"] is None:
        reasons.append(reason("value.missing", "arch"))
    if not release:
        status = "unknown" if facts["kernel"] is None else "partial"
    else:
        status = "ok" if facts["id"] and facts["version"] and facts["kernel"] else "partial"
        if facts["version"] is None:
            reasons.append(reason("value.missing", "os-release VERSION_ID"))  # rolling releases (Arch) have none
    return {"status": status, "reasons": reasons, **facts}
