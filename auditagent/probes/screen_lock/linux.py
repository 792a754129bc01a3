"""Linux ``screen_lock`` section: GNOME (gsettings) and KDE Plasma (kscreenlockerrc).

The settings that matter are the *user's*, not the agent's: gsettings run as root
reads root's dconf database. So gsettings is run once per user home with HOME and
XDG_CONFIG_HOME pointing there (dconf reads ~/.config/dconf/user directly; a user
who never changed a setting gets the schema defaults, which is what their session
uses). A home we cannot read becomes a reason, never a guess.
"""
from __future__ import annotations

import posixpath
from typing import Any

from auditagent.probes import ProbeContext
from auditagent.reasons import reason

C_ENV = {"LC_ALL": "C", "LANG": "C"}
GNOME_SCHEMAS = ("org.gnome.desktop.screensaver", "org.gnome.desktop.session", "org.gnome.desktop.lockdown")
GNOME_PROCESSES = {"gnome-shell", "gnome-session-binary", "gnome-session"}
KDE_PROCESSES = {"plasmashell", "ksmserver", "kwin_x11", "kwin_wayland", "startplasma-x11", "startplasma-wayland"}
OTHER_DESKTOP_PROCESSES = {"xfce4-session", "cinnamon-session", "mate-session", "lxqt-session", "budgie-panel",
                           "xfwm4", "sway", "Hyprland", "i3"}
SESSION_DIRS = ("/usr/share/xsessions", "/usr/share/wayland-sessions")


# --------------------------------------------------------------------------- parsers


def parse_gvariant_scalar(text: str) -> Any:
    """The GVariant text of a simple gsettings value: ``true``, ``uint32 300``, ``'x'``, ``@as []``."""
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    for prefix in ("uint32 ", "int32 ", "uint64 ", "int64 ", "byte ", "double ", "uint16 ", "int16 "):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def parse_gsettings_list(text: str) -> dict[str, dict[str, Any]]:
    """``gsettings list-recursively [SCHEMA]``: ``schema key value`` lines → {schema: {key: value}}."""
    out: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3:
            out.setdefault(parts[0], {})[parts[1]] = parse_gvariant_scalar(parts[2])
    return out


def gnome_lock(settings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """GNOME locks when the session has been idle ``idle-delay`` s (0 = never) and then
    ``lock-delay`` s more, if ``lock-enabled`` and the lockdown key does not forbid it."""
    saver = settings.get("org.gnome.desktop.screensaver", {})
    session = settings.get("org.gnome.desktop.session", {})
    lockdown = settings.get("org.gnome.desktop.lockdown", {})
    lock_enabled, idle, delay = saver.get("lock-enabled"), session.get("idle-delay"), saver.get("lock-delay")
    disabled = lockdown.get("disable-lock-screen")
    if lock_enabled is None or idle is None:
        return {"enabled": None, "idle_seconds": None}
    enabled = bool(lock_enabled) and disabled is not True and int(idle) > 0
    return {"enabled": enabled, "idle_seconds": int(idle) + int(delay or 0) if enabled else None}


def parse_kde_ini(text: str) -> dict[str, dict[str, str]]:
    """KConfig INI: ``[Group]`` then ``Key=value``; ``[$i]`` immutability markers dropped."""
    out: dict[str, dict[str, str]] = {}
    group = out.setdefault("", {})
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            group = out.setdefault(line.split("]")[0][1:], {})
            continue
        key, sep, value = line.partition("=")
        if sep:
            group[key.split("[")[0].strip()] = value.strip()
    return out


def kde_lock(*configs: str) -> dict[str, Any]:
    """kscreenlockerrc ``[Daemon]`` (later configs override earlier ones): Autolock
    (default true), Timeout in minutes (default 5), LockGrace seconds (default 5)."""
    daemon: dict[str, str] = {}
    for text in configs:
        daemon.update(parse_kde_ini(text).get("Daemon", {}))
    autolock = daemon.get("Autolock", "true").lower() == "true"
    try:
        minutes = int(daemon.get("Timeout", "5"))
        grace = int(daemon.get("LockGrace", "5"))
    except ValueError:
        return {"enabled": None, "idle_seconds": None}
    enabled = autolock and minutes > 0
    return {"enabled": enabled, "idle_seconds": minutes * 60 + grace if enabled else None,
            "lock_on_resume": daemon.get("LockOnResume", "true").lower() == "true"}


# --------------------------------------------------------------------------- glue


def _desktops(ctx: ProbeContext) -> tuple[list[str], set[str]]:
    """(desktops seen, users running a desktop session)."""
    found: list[str] = []
    users: set[str] = set()
    for proc in ctx.host.processes():
        name = proc.name
        desk = "gnome" if name in GNOME_PROCESSES else "kde" if name in KDE_PROCESSES else \
            "other" if name in OTHER_DESKTOP_PROCESSES else None
        if desk:
            if desk not in found:
                found.append(desk)
            if proc.username:
                users.add(proc.username)
    if not found:
        sessions = " ".join(name for d in SESSION_DIRS for name in _listdir(ctx, d)).lower()
        if ctx.host.which("gnome-shell") or "gnome" in sessions:
            found.append("gnome")
        if ctx.host.which("plasmashell") or "plasma" in sessions:
            found.append("kde")
        if not found and sessions.strip():
            found.append("other")
    return found, users


def _listdir(ctx: ProbeContext, path: str) -> list[str]:
    try:
        return ctx.host.listdir(path)
    except OSError:
        return []


def _user_homes(ctx: ProbeContext, users: set[str]) -> list[str]:
    homes = ctx.host.home_dirs()
    active = [h for h in homes if posixpath.basename(h.rstrip("/")) in users]
    return active or [h for h in homes if h != "/root"] or homes


def _gnome_for_home(ctx: ProbeContext, home: str) -> tuple[dict[str, Any] | None, str | None]:
    env = dict(C_ENV, HOME=home, XDG_CONFIG_HOME=posixpath.join(home, ".config"), GSETTINGS_BACKEND="dconf")
    db = posixpath.join(home, ".config", "dconf", "user")
    if ctx.host.exists(db):
        try:
            ctx.host.read_bytes(db)
        except PermissionError:
            return None, reason("file.unreadable", db, "permission denied")
        except OSError:
            pass
    settings: dict[str, dict[str, Any]] = {}
    for schema in GNOME_SCHEMAS:
        res = ctx.host.run(["gsettings", "list-recursively", schema], timeout=10, env=env)
        if not res.ok:
            if schema == GNOME_SCHEMAS[2]:
                continue  # lockdown schema is optional; absence just means no lockdown
            return None, res.why_not()
        settings.update(parse_gsettings_list(res.text()))
    return gnome_lock(settings), None


def _kde_for_home(ctx: ProbeContext, home: str) -> tuple[dict[str, Any] | None, str | None]:
    texts = []
    for path in ("/etc/xdg/kscreenlockerrc", posixpath.join(home, ".config", "kscreenlockerrc")):
        try:
            texts.append(ctx.host.read_text(path))
        except FileNotFoundError:
            continue
        except OSError as exc:
            return None, reason("file.unreadable", path, exc.strerror)
    return kde_lock(*texts), None


def _worst(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several people use this machine: the weakest setting among them is the machine's."""
    if any(r["enabled"] is False for r in results):
        return {"enabled": False, "idle_seconds": None}
    if any(r["enabled"] is None for r in results):
        return {"enabled": None, "idle_seconds": None}
    return {"enabled": True, "idle_seconds": max(r["idle_seconds"] for r in results)}


def probe(ctx: ProbeContext) -> dict[str, Any]:
    desktops, users = _desktops(ctx)
    if not desktops:
        return {"status": "not_applicable", "reasons": [reason("desktop.none")],
                "enabled": None, "idle_seconds": None, "desktop": None}
    desktop = desktops[0]
    if desktop not in ("gnome", "kde"):
        return {"status": "unknown", "reasons": [reason("desktop.unsupported")],
                "enabled": None, "idle_seconds": None, "desktop": None}
    reasons: list[str] = []
    results = []
    reader = _gnome_for_home if desktop == "gnome" else _kde_for_home
    for home in _user_homes(ctx, users):
        result, why = reader(ctx, home)
        if why:
            reasons.append(why)
        elif result is not None:
            results.append(result)
    if not results:
        return {"status": "unknown", "reasons": reasons or ["no user settings found"],
                "enabled": None, "idle_seconds": None, "desktop": desktop}
    best = _worst(results)
    status = "ok" if not reasons and best["enabled"] is not None else "partial"
    return {"status": status, "reasons": reasons, **best, "desktop": desktop}
