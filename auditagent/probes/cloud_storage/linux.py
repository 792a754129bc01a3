"""Linux ``cloud`` section: file-sync clients installed, running or configured, and the
accounts each is tied to — read from every person's home, since the agent may run
as root from a timer while the clients live in the users' profiles.

Installed = a binary on PATH, a .desktop entry (system, user, flatpak) or an /opt
folder. Accounts come from the clients' own config files (_cloud_configs).
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from auditagent.probes import ProbeContext
from auditagent.probes.cloud_storage.configs import (account, email_domain, parse_dropbox_info_json, parse_nextcloud_cfg,
                                              parse_onedrive_config_file, parse_onedrive_display_config,
                                              parse_qt_ini, parse_syncthing_config, server_url)
from auditagent.reasons import reason

C_ENV = {"LC_ALL": "C", "LANG": "C"}
DESKTOP_DIRS = ("/usr/share/applications", "/usr/local/share/applications",
                "/var/lib/flatpak/exports/share/applications", "/var/lib/snapd/desktop/applications")
USER_DESKTOP_DIRS = (".local/share/applications", ".local/share/flatpak/exports/share/applications")


@dataclass(frozen=True)
class ClientSpec:
    """How to recognise one cloud-storage client on Linux."""

    name: str
    processes: tuple[str, ...]  # process names (lower case)
    binaries: tuple[str, ...] = ()
    desktop_token: str | None = None  # substring of a .desktop file name
    opt_dirs: tuple[str, ...] = ()
    home_markers: tuple[str, ...] = ()  # per-home paths that mean "installed/configured"


CLIENTS = (
    ClientSpec("dropbox", ("dropbox",), ("dropbox",), "dropbox", ("/opt/dropbox",), (".dropbox-dist",)),
    ClientSpec("google_drive", ("google-drive-ocamlfuse", "insync"), ("google-drive-ocamlfuse", "insync"),
               "insync", ("/opt/insync",), (".gdfuse",)),
    ClientSpec("onedrive", ("onedrive",), ("onedrive",), "onedrive"),
    ClientSpec("nextcloud", ("nextcloud",), ("nextcloud",), "nextcloud"),
    ClientSpec("owncloud", ("owncloud",), ("owncloud",), "owncloud"),
    ClientSpec("megasync", ("megasync",), ("megasync",), "megasync", ("/opt/megasync",)),
    ClientSpec("pcloud", ("pcloud",), ("pcloud",), "pcloud", ("/opt/pcloud",), (".pcloud",)),
    ClientSpec("jottacloud", ("jottad", "jotta-cli"), ("jotta-cli", "jottad"), "jotta"),
    ClientSpec("syncthing", ("syncthing",), ("syncthing",), "syncthing"),
)


class _Found:
    def __init__(self, name: str) -> None:
        self.name = name
        self.installed = False
        self.running = False
        self.accounts: list[dict[str, Any]] = []
        self.evidence: list[str] = []
        self.detail: dict[str, Any] = {}

    def see(self, evidence: str, installed: bool = False, running: bool = False) -> None:
        self.installed |= installed
        self.running |= running
        if evidence not in self.evidence:
            self.evidence.append(evidence)

    def fact(self) -> dict[str, Any]:
        unique = []
        for acc in self.accounts:
            if acc not in unique:
                unique.append(acc)
        out = {"name": self.name, "installed": self.installed, "running": self.running, "accounts": unique,
               "evidence": self.evidence}
        if self.detail:
            out["detail"] = self.detail
        return out


def tilde(path: str, home: str) -> str:
    """Home folder shortened to ``~`` (the evidence names no person)."""
    return "~" + path[len(home.rstrip("/")):] if path.startswith(home.rstrip("/") + "/") else path


def _proc_names(proc) -> set[str]:
    names = {proc.name.lower()}
    for path in (proc.exe, proc.cmdline[0] if proc.cmdline else None):
        if path:
            names.add(posixpath.basename(path).lower())
    return names


def _read(ctx: ProbeContext, path: str, reasons: list[str], home: str) -> str | None:
    try:
        return ctx.host.read_text(path)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return None
    except OSError as exc:
        reasons.append(reason("file.unreadable", tilde(path, home), exc.strerror))
        return None


# --------------------------------------------------------------------------- per-client config readers


def _dropbox(ctx, home, found, reasons):
    path = posixpath.join(home, ".dropbox", "info.json")
    text = _read(ctx, path, reasons, home)
    if text is not None:
        found.see(f"file:{tilde(path, home)}")
        try:
            found.accounts += parse_dropbox_info_json(text)
        except ValueError:
            reasons.append(reason("output.unrecognised", tilde(path, home), "not valid JSON"))


def _nextcloud_like(app_dir: str, cfg_name: str, flatpak_id: str | None):
    def read(ctx, home, found, reasons):
        paths = [posixpath.join(home, ".config", app_dir, cfg_name)]
        if flatpak_id:
            paths.append(posixpath.join(home, ".var", "app", flatpak_id, "config", app_dir, cfg_name))
        for path in paths:
            text = _read(ctx, path, reasons, home)
            if text is not None:
                found.see(f"file:{tilde(path, home)}")
                found.accounts += parse_nextcloud_cfg(text)
    return read


def _onedrive(ctx, home, found, reasons):
    for conf_dir in ctx.host.glob(posixpath.join(home, ".config", "onedrive*")):
        path = posixpath.join(conf_dir, "config")
        text = _read(ctx, path, reasons, home)
        has_token = ctx.host.exists(posixpath.join(conf_dir, "refresh_token"))
        if text is None and not has_token:
            continue
        found.see(f"file:{tilde(path if text is not None else conf_dir, home)}")
        opts = parse_onedrive_config_file(text or "")
        parsed = None
        # Only for the agent's own home: run as root for someone else, the client could
        # leave root-owned files in that person's config folder.
        if ctx.host.which("onedrive") and (ctx.host.getenv("HOME") or "").rstrip("/") == home.rstrip("/"):
            res = ctx.host.run(["onedrive", "--display-config", "--confdir", conf_dir], timeout=15, env=C_ENV)
            if res.ok:
                parsed = parse_onedrive_display_config(res.text())
        tenant = opts.get("azure_tenant_id") or (parsed["account"]["tenant"] if parsed else None)
        business = bool(tenant) or opts.get("drive_id", "").startswith("b!") or \
            opts.get("sync_business_shared_items", "").lower() == "true" or bool(parsed and parsed["business"])
        found.accounts.append(account(kind="business" if business else None, tenant=tenant or None))


def _syncthing(ctx, home, found, reasons):
    for path in (posixpath.join(home, ".local", "state", "syncthing", "config.xml"),
                 posixpath.join(home, ".config", "syncthing", "config.xml")):
        text = _read(ctx, path, reasons, home)
        if text is None:
            continue
        found.see(f"file:{tilde(path, home)}")
        try:
            counts = parse_syncthing_config(text)
        except Exception:  # noqa: BLE001 - ElementTree raises several kinds on bad XML
            reasons.append(reason("output.unrecognised", tilde(path, home), "not valid XML"))
            continue
        for key, value in counts.items():
            found.detail[key] = found.detail.get(key, 0) + value
        break


def _gnome_online_accounts(ctx, home, by_name, reasons):
    """GNOME Online Accounts with Files enabled mounts Google Drive / OneDrive in Nautilus."""
    path = posixpath.join(home, ".config", "goa-1.0", "accounts.conf")
    text = _read(ctx, path, reasons, home)
    if text is None:
        return
    for section in parse_qt_ini(text).values():
        provider = section.get("Provider")
        client = {"google": "google_drive", "ms_graph": "onedrive", "owncloud": "nextcloud"}.get(provider or "")
        if not client or section.get("FilesEnabled", "false").lower() != "true":
            continue
        found = by_name.setdefault(client, _Found(client))
        found.see(f"file:{tilde(path, home)}", installed=True)
        ident = section.get("PresentationIdentity") or section.get("Identity")
        server = server_url(section.get("Uri")) if provider == "owncloud" else None
        found.accounts.append(account(kind=None, server=server, email_domain=email_domain(ident)))


def _rclone_drive(ctx, home, by_name, reasons):
    """rclone remotes of type drive/onedrive are sync clients too, once configured."""
    path = posixpath.join(home, ".config", "rclone", "rclone.conf")
    text = _read(ctx, path, reasons, home)
    if text is None:
        return
    for section in parse_qt_ini(text).values():
        client = {"drive": "google_drive", "onedrive": "onedrive", "dropbox": "dropbox"}.get(section.get("type", ""))
        if client:
            found = by_name.setdefault(client, _Found(client))
            found.see(f"file:{tilde(path, home)}", installed=ctx.host.which("rclone") is not None)
            kind = {"business": "business", "personal": "personal"}.get(section.get("drive_type", ""))
            found.accounts.append(account(kind=kind))


HOME_READERS = {
    "dropbox": _dropbox,
    "nextcloud": _nextcloud_like("Nextcloud", "nextcloud.cfg", "com.nextcloud.desktopclient.nextcloud"),
    "owncloud": _nextcloud_like("ownCloud", "owncloud.cfg", "com.owncloud.desktopclient.owncloud"),
    "onedrive": _onedrive,
    "syncthing": _syncthing,
}


# --------------------------------------------------------------------------- glue


def _desktop_files(ctx: ProbeContext, homes: list[str]) -> list[tuple[str, str]]:
    """(path, home or '') of every .desktop entry."""
    out = []
    for d, home in [(d, "") for d in DESKTOP_DIRS] + [(posixpath.join(h, u), h) for h in homes
                                                       for u in USER_DESKTOP_DIRS]:
        try:
            out += [(posixpath.join(d, n), home) for n in ctx.host.listdir(d) if n.endswith(".desktop")]
        except OSError:
            continue
    return out


def probe(ctx: ProbeContext) -> dict[str, Any]:
    host = ctx.host
    reasons: list[str] = []
    homes = host.home_dirs()
    by_name: dict[str, _Found] = {}

    def get(name: str) -> _Found:
        return by_name.setdefault(name, _Found(name))

    try:
        procs = host.processes()
    except Exception as exc:  # noqa: BLE001 - psutil may be missing or denied
        procs = []
        reasons.append(reason("processes.unreadable", None, exc))
    desktop_files = _desktop_files(ctx, homes)
    for spec in CLIENTS:
        for proc in procs:
            hit = _proc_names(proc) & set(spec.processes)
            if hit:
                get(spec.name).see(f"process:{proc.name}", running=True)
        for binary in spec.binaries:
            path = host.which(binary)
            if path:
                get(spec.name).see(f"file:{path}", installed=True)
        if spec.desktop_token:
            for path, home in desktop_files:
                if spec.desktop_token in posixpath.basename(path).lower():
                    get(spec.name).see(f"file:{tilde(path, home) if home else path}", installed=True)
        for opt in spec.opt_dirs:
            if host.is_dir(opt):
                get(spec.name).see(f"file:{opt}", installed=True)
        for home in homes:
            for marker in spec.home_markers:
                path = posixpath.join(home, marker)
                if host.exists(path):
                    get(spec.name).see(f"file:{tilde(path, home)}", installed=True)
    for home in homes:
        for name, reader in HOME_READERS.items():
            found = by_name.get(name) or _Found(name)
            before = len(found.evidence)
            reader(ctx, home, found, reasons)
            if len(found.evidence) > before:
                by_name[name] = found
        _gnome_online_accounts(ctx, home, by_name, reasons)
        _rclone_drive(ctx, home, by_name, reasons)
    if not homes:
        reasons.append(reason("homes.none"))
    clients = [by_name[s.name].fact() for s in CLIENTS if s.name in by_name]
    return {"status": "partial" if reasons else "ok", "reasons": reasons, "clients": clients}
