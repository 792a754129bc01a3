"""macOS cloud storage (File Provider folder names, app configs)."""
from __future__ import annotations

from conftest import shared

from auditagent.host import ReplayHost
from auditagent.probes import ProbeContext
from auditagent.probes.cloud_storage.macos import probe as cloud_macos
from auditagent.probes.cloud_storage.macos import parse_cloudstorage_folder


def test_cloudstorage_folder_names():
    assert parse_cloudstorage_folder("OneDrive-Personal") == ("onedrive", {"kind": "personal", "tenant": None,
                                                                           "server": None, "email_domain": None})
    assert parse_cloudstorage_folder("OneDrive-Contoso")[1]["kind"] == "business"
    assert parse_cloudstorage_folder("OneDrive-Contoso")[1]["tenant"] == "Contoso"
    assert parse_cloudstorage_folder("GoogleDrive-anna@example.com")[1]["email_domain"] == "example.com"
    assert parse_cloudstorage_folder("GoogleDrive-anna@gmail.com")[1]["kind"] == "personal"
    assert parse_cloudstorage_folder("Box-Box")[0] == "box"
    assert parse_cloudstorage_folder("Dropbox")[0] == "dropbox"
    assert parse_cloudstorage_folder(".DS_Store") is None


def test_macos_dropbox_info_json_and_icloud(tmp_path):
    home = tmp_path / "Users" / "anna"
    (home / ".dropbox").mkdir(parents=True)
    (home / ".dropbox" / "info.json").write_bytes(
        shared("cloud/dropbox/info-json-personal-and-business-windows.json").read_bytes())
    (home / "Library" / "Mobile Documents" / "com~apple~CloudDocs").mkdir(parents=True)
    host = ReplayHost(platform="macos", root=tmp_path, homes=["/Users/anna"])
    clients = {c["name"]: c for c in cloud_macos(ProbeContext(host))["clients"]}
    assert sorted(a["kind"] for a in clients["dropbox"]["accounts"]) == ["business", "personal"]
    assert clients["icloud"]["installed"] and clients["icloud"]["accounts"] == []

