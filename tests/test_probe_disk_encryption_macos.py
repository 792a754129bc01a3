"""macOS FileVault: every capture under macos/encryption."""
from __future__ import annotations

from conftest import shared

from auditagent.host import ReplayHost
from auditagent.probes import ProbeContext
from auditagent.probes.disk_encryption.macos import (parse_apfs_list_plist, parse_apfs_list_text, parse_fdesetup_status, volume_facts)
from auditagent.probes.disk_encryption.macos import probe as disk_macos
from auditagent.probes.sources.macos_mdmclient import fde_enabled, firewall, parse_security_info

ENC = "macos/encryption/"


def test_apfs_plist_apple_silicon_filevault_on():
    vols = volume_facts(parse_apfs_list_plist(shared(ENC + "diskutil-apfs-list-plist-apple-silicon.plist").read_bytes()))
    by_dev = {v["device"]: v for v in vols}
    # Helper volumes (Preboot, Recovery, VM, Update, xART, Hardware) hold no user data.
    assert sorted(by_dev) == ["disk3s1", "disk3s5", "disk3s7"]
    assert by_dev["disk3s1"]["mount"] == "/" and by_dev["disk3s5"]["mount"] == "/System/Volumes/Data"
    assert all(v["encrypted"] is True and v["method"] == "filevault" for v in vols)
    assert by_dev["disk3s7"]["role"] == "data" and by_dev["disk3s7"]["detail"]["name"] == "Nix Store"


def test_apfs_plist_conversion_uses_fdesetup_percentage():
    vols = parse_apfs_list_plist(shared(ENC + "diskutil-apfs-list-plist-apple-silicon.plist").read_bytes())
    for v in vols:
        if v["device"] == "disk3s5":
            v["migrating"] = True
    facts = volume_facts(vols, parse_fdesetup_status("Encryption in progress: Percent completed = 37"))
    data = next(v for v in facts if v["device"] == "disk3s5")
    assert (data["encrypted"], data["state"], data["percent"]) == (False, "encrypting", 37.0)


def test_apfs_text_high_sierra_partial_capture_is_unknown():
    vols = parse_apfs_list_text(shared(ENC + "diskutil-apfs-list-text-high-sierra-beta-partial.txt").read_text())
    assert [(v["device"], v["name"], v["mount"]) for v in vols] == [("disk1s1", "Macintosh HD", None)]
    # The capture is cut before the FileVault / progress lines: nothing is claimed.
    fact = volume_facts(vols)[0]
    assert fact["encrypted"] is None and fact["state"] is None and fact["percent"] is None


def test_apfs_text_progress_line_when_present():
    text = shared(ENC + "diskutil-apfs-list-text-high-sierra-beta-partial.txt").read_text()
    text += "    |   FileVault:                 Yes (Encryption Progress: 60%)\n"
    fact = volume_facts(parse_apfs_list_text(text))[0]
    assert (fact["encrypted"], fact["state"], fact["percent"]) == (False, "encrypting", 60.0)


def test_fdesetup_transcript_on():
    assert parse_fdesetup_status(shared(ENC + "fdesetup-status-on-with-apfs-grep.txt").read_text()) == \
        {"filevault": True, "state": "encrypted", "percent": None}
    assert parse_fdesetup_status("FileVault is Off.")["filevault"] is False
    assert parse_fdesetup_status("something else")["filevault"] is None


def test_mdmclient_security_info():
    info = parse_security_info(shared(ENC + "mdmclient-QuerySecurityInfo-fde-enabled.txt").read_text())
    assert fde_enabled(info) is True and info["FDE_HasPersonalRecoveryKey"] == 1
    assert firewall(info) == {"enabled": True, "block_all": False, "stealth": False}


def test_disk_probe_fdesetup_only_and_mdmclient_fallback():
    host = ReplayHost(platform="macos")
    host.add_command(["fdesetup", "status"], shared(ENC + "fdesetup-status-on-with-apfs-grep.txt"))
    s = disk_macos(ProbeContext(host))
    assert [(v["mount"], v["encrypted"]) for v in s["volumes"]] == [("/", True)]
    host = ReplayHost(platform="macos")
    host.add_command(["/usr/libexec/mdmclient", "QuerySecurityInfo"],
                     shared(ENC + "mdmclient-QuerySecurityInfo-fde-enabled.txt"))
    s = disk_macos(ProbeContext(host))
    assert s["volumes"][0]["encrypted"] is True and s["volumes"][0]["method"] == "filevault"
    assert disk_macos(ProbeContext(ReplayHost(platform="macos")))["status"] == "unknown"



def test_fdesetup_deferred_enablement_is_its_own_state():
    for text in ("FileVault is Off.\nDeferred enablement appears to be active for user 'anna'.\n",
                 "Deferred enablement appears to be active for user 'anna'.\n"):
        assert parse_fdesetup_status(text) == {"filevault": False, "state": "deferred", "percent": None}
        host = ReplayHost(platform="macos")
        host.add_command(["fdesetup", "status"], text.encode())
        s = disk_macos(ProbeContext(host))
        (v,) = s["volumes"]
        assert (v["encrypted"], v["state"], v["method"], s["status"]) == (False, "deferred", "filevault", "ok")
        assert "anna" not in repr(s)  # the user named by fdesetup is not a fact
    vols = parse_apfs_list_plist(shared(ENC + "diskutil-apfs-list-plist-apple-silicon.plist").read_bytes())
    for v in vols:
        v["filevault"] = False
    facts = volume_facts(vols, parse_fdesetup_status("FileVault is Off.\nDeferred enablement appears to be active "
                                                     "for user 'anna'."))
    assert {v["state"] for v in facts if v["role"] == "system"} == {"deferred"}


def _pub_disk(name: str) -> bytes:
    from conftest import OWN_FIXTURES
    return (OWN_FIXTURES / "public/macos/disk_encryption" / name).read_bytes()


def test_public_fdesetup_on_with_master_keychain_line():
    # The institutional-key line that follows does not change the state (nor is it a second state).
    for name in ("fdesetup-status-on-master-keychain-catalina-10.15.6.txt", "fdesetup-status-on-master-keychain-2014.txt"):
        assert parse_fdesetup_status(_pub_disk(name).decode()) == \
            {"filevault": True, "state": "encrypted", "percent": None}


def test_public_apfs_plist_mojave_single_volume_and_extra_encrypted_volumes():
    # Before Catalina the system is one volume with no role ("Macintosh HD"): the mount table says it is "/".
    host = ReplayHost(platform="macos")
    host.add_command(["fdesetup", "status"], _pub_disk("fdesetup-status-on-master-keychain-catalina-10.15.6.txt"))
    host.add_command(["diskutil", "apfs", "list", "-plist"],
                     _pub_disk("diskutil-apfs-list-plist-mojave-filevault-single-volume-edenfs.plist"))
    host.add_command(["mount"], b"/dev/disk1s1 on / (apfs, local, journaled)\n")
    s = disk_macos(ProbeContext(host))
    got = [(v["device"], v["mount"], v["role"], v["encrypted"], v["method"], v["state"]) for v in s["volumes"]]
    # Preboot, Recovery and VM are helpers; the three edenfs volumes are APFS-encrypted without FileVault.
    assert got == [("disk1s1", "/", "system", True, "filevault", "encrypted"),
                   ("disk1s5", None, "data", True, "apfs", "encrypted"),
                   ("disk1s6", None, "data", True, "apfs", "encrypted"),
                   ("disk1s7", None, "data", True, "apfs", "encrypted")]
    assert s["status"] == "ok" and s["reasons"] == []


def test_public_apfs_text_mojave_partial_is_unknown_not_unencrypted():
    vols = parse_apfs_list_text(_pub_disk("diskutil-apfs-list-text-mojave-10.14.5-partial.txt").decode())
    assert [(v["device"], v["filevault"]) for v in vols] == [("disk1s1", None)]
    (fact,) = volume_facts(vols)
    assert fact["encrypted"] is None and fact["state"] is None


def test_public_truncated_apfs_plist_falls_back_to_fdesetup():
    # The sample ends without "</plist>": plistlib refuses it; fdesetup still answers.
    host = ReplayHost(platform="macos")
    host.add_command(["fdesetup", "status"], _pub_disk("fdesetup-status-on-master-keychain-catalina-10.15.6.txt"))
    host.add_command(["diskutil", "apfs", "list", "-plist"],
                     _pub_disk("diskutil-apfs-list-plist-apple-silicon-isc-container-only-trimmed.plist"))
    s = disk_macos(ProbeContext(host))
    assert [(v["mount"], v["encrypted"], v["state"]) for v in s["volumes"]] == [("/", True, "encrypted")]
    assert any(r.startswith("output.unrecognised: diskutil apfs list -plist") for r in s["reasons"])


def test_public_fdesetup_deferred_line_ventura():
    # jamf/DEPNotify-Starter#58: the line as macOS 13.2.1 prints it, without a user name.
    st = parse_fdesetup_status(_pub_disk("fdesetup-status-deferred-line-ventura-13.2.1.txt").decode())
    assert st == {"filevault": False, "state": "deferred", "percent": None}


def test_fdesetup_transition_states_synthetic():
    text = _pub_disk("synthetic-fdesetup-status-transitions.txt").decode()
    blocks = [b for b in text.split("\n\n") if not b.startswith("#")]
    got = [parse_fdesetup_status(b) for b in text.split("\n\n")[1:]]
    assert len(blocks) == 5 and got == [
        {"filevault": True, "state": "encrypting", "percent": None},  # On, restart to finish
        {"filevault": False, "state": "decrypting", "percent": None},  # Off, restart to finish
        {"filevault": True, "state": "encrypting", "percent": None},  # paused: "Pending" (on battery)
        {"filevault": True, "state": "encrypting", "percent": 42.37},
        {"filevault": False, "state": "decrypting", "percent": 7.0}]
    first = text.split("\n\n")[0].splitlines()[-1]
    # was read as "decrypted" (plain off): it is on, waiting for the restart to start encrypting
    assert parse_fdesetup_status(first) == {"filevault": False, "state": "pending_restart", "percent": None}
    host = ReplayHost(platform="macos")
    host.add_command(["fdesetup", "status"], (first + "\n").encode())
    (v,) = disk_macos(ProbeContext(host))["volumes"]
    assert (v["encrypted"], v["state"], v["method"]) == (False, "pending_restart", "filevault")
    vols = parse_apfs_list_plist(shared(ENC + "diskutil-apfs-list-plist-apple-silicon.plist").read_bytes())
    for vol in vols:
        vol["filevault"] = False
    facts = volume_facts(vols, parse_fdesetup_status(first))
    assert {v["state"] for v in facts if v["role"] == "system"} == {"pending_restart"}
    # a paused conversion: FileVault on, not yet encrypted, no figure
    host = ReplayHost(platform="macos")
    host.add_command(["fdesetup", "status"], b"FileVault is On.\nEncryption in progress: Pending\n")
    (v,) = disk_macos(ProbeContext(host))["volumes"]
    assert (v["encrypted"], v["state"], v["percent"]) == (False, "encrypting", None)
