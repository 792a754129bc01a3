"""Parsers of file-sync clients' own config files, shared by every OS.

Pure functions: text in, account facts out (docs/facts.md ``cloud.clients[].accounts``).
Data minimisation: an e-mail address is reduced to its domain here, at the edge,
so a full address never enters the fact tree.
"""
from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

Account = dict[str, Any]  # {kind, tenant, server, email_domain}


def account(kind: str | None = None, tenant: str | None = None, server: str | None = None,
            email_domain: str | None = None) -> Account:
    return {"kind": kind, "tenant": tenant, "server": server, "email_domain": email_domain}


def email_domain(address: str | None) -> str | None:
    """``anna@Example.ORG`` → ``example.org``; anything that is not an address → None."""
    if not address or "@" not in address:
        return None
    domain = address.strip().rsplit("@", 1)[1].strip().strip(">").lower()
    return domain if re.fullmatch(r"[a-z0-9.-]+\.[a-z0-9-]+", domain) else None


def server_url(url: str | None) -> str | None:
    """scheme://host[:port][/path] — credentials, query and fragment dropped."""
    if not url or not url.strip():
        return None
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.hostname:
        return None
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    path = parts.path.rstrip("/")
    return f"{parts.scheme.lower()}://{host}{path}"


# --------------------------------------------------------------------------- Dropbox


def parse_dropbox_info_json(text: str) -> list[Account]:
    """``info.json`` (~/.dropbox/info.json, %LocalAppData%\\Dropbox\\info.json): one top-level
    key per linked account, ``personal`` and/or ``business``. It carries no e-mail address;
    ``is_team``/``subscription_type`` say whether the account belongs to a team."""
    data = json.loads(text)
    accounts: list[Account] = []
    if not isinstance(data, dict):
        return accounts
    for key, entry in data.items():
        if not isinstance(entry, dict):
            continue
        if key == "business" or entry.get("is_team") is True:
            kind: str | None = "business"
        elif key == "personal":
            kind = "personal"
        else:
            kind = None
        accounts.append(account(kind=kind))
    return accounts


# --------------------------------------------------------------------------- Nextcloud / ownCloud


def parse_qt_ini(text: str) -> dict[str, dict[str, str]]:
    """QSettings INI: ``[Section]`` then ``key=value``; keys may hold ``\\`` (array index paths)."""
    sections: dict[str, dict[str, str]] = {}
    current = sections.setdefault("General", {})
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith((";", "#")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        if sep:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            current[key.strip()] = value
    return sections


def parse_nextcloud_cfg(text: str) -> list[Account]:
    """``nextcloud.cfg`` / ``owncloud.cfg``: accounts are ``[Accounts]`` keys ``<n>\\url``,
    ``<n>\\dav_user`` (often the e-mail), ``<n>\\webflow_user``. An account whose url line is
    missing keeps ``server`` None: not seen is not the same as no server."""
    accounts_sec = parse_qt_ini(text).get("Accounts", {})
    by_index: dict[str, dict[str, str]] = {}
    for key, value in accounts_sec.items():
        index, sep, rest = key.partition("\\")
        if sep and index.isdigit():
            by_index.setdefault(index, {})[rest] = value
    accounts = []
    for index in sorted(by_index, key=int):
        keys = by_index[index]
        user = next((keys[k] for k in ("dav_user", "webflow_user", "user", "http_user") if keys.get(k)), None)
        accounts.append(account(server=server_url(keys.get("url")), email_domain=email_domain(user)))
    return accounts


# --------------------------------------------------------------------------- OneDrive (abraunegg)


def parse_onedrive_display_config(text: str) -> dict[str, Any]:
    """``onedrive --display-config`` of the abraunegg Linux client: ``name = value`` lines.
    Returns {options: {...}, config_path, business: bool|None, account: Account}.
    Business is seen from a business-only option (shared folders, an Entra tenant) or
    ``drive_id``'s shape; otherwise left None."""
    options: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"\s*(.+?)\s+=\s?(.*)$", line)
        if not m:
            continue
        name, value = m.group(1).strip(), m.group(2).strip()
        opt = re.fullmatch(r"Config option '([^']+)'", name)
        options[opt.group(1) if opt else name] = value
    tenant = options.get("azure_tenant_id") or None
    business: bool | None = None
    if options.get("Business Shared Folders configured", "").lower() == "true" or tenant:
        business = True
    elif options.get("sync_business_shared_items", "").lower() == "true":
        business = True
    drive_id = options.get("drive_id") or ""
    if business is None and drive_id.startswith("b!"):  # SharePoint/Business drive ids
        business = True
    return {
        "options": options,
        "config_path": options.get("Config path"),
        "business": business,
        "account": account(kind="business" if business else None, tenant=tenant),
    }


def parse_onedrive_config_file(text: str) -> dict[str, str]:
    """abraunegg ``config`` file: ``# comment`` / ``key = "value"``."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip('"')
    return out


# --------------------------------------------------------------------------- Syncthing


def parse_syncthing_config(xml_text: str) -> dict[str, Any]:
    """``config.xml``: {devices: n, folders: n, remote_devices: n} — the local device is
    listed among the devices too, so remote = devices - 1 when there is one."""
    import xml.etree.ElementTree as ET  # only where Syncthing is configured

    root = ET.fromstring(xml_text)
    devices = root.findall("device")
    folders = root.findall("folder")
    return {"devices": len(devices), "folders": len(folders), "remote_devices": max(len(devices) - 1, 0)}
