"""macOS ``cloud`` section.

* installed: /Applications/<Name>.app (and ~/Applications);
* running: process names;
* accounts: ~/Library/CloudStorage — File Provider folders are named
  ``<Provider>-<account>``: ``OneDrive-Personal`` (the word in the Mac's language:
  ``OneDrive-Personligt``, ``OneDrive-个人`` …), ``OneDrive-<Organisation>`` and
  ``OneDrive-SharedLibraries-<Organisation>`` (work; the display name is not a tenant id,
  so the tenant stays unknown), ``GoogleDrive-anna@example.com`` (the e-mail: only its domain
  is kept), ``Dropbox``, ``Box-Box``; Dropbox's ~/.dropbox/info.json; Nextcloud/ownCloud
  config; iCloud Drive when ~/Library/Mobile Documents/com~apple~CloudDocs exists.
"""
from __future__ import annotations

import unicodedata
from typing import Any

from auditagent.probes import ProbeContext
from auditagent.probes.cloud_storage.configs import account, email_domain, parse_dropbox_info_json, parse_nextcloud_cfg
from auditagent.probes.cloud_storage.clients import (add_account, add_evidence, new_client, read_client_configs,
                                                   shorten_home)
from auditagent.reasons import reason

APPS = {"OneDrive.app": "onedrive", "Dropbox.app": "dropbox", "Google Drive.app": "google_drive",
        "Box.app": "box", "MEGAsync.app": "megasync", "pCloud Drive.app": "pcloud", "Jottacloud.app": "jottacloud",
        "Nextcloud.app": "nextcloud", "owncloud.app": "owncloud", "ownCloud.app": "owncloud",
        "Syncthing.app": "syncthing", "Sync.app": "sync_com"}
PROCESSES = {"onedrive": "onedrive", "dropbox": "dropbox", "google drive": "google_drive", "box": "box",
             "megasync": "megasync", "megaclient": "megasync", "pcloud drive": "pcloud", "jottacloud": "jottacloud",
             "nextcloud": "nextcloud", "owncloud": "owncloud", "syncthing": "syncthing"}
PROVIDERS = {"onedrive": "onedrive", "googledrive": "google_drive", "dropbox": "dropbox", "box": "box",
             "pcloud": "pcloud", "nextcloud": "nextcloud", "owncloud": "owncloud", "megasync": "megasync"}
# Consumer mail domains: an account there is personal whatever the service.
CONSUMER_DOMAINS = {"gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "icloud.com",
                    "me.com", "mac.com"}


# OneDrive names a personal account's folder "OneDrive-" + "Personal" in the Mac's language
# (seen on real Macs: see tests/fixtures/public/macos/cloud_storage). A business account's
# folder carries the organisation's display name, which is not its tenant id.
ONEDRIVE_PERSONAL = {"personal", "personligt", "personlig", "persönlich", "个人", "個人用"}


def _onedrive_account(rest: str) -> dict[str, Any]:
    if rest.casefold() in ONEDRIVE_PERSONAL:
        return account(kind="personal")
    if rest.startswith("SharedLibraries-"):
        return account(kind="business")  # SharePoint libraries exist only for work accounts
    # An organisation's name, or "Personal" in a language not listed: unknown fails closed.
    return account()


def parse_cloudstorage_folder(name: str) -> tuple[str, dict[str, Any]] | None:
    """One ~/Library/CloudStorage entry → (client, account) or None if not a known provider."""
    name = unicodedata.normalize("NFC", name)  # a file name may come decomposed (NFD)
    provider, _, rest = name.partition("-")
    client = PROVIDERS.get(provider.lower())
    if client is None:
        return None
    if client == "onedrive":
        return client, _onedrive_account(rest)
    if client == "google_drive":
        domain = email_domain(rest)
        kind = "personal" if domain in CONSUMER_DOMAINS else None
        return client, account(kind=kind, email_domain=domain)
    if client == "dropbox":
        if rest.lower() == "personal":
            return client, account(kind="personal")
        return client, account(kind="business" if rest else None, tenant=rest or None)
    return client, account()


def probe(ctx: ProbeContext) -> dict[str, Any]:
    reasons: list[str] = []
    clients: dict[str, dict[str, Any]] = {}
    homes = ctx.host.home_dirs()

    def client(name: str) -> dict[str, Any]:
        return clients.setdefault(name, new_client(name))

    for base in ["/Applications"] + [f"{h.rstrip('/')}/Applications" for h in homes]:
        for path in ctx.host.glob(f"{base}/*.app"):
            name = APPS.get(path.rsplit("/", 1)[-1])
            if name:
                c = client(name)
                c["installed"] = True
                add_evidence(c, f"app:{shorten_home(path, homes)}")
    for home in homes:
        h = home.rstrip("/")
        try:
            entries = ctx.host.listdir(f"{h}/Library/CloudStorage")
        except (FileNotFoundError, NotADirectoryError):
            entries = []
        except OSError as exc:
            reasons.append(reason("file.unreadable", "~/Library/CloudStorage", exc.__class__.__name__))
            entries = []
        for entry in entries:
            parsed = parse_cloudstorage_folder(entry)
            if parsed:
                name, acc = parsed
                c = client(name)
                c["installed"] = True
                add_account(c, acc)
                # The folder name holds the e-mail for Google Drive: evidence names the provider only.
                add_evidence(c, f"file:~/Library/CloudStorage/{entry.split('-', 1)[0]}-…" if "@" in entry
                             else f"file:~/Library/CloudStorage/{entry}")
        if ctx.host.is_dir(f"{h}/Library/Mobile Documents/com~apple~CloudDocs"):
            c = client("icloud")
            c["installed"] = True
            add_evidence(c, "file:~/Library/Mobile Documents/com~apple~CloudDocs")
        read_client_configs(ctx, clients, (
            ("dropbox", f"{h}/.dropbox/info.json", parse_dropbox_info_json),
            ("nextcloud", f"{h}/Library/Preferences/Nextcloud/nextcloud.cfg", parse_nextcloud_cfg),
            ("owncloud", f"{h}/Library/Preferences/ownCloud/owncloud.cfg", parse_nextcloud_cfg)), homes, reasons)
    try:
        procs = ctx.host.processes()
    except Exception as exc:  # noqa: BLE001
        procs = []
        reasons.append(reason("processes.unreadable", None, exc))
    for p in procs:
        name = PROCESSES.get((p.name or "").lower())
        if name:
            c = client(name)
            c["running"] = c["installed"] = True
            add_evidence(c, f"process:{p.name}")
    return {"status": "partial" if reasons else "ok", "reasons": reasons,
            "clients": [clients[k] for k in sorted(clients)]}

