"""Windows cloud storage: real Dropbox info.json, OneDrive registry (real dumps and synthetic), processes."""
from __future__ import annotations

from conftest import shared
from _winhelpers import windows_host

from auditagent.host import ProcessInfo
from auditagent.probes import ProbeContext
from auditagent.probes.cloud_storage.windows import onedrive_account
from auditagent.probes.cloud_storage.windows import probe as cloud_windows


def test_dropbox_personal_and_business_real_capture_and_nextcloud_cfg():
    host = windows_host(None, homes=["C:\\Users\\anna"], env={"USERNAME": "anna"})
    host.add_file("C:\\Users\\anna\\AppData\\Local\\Dropbox\\info.json",
                  shared("cloud/dropbox/info-json-personal-and-business-windows.json"))
    host.add_file("C:\\Users\\anna\\AppData\\Roaming\\Nextcloud\\nextcloud.cfg",
                  shared("cloud/nextcloud/nextcloud-cfg-linux-3.16.2-partial.cfg"))
    host.process_list = [ProcessInfo(1, "Dropbox.exe"), ProcessInfo(2, "GoogleDriveFS.exe")]
    clients = {c["name"]: c for c in cloud_windows(ProbeContext(host))["clients"]}
    assert sorted(a["kind"] for a in clients["dropbox"]["accounts"]) == ["business", "personal"]
    assert clients["dropbox"]["running"] and "file:~\\AppData\\Local\\Dropbox\\info.json" in clients["dropbox"]["evidence"]
    # The partial capture has no account url: the server stays unseen, not "none".
    assert clients["nextcloud"]["accounts"] == [{"kind": None, "tenant": None, "server": None, "email_domain": None}]
    assert clients["google_drive"]["running"] and clients["google_drive"]["accounts"] == []


def test_onedrive_account_keys():
    biz = onedrive_account("Business1", {"UserEmail": "a@Contoso.example", "ConfiguredTenantId": "t-1", "Business": 1})
    assert biz == {"kind": "business", "tenant": "t-1", "server": None, "email_domain": "contoso.example"}
    assert onedrive_account("Personal", {"UserEmail": "b@outlook.com", "cid": "x"})["kind"] == "personal"
    assert onedrive_account("Business2", {}) is None  # key left behind after sign-out


def test_system_run_reads_loaded_user_hives_not_systems_own():
    sid = "S-1-5-21-1-2-3-1001"
    host = windows_host(None, env={"USERNAME": "PC1$"}, registry={
        f"HKU\\{sid}\\Software\\Microsoft\\OneDrive\\Accounts\\Business1": {"UserEmail": "x@tenant.example",
                                                                           "ConfiguredTenantId": "abc"},
        "HKCU\\Software\\Microsoft\\OneDrive\\Accounts\\Personal": {"UserEmail": "system@wrong.example"},
    })
    clients = cloud_windows(ProbeContext(host))["clients"]
    assert clients[0]["accounts"] == [{"kind": "business", "tenant": "abc", "server": None,
                                       "email_domain": "tenant.example"}]
    assert clients[0]["evidence"] == [f"registry:HKU\\{sid}\\Software\\Microsoft\\OneDrive\\Accounts\\Business1"]


# ---------------------------------------------------------------- public captures (metasploit enum_onedrive)
# The module prints each HKU\<SID>\Software\Microsoft\OneDrive\Accounts\<name> key it finds as
# "  <name>" / "  ====" and one "    Value: data" line per value it reads (Business,
# ServiceEndpointUri, SPOResourceId, UserEmail, UserFolder, UserName); "|" lines are the mounted
# libraries from SyncEngines\Providers\OneDrive, and "ORPHANED" lists a library whose account key
# is gone. These helpers turn such a transcript back into the registry the module read.

import re  # noqa: E402

from conftest import OWN_FIXTURES  # noqa: E402

_SID_LINE = re.compile(r"^\[\*\] Looking for OneDrive sync information for (S-1-5-21-[\d-]+)$")
_VALUE_LINE = re.compile(r"^ {4}(\w+): (.*)$")


def registry_from_enum_onedrive(text: str) -> dict[str, dict[str, object]]:
    lines = text.splitlines()
    registry: dict[str, dict[str, object]] = {}
    sid, account = None, None
    for i, line in enumerate(lines):
        m = _SID_LINE.match(line)
        if m:
            sid, account = m.group(1), None
            registry.setdefault(f"HKU\\{sid}\\Volatile Environment", {})  # the hive is loaded
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if sid and re.fullmatch(r"  \w+", line) and re.fullmatch(r"  =+", nxt):
            name = line.strip()
            account = None if name == "ORPHANED" else f"HKU\\{sid}\\Software\\Microsoft\\OneDrive\\Accounts\\{name}"
            if account:
                registry[account] = {}
            continue
        m = _VALUE_LINE.match(line)
        if account and m:
            value = m.group(2)
            registry[account][m.group(1)] = int(value) if m.group(1) == "Business" else value  # REG_DWORD
    return registry


def _cloud_from_capture(name: str) -> dict:
    registry = registry_from_enum_onedrive((OWN_FIXTURES / "public/windows/cloud_storage" / name).read_text())
    host = windows_host(None, env={"USERNAME": "DESKTOP$"}, registry=registry)  # a SYSTEM run reads HKU
    return cloud_windows(ProbeContext(host))


def test_public_enum_onedrive_business_and_personal_accounts():
    out = _cloud_from_capture("msf-enum-onedrive-win10-2004-business1-and-personal.txt")
    (onedrive,) = out["clients"]
    assert onedrive["name"] == "onedrive" and onedrive["installed"] is True
    assert onedrive["accounts"] == [
        {"kind": "business", "tenant": None, "server": "https://testing33sdf-my.sharepoint.com",
         "email_domain": "testing33sdf.onmicrosoft.com"},
        {"kind": "personal", "tenant": None, "server": None, "email_domain": "jentrix.com"},
    ]
    sid = "S-1-5-21-3917347361-1576396349-327053466-1002"
    assert onedrive["evidence"] == [f"registry:HKU\\{sid}\\Software\\Microsoft\\OneDrive\\Accounts\\Business1",
                                    f"registry:HKU\\{sid}\\Software\\Microsoft\\OneDrive\\Accounts\\Personal"]
    # Data minimisation: the user's part of the address and of ServiceEndpointUri stays behind.
    assert "test_testing33sdf" not in repr(out) and "giziw21000" not in repr(out)


def test_public_enum_onedrive_orphaned_library_is_not_an_account():
    out = _cloud_from_capture("msf-enum-onedrive-win10-2004-personal-and-orphaned-mysite.txt")
    (onedrive,) = out["clients"]
    assert onedrive["accounts"] == [{"kind": "personal", "tenant": None, "server": None,
                                     "email_domain": "jentrix.com"}]


def test_public_enum_onedrive_not_installed_gives_no_client():
    out = _cloud_from_capture("msf-enum-onedrive-win10-2004-not-installed.txt")
    assert out["clients"] == [] and out["status"] == "ok"


def test_public_enum_onedrive_business_with_team_sites_keeps_only_the_organisations_sharepoint():
    out = _cloud_from_capture("msf-enum-onedrive-business1-teamsites-mwrdemo.txt")
    (onedrive,) = out["clients"]
    assert onedrive["accounts"] == [{"kind": "business", "tenant": None, "server": "https://demo1-my.sharepoint.com",
                                     "email_domain": "mwrdemo.com"}]
    assert "stuart_mwrdemo_com" not in repr(out)


def test_public_business_account_approved_by_sharepoint_host_or_unknown_by_tenant():
    """A policy that approves OneDrive business by tenant id cannot judge these real keys (no
    ConfiguredTenantId is shown): unknown, never pass. Approved by the SharePoint host: pass."""
    from auditagent.evaluate import account_matches
    (onedrive,) = _cloud_from_capture("msf-enum-onedrive-business1-teamsites-mwrdemo.txt")["clients"]
    (acc,) = onedrive["accounts"]
    assert account_matches({"client": "onedrive", "kind": "business",
                            "tenant": "00000000-0000-0000-0000-000000000000"}, acc) is None
    assert account_matches({"client": "onedrive", "kind": "business",
                            "server": "https://demo1-my.sharepoint.com"}, acc) is True
    assert account_matches({"client": "onedrive", "kind": "business",
                            "server": "https://contoso-my.sharepoint.com"}, acc) is False


def test_service_endpoint_host_when_spo_resource_id_is_missing():
    acc = onedrive_account("Business2", {"UserEmail": "a@b.example", "Business": "1",
                                         "ServiceEndpointUri": "https://b-my.sharepoint.com/personal/a_b_example/_api"})
    assert acc["server"] == "https://b-my.sharepoint.com"
