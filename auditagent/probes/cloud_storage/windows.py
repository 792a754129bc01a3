"""Windows ``cloud`` section: file-sync clients installed, running or configured.

* installed: uninstall keys (HKLM, HKLM WOW6432Node, each user's HKCU) by DisplayName;
* running: process names;
* accounts: OneDrive's own registry (Accounts\\Personal, Accounts\\Business1..N: the
  e-mail *domain*, ConfiguredTenantId, the organisation's SharePoint from SPOResourceId),
  Dropbox info.json, Nextcloud/ownCloud cfg (parsers shared with Linux in configs).
"""
from __future__ import annotations

import re
from typing import Any

from auditagent.probes import ProbeContext
from auditagent.probes.cloud_storage.configs import (account, email_domain, parse_dropbox_info_json, parse_nextcloud_cfg,
                                                   server_url)
from auditagent.probes.cloud_storage.clients import (add_account, add_evidence, new_client, read_client_configs,
                                                   shorten_home)
from auditagent.probes.sources.windows_registry import dword, subkeys, user_roots, values
from auditagent.reasons import reason

UNINSTALL = "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall"
UNINSTALL_WOW = "SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall"

# DisplayName patterns of the clients' installers (anchored: "Box Tools" is not Box Drive).
DISPLAY_NAMES = {
    "onedrive": re.compile(r"^Microsoft OneDrive\b", re.I),
    "dropbox": re.compile(r"^Dropbox\b", re.I),
    "google_drive": re.compile(r"^Google Drive\b", re.I),
    "icloud": re.compile(r"^iCloud\b", re.I),
    "box": re.compile(r"^Box(?: Drive)?$", re.I),
    "megasync": re.compile(r"^MEGAsync\b", re.I),
    "pcloud": re.compile(r"^pCloud( Drive)?\b", re.I),
    "jottacloud": re.compile(r"^Jottacloud\b", re.I),
    "nextcloud": re.compile(r"^Nextcloud\b", re.I),
    "owncloud": re.compile(r"^ownCloud\b", re.I),
}
PROCESSES = {
    "onedrive.exe": "onedrive", "dropbox.exe": "dropbox", "googledrivefs.exe": "google_drive",
    "iclouddrive.exe": "icloud", "box.exe": "box", "megasync.exe": "megasync", "pcloud.exe": "pcloud",
    "jottacloud.exe": "jottacloud", "nextcloud.exe": "nextcloud", "owncloud.exe": "owncloud",
}


def _sharepoint(vals: dict[str, Any]) -> str | None:
    """The organisation's SharePoint (``https://contoso-my.sharepoint.com``) a business account
    syncs with: SPOResourceId holds exactly that; ServiceEndpointUri is the same host followed by
    the user's own path (``/personal/<user>_<domain>/_api``), of which only the host is kept."""
    for name in ("SPOResourceId", "ServiceEndpointUri"):
        url = server_url(str(vals.get(name) or ""))
        if url:
            return "/".join(url.split("/")[:3])  # scheme://host[:port]
    return None


def onedrive_account(name: str, vals: dict[str, Any]) -> dict[str, Any] | None:
    """One OneDrive Accounts\\<name> key → an account, or None if no one is signed in there.
    Business is 1 on business keys (REG_DWORD; some tools read it as the string "1"). The public
    dumps of real keys (tests/fixtures/public/windows/cloud_storage) show UserEmail, UserFolder,
    SPOResourceId and ServiceEndpointUri, not ConfiguredTenantId, so the SharePoint host is kept
    beside the tenant: a policy can approve either."""
    mail = vals.get("UserEmail")
    tenant = str(vals.get("ConfiguredTenantId") or "").strip() or None
    if not (mail or tenant or vals.get("UserFolder") or vals.get("cid")):
        return None  # the key survives a sign-out, empty
    business = name.lower().startswith("business") or dword(vals.get("Business")) == 1
    return account(kind="business" if business else "personal" if name.lower() == "personal" else None,
                   tenant=tenant if business else None, server=_sharepoint(vals) if business else None,
                   email_domain=email_domain(str(mail) if mail else None))


def _installed(ctx: ProbeContext, roots: list[str], clients: dict[str, dict[str, Any]]) -> None:
    bases = [f"HKLM\\{UNINSTALL}", f"HKLM\\{UNINSTALL_WOW}"] + [f"{r}\\{UNINSTALL}" for r in roots]
    for base in bases:
        for sub in subkeys(ctx.host, base) or []:
            name = str((values(ctx.host, f"{base}\\{sub}") or {}).get("DisplayName") or "")
            for client, pattern in DISPLAY_NAMES.items():
                if name and pattern.search(name):
                    c = clients.setdefault(client, new_client(client))
                    c["installed"] = True
                    add_evidence(c, f"registry:{base}\\{sub}")


def _onedrive(ctx: ProbeContext, roots: list[str], clients: dict[str, dict[str, Any]]) -> None:
    for root in roots:
        base = f"{root}\\Software\\Microsoft\\OneDrive\\Accounts"
        for sub in subkeys(ctx.host, base) or []:
            if not (sub.lower() == "personal" or sub.lower().startswith("business")):
                continue
            acc = onedrive_account(sub, values(ctx.host, f"{base}\\{sub}") or {})
            if acc:
                c = clients.setdefault("onedrive", new_client("onedrive"))
                c["installed"] = True  # a configured account means the client is there
                add_account(c, acc)
                add_evidence(c, f"registry:{base}\\{sub}")


def _config_files(ctx: ProbeContext, clients: dict[str, dict[str, Any]], reasons: list[str]) -> None:
    homes = ctx.host.home_dirs()
    for home in homes:
        h = home.rstrip("\\")
        files = [("dropbox", f"{h}\\AppData\\Local\\Dropbox\\info.json", parse_dropbox_info_json),
                 ("nextcloud", f"{h}\\AppData\\Roaming\\Nextcloud\\nextcloud.cfg", parse_nextcloud_cfg),
                 ("owncloud", f"{h}\\AppData\\Roaming\\ownCloud\\owncloud.cfg", parse_nextcloud_cfg)]
        read_client_configs(ctx, clients, files, homes, reasons)
        drivefs = f"{h}\\AppData\\Local\\Google\\DriveFS"
        if ctx.host.is_dir(drivefs):
            c = clients.setdefault("google_drive", new_client("google_drive"))
            c["installed"] = True
            add_evidence(c, f"file:{shorten_home(drivefs, homes)}")


def probe(ctx: ProbeContext) -> dict[str, Any]:
    reasons: list[str] = []
    clients: dict[str, dict[str, Any]] = {}
    roots = user_roots(ctx.host)
    _installed(ctx, roots, clients)
    _onedrive(ctx, roots, clients)
    _config_files(ctx, clients, reasons)
    try:
        procs = ctx.host.processes()
    except Exception as exc:  # noqa: BLE001 - psutil errors vary by platform
        procs = []
        reasons.append(reason("processes.unreadable", None, exc))
    for p in procs:
        name = PROCESSES.get((p.name or "").lower())
        if name:
            c = clients.setdefault(name, new_client(name))
            c["running"] = True
            c["installed"] = True
            add_evidence(c, f"process:{p.name}")
    return {"status": "partial" if reasons else "ok", "reasons": reasons,
            "clients": [clients[k] for k in sorted(clients)]}
