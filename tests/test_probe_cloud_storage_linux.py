"""Linux cloud probe and the shared config parsers: shared captures, replayed homes, this machine."""
from __future__ import annotations

import json

from auditagent.host import ProcessInfo, RealHost, ReplayHost
from auditagent.probes import ProbeContext
from auditagent.probes.cloud_storage.configs import (email_domain, parse_dropbox_info_json, parse_nextcloud_cfg,
                                              parse_onedrive_config_file, parse_onedrive_display_config,
                                              parse_syncthing_config, server_url)
from auditagent.probes.cloud_storage.linux import probe as linux, tilde
from conftest import OWN_FIXTURES, shared

DROPBOX = "cloud/dropbox/info-json-personal-and-business-windows.json"
NEXTCLOUD = "cloud/nextcloud/nextcloud-cfg-linux-3.16.2-partial.cfg"
ONEDRIVE = "cloud/onedrive/abraunegg-onedrive-display-config-business-shared-folders.txt"
SYNCTHING = OWN_FIXTURES / "cloud" / "syncthing-config-two-devices-three-folders.xml"
NO_ACCOUNT = {"kind": None, "tenant": None, "server": None, "email_domain": None}


def test_email_domain_and_server_url():
    assert email_domain("Anna.Berg@Kommun.Example.SE") == "kommun.example.se"
    assert email_domain("anna") is None and email_domain(None) is None
    assert server_url("https://user:pw@cloud.example.org:8443/nextcloud/?x=1") == "https://cloud.example.org:8443/nextcloud"
    assert server_url("") is None and server_url("not a url") is None


def test_dropbox_info_json_personal_and_business():
    accounts = parse_dropbox_info_json(shared(DROPBOX).read_text())
    assert accounts == [{**NO_ACCOUNT, "kind": "business"}, {**NO_ACCOUNT, "kind": "personal"}]


def test_nextcloud_partial_cfg_has_account_without_server():
    # the capture stops before 0\url: the account exists, its server was not seen
    assert parse_nextcloud_cfg(shared(NEXTCLOUD).read_text()) == [NO_ACCOUNT]


def test_nextcloud_cfg_with_url_and_dav_user():
    text = shared(NEXTCLOUD).read_text() + "0\\url=https://moln.example.se/\n0\\dav_user=anna@example.se\n" \
        "1\\url=https://cloud.other.org\n1\\dav_user=bo\n"
    assert parse_nextcloud_cfg(text) == [
        {**NO_ACCOUNT, "server": "https://moln.example.se", "email_domain": "example.se"},
        {**NO_ACCOUNT, "server": "https://cloud.other.org"}]


def test_onedrive_display_config_business():
    parsed = parse_onedrive_display_config(shared(ONEDRIVE).read_text())
    assert parsed["business"] is True and parsed["account"]["kind"] == "business"
    assert parsed["config_path"] == "/home/exampleuser/.config/onedrive-business/"
    assert parsed["options"]["sync_dir"] == "/home/exampleuser/OneDriveBusiness"
    assert parsed["options"]["skip_dir"] == ""
    assert parsed["options"]["onedrive version"] == "v2.4.6-17-gff25371"


def test_onedrive_config_file():
    opts = parse_onedrive_config_file('# c\nsync_dir = "~/OneDrive"\nazure_tenant_id = "0c5b5a1e-1111-2222-3333-444455556666"\n')
    assert opts == {"sync_dir": "~/OneDrive", "azure_tenant_id": "0c5b5a1e-1111-2222-3333-444455556666"}


def test_syncthing_config_counts():
    assert parse_syncthing_config(SYNCTHING.read_text()) == {"devices": 2, "folders": 3, "remote_devices": 1}


def anna_host() -> ReplayHost:
    home = "/home/anna"
    host = ReplayHost(homes=[home, "/home/bo"], env={"HOME": home}, process_list=[
        ProcessInfo(4100, "dropbox", "/home/anna/.dropbox-dist/dropbox-lnx.x86_64-195.4.4995/dropbox", (), "anna"),
        ProcessInfo(4200, "syncthing", "/usr/bin/syncthing", ("/usr/bin/syncthing", "serve"), "anna"),
        ProcessInfo(4300, "bash", "/usr/bin/bash", (), "anna"),
    ])
    host.add_file(f"{home}/.dropbox/info.json", shared(DROPBOX))
    host.add_file(f"{home}/.dropbox-dist/VERSION", "195.4.4995\n")
    host.add_file(f"{home}/.config/Nextcloud/nextcloud.cfg", shared(NEXTCLOUD))
    host.add_file(f"{home}/.config/onedrive-business/config", 'sync_dir = "~/OneDriveBusiness"\n')
    host.add_file(f"{home}/.config/onedrive-business/refresh_token", "secret-token-never-read\n")
    host.add_command(["onedrive", "--display-config", "--confdir", f"{home}/.config/onedrive-business"],
                     shared(ONEDRIVE))
    host.add_file(f"{home}/.local/state/syncthing/config.xml", SYNCTHING)
    host.add_file("/usr/share/applications/com.nextcloud.desktopclient.nextcloud.desktop", "[Desktop Entry]\n")
    host.add_file("/home/bo/.config/goa-1.0/accounts.conf",
                  "[Account account_1700000000_0]\nProvider=google\nIdentity=bo.berg@gmail.com\n"
                  "PresentationIdentity=bo.berg@gmail.com\nFilesEnabled=true\nMailEnabled=true\n"
                  "[Account account_1700000001_0]\nProvider=ms_graph\nIdentity=bo@kommun.example.se\n"
                  "FilesEnabled=false\n")
    host.add_file("/home/bo/.config/rclone/rclone.conf",
                  "[work]\ntype = onedrive\ndrive_type = business\ntoken = {\"x\":1}\n")
    host.programs.add("syncthing")
    return host


def test_probe_finds_clients_accounts_and_minimises_data():
    s = linux(ProbeContext(anna_host()))
    assert s["status"] == "ok", s["reasons"]
    clients = {c["name"]: c for c in s["clients"]}
    assert list(clients) == ["dropbox", "google_drive", "onedrive", "nextcloud", "syncthing"]
    dbx = clients["dropbox"]
    assert dbx["installed"] and dbx["running"]
    assert [a["kind"] for a in dbx["accounts"]] == ["business", "personal"]
    assert "process:dropbox" in dbx["evidence"] and "file:~/.dropbox/info.json" in dbx["evidence"]
    od = clients["onedrive"]
    assert od["installed"] is True and od["running"] is False  # onedrive binary replayed via its command
    assert od["accounts"] == [{**NO_ACCOUNT, "kind": "business"}]
    assert "file:~/.config/onedrive-business/config" in od["evidence"]
    nc = clients["nextcloud"]
    assert nc["installed"] and not nc["running"] and nc["accounts"] == [NO_ACCOUNT]
    gd = clients["google_drive"]
    assert gd["accounts"] == [{**NO_ACCOUNT, "email_domain": "gmail.com"}] and gd["installed"]
    st = clients["syncthing"]
    assert st["running"] and st["detail"] == {"devices": 2, "folders": 3, "remote_devices": 1}
    blob = json.dumps(s)
    assert "@" not in blob and "/home/anna" not in blob and "secret-token" not in blob


def test_probe_nothing_found():
    s = linux(ProbeContext(ReplayHost(homes=["/home/x"])))
    assert s == {"status": "ok", "reasons": [], "clients": []}


def test_probe_without_homes_says_so():
    s = linux(ProbeContext(ReplayHost()))
    assert s["status"] == "partial" and s["reasons"]


def test_tilde():
    assert tilde("/home/anna/.config/x", "/home/anna") == "~/.config/x"
    assert tilde("/home/annabel/x", "/home/anna") == "/home/annabel/x"


def test_live_this_machine():
    s = linux(ProbeContext(RealHost("linux")))
    assert s["status"] in ("ok", "partial")
    for c in s["clients"]:
        assert c["evidence"] and (c["installed"] or c["running"] or c["accounts"] or c["evidence"])
    assert "@" not in json.dumps(s)
