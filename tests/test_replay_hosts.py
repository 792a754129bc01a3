"""Whole checks on the replay hosts under tests/fixtures/hosts: every section has the
shape docs/facts.md promises (the same keys the Linux sections produce)."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import OWN_FIXTURES

from auditagent.host import load_replay_host
from auditagent.probes import PROBES, ProbeContext, collect

MANIFESTS = sorted((OWN_FIXTURES / "hosts").glob("*/host.yaml"))
STATUSES = {"ok", "partial", "unknown", "not_applicable"}
KEYS = {
    "os": {"id", "id_like", "name", "version", "build", "release", "edition", "kernel", "arch"},
    "disk": {"volumes"},
    "patches": {"manager", "last_update", "pending", "pending_security", "pending_security_oldest_days",
                "pending_names", "reboot_required", "offered_upgrades", "cached_at", "cache_ttl_seconds"},
    "cloud": {"clients"},
    "firewall": {"enabled", "backend", "default_inbound", "profiles", "rules"},
    "screen_lock": {"enabled", "idle_seconds", "desktop"},
    "antimalware": {"product", "realtime", "signature_age_days"},
}
VOLUME_KEYS = {"mount", "device", "role", "fixed", "encrypted", "method", "state", "percent", "stack", "detail"}
CLIENT_KEYS = {"name", "installed", "running", "accounts", "evidence"}
ACCOUNT_KEYS = {"kind", "tenant", "server", "email_domain"}
CLIENT_NAMES = {"onedrive", "dropbox", "google_drive", "icloud", "box", "nextcloud", "owncloud", "megasync",
                "pcloud", "jottacloud", "syncthing", "sync_com"}


def check_shape(facts: dict) -> None:
    assert facts["platform"] in ("linux", "windows", "macos") and facts["collected_at"]
    for name in PROBES:
        section = facts[name]
        assert section["status"] in STATUSES, (name, section)
        assert isinstance(section["reasons"], list) and all(isinstance(r, str) for r in section["reasons"])
        if section["status"] == "not_applicable":
            continue
        assert set(section) == KEYS[name] | {"status", "reasons"}, (name, set(section) ^ KEYS[name])
        if section["status"] in ("partial", "unknown"):
            assert section["reasons"], f"{name}: {section['status']} without a reason"
    for v in facts["disk"]["volumes"]:
        assert set(v) == VOLUME_KEYS
        assert v["role"] in ("system", "home", "data", "swap") and isinstance(v["fixed"], bool)
        assert v["encrypted"] in (True, False, None)
        assert v["state"] in (None, "encrypted", "encrypting", "decrypting", "suspended", "decrypted", "locked",
                              "waiting_activation", "clear_key", "deferred", "pending_restart")
        assert isinstance(v["stack"], list) and isinstance(v["detail"], dict)
    for c in facts["cloud"]["clients"]:
        assert set(c) == CLIENT_KEYS and c["name"] in CLIENT_NAMES
        for a in c["accounts"]:
            assert set(a) == ACCOUNT_KEYS and a["kind"] in ("personal", "business", None)
            assert a["email_domain"] is None or "@" not in a["email_domain"]
        assert all(isinstance(e, str) and "\\Users\\" not in e and "/Users/" not in e for e in c["evidence"])
    fw = facts["firewall"]
    assert fw["default_inbound"] in ("drop", "accept", None)
    if fw["profiles"] is not None:
        assert set(fw["profiles"]) == {"domain", "private", "public"}


def _facts(name: str) -> dict:
    return collect(ProbeContext(load_replay_host(OWN_FIXTURES / "hosts" / name / "host.yaml")))


def test_manifests_exist():
    names = {p.parent.name for p in MANIFESTS}
    assert {"windows-win11-compliant", "windows-bitlocker-suspended-private-cloud",
            "macos-filevault-google-drive"} <= names


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: Path(p).parent.name)
def test_every_section_has_the_contract_shape(manifest):
    check_shape(collect(ProbeContext(load_replay_host(manifest))))


def test_windows_11_compliant_laptop():
    f = _facts("windows-win11-compliant")
    assert f["platform"] == "windows"
    assert f["os"]["name"] == "Microsoft Windows 11 Enterprise" and f["os"]["build"] == "22631.2428"
    assert [(v["mount"], v["encrypted"], v["state"]) for v in f["disk"]["volumes"]] == [("C:", True, "encrypted")]
    assert f["disk"]["volumes"][0]["detail"]["protectors"] == ["Tpm", "RecoveryPassword"]
    (od,) = f["cloud"]["clients"]
    assert od["name"] == "onedrive" and od["running"]
    assert od["accounts"] == [{"kind": "business", "tenant": "72f988bf-0000-4000-8000-2d7cd011db47",
                               "server": None, "email_domain": "contoso.example"}]
    assert f["firewall"]["enabled"] is True and f["firewall"]["default_inbound"] == "drop"
    assert (f["screen_lock"]["enabled"], f["screen_lock"]["idle_seconds"]) == (True, 300)
    assert f["antimalware"]["realtime"] is True and f["antimalware"]["signature_age_days"] < 7
    assert f["patches"]["last_update"] == "2023-10-12T00:00:00+00:00" and f["patches"]["pending"] == 0
    assert all(f[s]["status"] == "ok" for s in PROBES)


def test_windows_suspended_bitlocker_private_cloud():
    f = _facts("windows-bitlocker-suspended-private-cloud")
    vols = {v["mount"]: v for v in f["disk"]["volumes"]}
    assert (vols["C:"]["encrypted"], vols["C:"]["state"]) == (False, "suspended")
    assert (vols["D:"]["state"], vols["D:"]["percent"]) == ("encrypting", 42.5)
    clients = {c["name"]: c for c in f["cloud"]["clients"]}
    assert [a["kind"] for a in clients["dropbox"]["accounts"]] == ["personal"]
    assert clients["onedrive"]["accounts"][0]["kind"] == "personal"
    assert f["firewall"]["enabled"] is False and f["firewall"]["profiles"]["private"] is False
    assert f["screen_lock"]["enabled"] is False
    assert f["antimalware"]["realtime"] is False
    assert (f["patches"]["pending_security"], f["patches"]["reboot_required"]) == (1, True)


def test_macos_laptop():
    f = _facts("macos-filevault-google-drive")
    assert f["platform"] == "macos" and f["antimalware"]["status"] == "not_applicable"
    system = [v for v in f["disk"]["volumes"] if v["role"] == "system"]
    assert {v["mount"] for v in system} == {"/", "/System/Volumes/Data"} and all(v["encrypted"] for v in system)
    (gd,) = f["cloud"]["clients"]
    assert gd["name"] == "google_drive" and gd["accounts"][0]["email_domain"] == "example.com" and gd["running"]
    assert f["firewall"]["enabled"] is True and f["firewall"]["rules"] == 6
    assert f["screen_lock"]["idle_seconds"] == 305
    # Ventura offered to a Catalina Mac is an upgrade: neither a pending patch nor a pending restart.
    assert (f["patches"]["reboot_required"], f["patches"]["pending"]) == (False, 0)
    assert f["patches"]["offered_upgrades"] == ["macOS Ventura 13.3.1"]


def test_opensuse_laptop_patches_from_zypper_xml():
    f = _facts("linux-opensuse-leap-zypper")
    p = f["patches"]
    assert (p["manager"], p["pending"], p["pending_security"], p["reboot_required"]) == ("zypper", 3, 2, True)
    assert p["pending_names"] == ["openSUSE-Leap-16.0-112", "openSUSE-Leap-16.0-113"]
    assert p["last_update"] == "2025-11-20T08:00:00+00:00" and p["status"] == "ok"
    assert f["os"]["id"] == "opensuse-leap" and f["os"]["version"] == "15.6"
