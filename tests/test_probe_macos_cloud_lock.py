"""macOS cloud storage (File Provider folder names) and screen lock."""
from __future__ import annotations

from conftest import OWN_FIXTURES, shared

from auditagent.host import ReplayHost
from auditagent.probes import ProbeContext
from auditagent.probes._macos_cloud import macos as cloud_macos
from auditagent.probes._macos_cloud import parse_cloudstorage_folder
from auditagent.probes._macos_screen_lock import evaluate, parse_sysadminctl_screenlock
from auditagent.probes._macos_screen_lock import macos as lock_macos


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


def test_screen_lock_rules():
    assert evaluate(300, None, True, 5) == (True, 305)
    assert evaluate(1200, 600, True, 0) == (True, 600)  # the display sleeps first
    assert evaluate(0, 0, True, 0) == (False, None)
    assert evaluate(300, None, False, 0) == (False, None)
    assert evaluate(300, None, None, None) == (None, None)


def test_sysadminctl_only_plain_forms():
    assert parse_sysadminctl_screenlock("screenLock delay is 300 seconds") == 300
    assert parse_sysadminctl_screenlock("screenLock is immediate") == 0
    assert parse_sysadminctl_screenlock("screenLock is off") is False
    assert parse_sysadminctl_screenlock("Skärmlås är av") is None


def test_screen_lock_from_profile():
    host = ReplayHost(platform="macos", homes=["/Users/anna"])
    host.add_file("/Library/Managed Preferences/com.apple.screensaver.plist",
                  OWN_FIXTURES / "synthetic/macos/synthetic-managed-com.apple.screensaver.plist")
    s = lock_macos(ProbeContext(host))
    assert (s["enabled"], s["idle_seconds"], s["status"]) == (True, 305, "ok")
    s = lock_macos(ProbeContext(ReplayHost(platform="macos", homes=["/Users/anna"])))
    assert s["enabled"] is None and s["status"] == "unknown"
