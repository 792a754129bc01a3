"""macOS cloud storage (File Provider folder names, app configs)."""
from __future__ import annotations

import unicodedata

import pytest
from conftest import OWN_FIXTURES, shared

from auditagent.host import ReplayHost
from auditagent.probes import ProbeContext
from auditagent.probes.cloud_storage.macos import probe as cloud_macos
from auditagent.probes.cloud_storage.macos import parse_cloudstorage_folder


def test_cloudstorage_folder_names():
    assert parse_cloudstorage_folder("OneDrive-Personal") == ("onedrive", {"kind": "personal", "tenant": None,
                                                                           "server": None, "email_domain": None})
    # the organisation's display name is not its tenant id; whether it is work is not certain either
    assert parse_cloudstorage_folder("OneDrive-Contoso")[1] == {"kind": None, "tenant": None, "server": None,
                                                                "email_domain": None}
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



@pytest.mark.parametrize("name,kind", [
    ("cloudstorage-entry-onedrive-personal-english.txt", "personal"),
    ("cloudstorage-entry-onedrive-personligt-danish.txt", "personal"),
    ("cloudstorage-entry-onedrive-personlig-norwegian.txt", "personal"),
    ("cloudstorage-entry-onedrive-persoenlich-german.txt", "personal"),
    ("cloudstorage-entry-onedrive-personal-chinese.txt", "personal"),
    ("cloudstorage-entry-onedrive-personal-japanese.txt", "personal"),
    # an organisation's display name: work or a language we do not know, and not a tenant id
    ("cloudstorage-entry-onedrive-organisation-tecnun.txt", None),
    ("cloudstorage-entry-onedrive-organisation-domain-udd-cl.txt", None),
    ("cloudstorage-entry-onedrive-sharedlibraries-georgia-tech.txt", "business"),
])
def test_public_onedrive_folder_names(name, kind):
    entry = (OWN_FIXTURES / "public/macos/cloud_storage" / name).read_text(encoding="utf-8").strip()
    client, acc = parse_cloudstorage_folder(entry)
    assert client == "onedrive" and acc == {"kind": kind, "tenant": None, "server": None, "email_domain": None}
    # APFS may hand back the decomposed form of "ö": the same folder
    assert parse_cloudstorage_folder(unicodedata.normalize("NFD", entry)) == (client, acc)


def test_public_danish_personal_onedrive_is_not_approved_as_work():
    from auditagent.evaluate import account_matches
    entry = (OWN_FIXTURES / "public/macos/cloud_storage/cloudstorage-entry-onedrive-personligt-danish.txt") \
        .read_text(encoding="utf-8").strip()
    _, acc = parse_cloudstorage_folder(entry)
    assert account_matches({"client": "onedrive", "kind": "business"}, acc) is False
