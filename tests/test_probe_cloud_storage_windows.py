"""Windows cloud storage: real Dropbox info.json, OneDrive registry (synthetic), processes."""
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
