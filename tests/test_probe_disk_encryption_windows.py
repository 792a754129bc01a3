"""BitLocker: every capture under windows/bitlocker, plus the structured sources."""
from __future__ import annotations

import json

from conftest import OWN_FIXTURES, shared
from _winhelpers import uncomment, windows_host

from auditagent.probes import ProbeContext
from auditagent.probes.disk_encryption.windows_bitlocker import (from_encryptable_volume, parse_bitlocker_format_list,
                                                   parse_manage_bde, volume_fact)
from auditagent.probes.disk_encryption.windows import probe as disk_windows

BL = "windows/bitlocker/"


def _text(name: str) -> str:
    return shared(BL + name).read_text(encoding="utf-8")


def test_get_bitlockervolume_format_list_decimal_comma():
    recs = parse_bitlocker_format_list(_text("get-bitlockervolume-select-all-decimal-comma.txt"))
    assert len(recs) == 1
    r = recs[0]
    assert (r["mount"], r["volume_type"], r["conversion"], r["protection"], r["lock"]) == \
        ("C:", "os", "FullyEncrypted", "on", "unlocked")
    assert r["method"] == "XtsAes128" and r["percent"] == 100.0
    assert r["protectors"] == ["Tpm", "RecoveryPassword"]
    fact = volume_fact(r)
    assert fact["encrypted"] is True and fact["state"] == "encrypted" and fact["role"] == "system"


def test_manage_bde_ws2019_used_space_only_data_volume_with_auto_unlock():
    recs, why = parse_manage_bde(_text("manage-bde-status-data-volume-autounlock-ws2019.txt"))
    assert why is None and len(recs) == 1
    r = recs[0]
    assert r["mount"] == "M:" and r["volume_type"] == "data"
    assert r["conversion"] == "FullyEncrypted" and r["raw_conversion"] == "Used Space Only Encrypted"
    assert r["protection"] == "on" and r["method"] == "XtsAes128" and r["autounlock"] == "Enabled"
    assert r["protectors"] == ["RecoveryPassword", "ExternalKey"]
    fact = volume_fact(r)
    assert fact["encrypted"] is True and fact["role"] == "data"


def test_manage_bde_german_fully_decrypted():
    recs, why = parse_manage_bde(_text("manage-bde-status-de-fully-decrypted.txt"))
    assert why is None and len(recs) == 1
    r = recs[0]
    assert r["source"] == "manage-bde (de)" and r["mount"] == "C:" and r["volume_type"] == "os"
    assert r["conversion"] == "FullyDecrypted" and r["protection"] == "off" and r["lock"] == "unlocked"
    assert r["percent"] == 0.0 and r["method"] is None and r["protectors"] == []
    fact = volume_fact(r)
    assert fact["encrypted"] is False and fact["state"] == "decrypted" and fact["method"] is None


def test_manage_bde_german_in_progress_at_100_percent_is_not_yet_encrypted():
    recs, _ = parse_manage_bde(_text("manage-bde-status-de-in-progress-100pct-protection-on.txt"))
    r = recs[0]
    assert r["conversion"] == "EncryptionInProgress" and r["percent"] == 100.0 and r["protection"] == "on"
    assert r["method"] == "XtsAes128" and r["protectors"] == ["Tpm"]
    fact = volume_fact(r)
    # ConversionStatus decides, not the rounded percentage (Win32_EncryptableVolume docs).
    assert fact["encrypted"] is False and fact["state"] == "encrypting"


def test_manage_bde_fragment_encryption_in_progress_with_annotation():
    recs, _ = parse_manage_bde(_text("manage-bde-status-encryption-in-progress-50pct-annotated.txt"))
    r = recs[0]
    assert r["mount"] is None  # the pasted fragment has no Volume line
    assert r["conversion"] == "EncryptionInProgress" and r["percent"] == 50.8 and r["protection"] == "off"
    assert r["protectors"] == ["Password", "RecoveryPassword"]
    fact = volume_fact(r)
    assert (fact["encrypted"], fact["state"], fact["percent"]) == (False, "encrypting", 50.8)


def test_manage_bde_fully_encrypted_with_duplicate_protectors():
    recs, _ = parse_manage_bde(_text("manage-bde-status-fully-encrypted-duplicate-protectors.txt"))
    r = recs[0]
    assert r["conversion"] == "FullyEncrypted" and r["protection"] == "on" and r["method"] == "XtsAes256"
    assert r["protectors"] == ["RecoveryPassword", "Tpm", "RecoveryPassword"]
    assert volume_fact(r)["encrypted"] is True


def test_manage_bde_unrecognised_language_is_unknown_never_unencrypted():
    # Same capture with the labels in a language we have no capture of (Swedish labels).
    text = _text("manage-bde-status-fully-encrypted-duplicate-protectors.txt")
    text = text.replace("Conversion Status", "Konverteringsstatus").replace("Protection Status", "Skyddsstatus")
    recs, why = parse_manage_bde(text)
    assert recs == [] and why.startswith("output.language: manage-bde")


def test_suspended_protection_from_win32_encryptablevolume():
    snap = json.loads((OWN_FIXTURES / "synthetic/windows/synthetic-powershell-snapshot-bitlocker-suspended.json")
                      .read_text())
    c, d = (from_encryptable_volume(v) for v in snap["encryptable_volumes"])
    assert (c["conversion"], c["protection"], c["method"], c["protectors"]) == \
        ("FullyEncrypted", "off", "XtsAes128", ["Tpm", "RecoveryPassword"])
    assert volume_fact(c)["state"] == "suspended" and volume_fact(c)["encrypted"] is False
    assert d["percent"] == 42.5 and volume_fact(d)["state"] == "encrypting"


def test_probe_falls_back_to_manage_bde_german():
    host = windows_host({"schema": 1, "bitlocker": {"error": "denied"}, "encryptable_volumes": {"error": "denied"}})
    host.add_command(["manage-bde", "-status"], shared(BL + "manage-bde-status-de-in-progress-100pct-protection-on.txt"))
    section = disk_windows(ProbeContext(host))
    assert section["status"] == "ok"
    assert [(v["mount"], v["state"], v["encrypted"]) for v in section["volumes"]] == [("C:", "encrypting", False)]
    assert any(r.startswith("source.failed: bitlocker") for r in section["reasons"])


def test_probe_unknown_language_reports_unknown():
    host = windows_host({"schema": 1, "bitlocker": {"error": "denied"}, "encryptable_volumes": {"error": "denied"}})
    text = _text("manage-bde-status-de-fully-decrypted.txt").replace("Konvertierungsstatus", "Konverteringsstatus")
    host.add_command(["manage-bde", "-status"], text)
    section = disk_windows(ProbeContext(host))
    assert section["status"] == "unknown" and section["volumes"] == []
    assert any(r.startswith("output.language: manage-bde") for r in section["reasons"])


def test_probe_removable_drive_is_not_a_volume_of_the_machine():
    snap = json.loads((OWN_FIXTURES / "synthetic/windows/synthetic-powershell-snapshot-win11-compliant.json")
                      .read_text())
    section = disk_windows(ProbeContext(windows_host(snap)))
    assert [v["mount"] for v in section["volumes"]] == ["C:"]


def _snap_volume(**kw):
    base = {"MountPoint": "C:", "VolumeType": "OperatingSystem", "VolumeStatus": "FullyEncrypted",
            "ProtectionStatus": "Off", "LockStatus": "Unlocked", "EncryptionPercentage": 100,
            "EncryptionMethod": "XtsAes128"}
    return {**base, **kw}


def test_key_in_the_clear_states_are_told_apart():
    from auditagent.probes.disk_encryption.windows_bitlocker import from_bitlocker_volume
    state = lambda rec: (volume_fact(rec)["state"], volume_fact(rec)["encrypted"])  # noqa: E731
    # Suspend-BitLocker: protectors stay, protection off.
    assert state(from_bitlocker_volume(_snap_volume(KeyProtector=["Tpm", "RecoveryPassword"]))) == ("suspended", False)
    # Device Encryption before activation: encrypted, no protector at all.
    assert state(from_bitlocker_volume(_snap_volume(KeyProtector=[]))) == ("waiting_activation", False)
    # Protection off and the protectors not seen: the key is in the clear, cause unknown.
    assert state(from_bitlocker_volume(_snap_volume())) == ("clear_key", False)
    assert state(from_encryptable_volume({"DriveLetter": "C:", "VolumeType": 0, "ProtectionStatus": 0,
                                          "ConversionStatus": 1, "KeyProtectorTypes": []})) == \
        ("waiting_activation", False)
    assert state(from_encryptable_volume({"DriveLetter": "C:", "VolumeType": 0, "ProtectionStatus": 1,
                                          "ConversionStatus": 2, "EncryptionPercentage": 37,
                                          "KeyProtectorTypes": [1]})) == ("encrypting", False)


def test_manage_bde_none_found_is_waiting_for_activation():
    text = "\n".join(["Volume C: [Windows]", "[OS Volume]", "",
                      "    Conversion Status:    Used Space Only Encrypted",
                      "    Percentage Encrypted: 100,0%", "    Encryption Method:    XTS-AES 128",
                      "    Protection Status:    Protection Off", "    Lock Status:          Unlocked",
                      "    Key Protectors:       None Found", ""])
    (rec,), why = parse_manage_bde(text)
    assert why is None and rec["protectors"] == []
    assert volume_fact(rec)["state"] == "waiting_activation"


def test_public_manage_bde_protection_off_states():
    pub = OWN_FIXTURES / "public/windows"
    (rec,), why = parse_manage_bde((pub / "manage-bde-status-used-space-only-protection-off-none-found.txt").read_text())
    assert why is None and (rec["conversion"], rec["protection"], rec["percent"], rec["protectors"]) == \
        ("FullyEncrypted", "off", 100.0, [])
    fact = volume_fact(rec)
    assert (fact["state"], fact["encrypted"]) == ("waiting_activation", False)
    (rec,), why = parse_manage_bde((pub / "manage-bde-status-encryption-in-progress-protection-off-password.txt")
                                   .read_text())
    assert (rec["conversion"], rec["percent"], rec["protectors"]) == \
        ("EncryptionInProgress", 50.8, ["Password", "RecoveryPassword"])
    assert (volume_fact(rec)["state"], volume_fact(rec)["encrypted"]) == ("encrypting", False)


# --------------------------------------------------------------------------- public captures (windows/bitlocker)

PUB_BL = OWN_FIXTURES / "public/windows/bitlocker"


def _pub_bl(name: str) -> str:
    return (PUB_BL / name).read_text(encoding="utf-8")


def test_public_get_bitlockervolume_encrypted_and_protection_off():
    (rec,) = parse_bitlocker_format_list(_pub_bl("get-bitlockervolume-fl-fully-encrypted-protection-off-tpm-only.txt"))
    assert (rec["mount"], rec["conversion"], rec["protection"], rec["protectors"]) == \
        ("C:", "FullyEncrypted", "off", ["Tpm"])
    fact = volume_fact(rec)
    # A TPM protector is there, protection is off: the key sits in the clear until resumed.
    assert (fact["state"], fact["encrypted"], fact["role"]) == ("suspended", False, "system")
    for name, protectors in (("get-bitlockervolume-fl-mslearn-example-decimal-comma.txt", ["RecoveryPassword", "Tpm"]),
                             ("get-bitlockervolume-fl-mslearn-operations-guide.txt", ["Tpm", "RecoveryPassword"])):
        (rec,) = parse_bitlocker_format_list(_pub_bl(name))
        assert (rec["mount"], rec["volume_type"], rec["conversion"], rec["protection"], rec["lock"]) == \
            ("C:", "os", "FullyEncrypted", "on", "unlocked"), name
        assert rec["method"] == "XtsAes128" and rec["percent"] == 100.0 and rec["protectors"] == protectors
        assert volume_fact(rec)["state"] == "encrypted"


def test_public_manage_bde_used_space_only_protection_on_mslearn():
    (rec,), why = parse_manage_bde(_pub_bl("manage-bde-status-mslearn-used-space-only-protection-on.txt"))
    assert why is None and (rec["mount"], rec["volume_type"], rec["raw_conversion"]) == \
        ("C:", "os", "Used Space Only Encrypted")
    assert rec["protectors"] == ["Tpm", "RecoveryPassword"] and rec["method"] == "XtsAes128"
    assert (volume_fact(rec)["state"], volume_fact(rec)["encrypted"]) == ("encrypted", True)


def test_public_manage_bde_three_decrypted_volumes_and_closing_prompt():
    recs, why = parse_manage_bde(_pub_bl("manage-bde-status-three-volumes-fully-decrypted-10.0.25267.txt"))
    assert why is None
    assert [(r["mount"], r["volume_type"], r["autounlock"]) for r in recs] == \
        [("C:", "os", None), ("J:", "data", "Disabled"), ("K:", "data", "Disabled")]
    for r in recs:
        # "None Found", then the transcript's closing "C:\Windows\System32>": no protector at all.
        assert (r["conversion"], r["protection"], r["percent"], r["method"], r["protectors"]) == \
            ("FullyDecrypted", "off", 0.0, None, [])
        assert volume_fact(r)["state"] == "decrypted"


def test_public_manage_bde_closing_prompt_does_not_turn_waiting_activation_into_suspended():
    # The public Device Encryption block (None Found) as a console would end it: with the prompt.
    text = (OWN_FIXTURES / "public/windows/manage-bde-status-used-space-only-protection-off-none-found.txt").read_text()
    (rec,), _ = parse_manage_bde(text + "\nC:\\Windows\\system32>\n")
    assert rec["protectors"] == [] and volume_fact(rec)["state"] == "waiting_activation"


def test_public_manage_bde_fallback_through_the_probe():
    host = windows_host({"schema": 2, "bitlocker": {"error": "x"}, "encryptable_volumes": {"error": "y"}})
    host.add_command(["manage-bde", "-status"], PUB_BL / "manage-bde-status-three-volumes-fully-decrypted-10.0.25267.txt")
    s = disk_windows(ProbeContext(host))
    assert [(v["mount"], v["role"], v["encrypted"], v["state"]) for v in s["volumes"]] == \
        [("C:", "system", False, "decrypted"), ("J:", "data", False, "decrypted"), ("K:", "data", False, "decrypted")]


# ------------------------------------------------------------ second pass (capwin): states and JSON forms


def test_public_convertto_json_of_get_bitlockervolume_enum_numbers():
    """Windows PowerShell 5.1's ConvertTo-Json writes every enum as its number (VolumeStatus 1,
    LockStatus 0, VolumeType 0, EncryptionMethod 6, KeyProtectorType 3/1). These were read as
    text before: method "6", protectors "3"/"1", no volume type, no lock state."""
    from auditagent.probes.disk_encryption.windows_bitlocker import from_bitlocker_volume
    raw = _pub_bl("get-bitlockervolume-convertto-json-ps51-enum-numbers-win-vm.json")
    c, e = [from_bitlocker_volume(o) for o in json.loads(raw)]
    assert (c["mount"], c["volume_type"], c["conversion"], c["protection"], c["lock"], c["method"]) == \
        ("C:", "os", "FullyEncrypted", "on", "unlocked", "XtsAes128")
    assert c["protectors"] == ["RecoveryPassword", "Tpm"] and c["percent"] == 100.0
    assert (e["mount"], e["volume_type"], e["conversion"], e["protection"], e["method"], e["protectors"]) == \
        ("E:", "data", "FullyDecrypted", "off", None, [])
    # Through the probe, as the snapshot's "bitlocker" list: the recovery password in the
    # object is never carried into the facts.
    host = windows_host({"schema": 2, "bitlocker": json.loads(raw), "logical_disks": [
        {"DeviceID": "C:", "DriveType": 3}, {"DeviceID": "E:", "DriveType": 3}]})
    s = disk_windows(ProbeContext(host))
    assert [(v["mount"], v["role"], v["encrypted"], v["state"]) for v in s["volumes"]] == \
        [("C:", "system", True, "encrypted"), ("E:", "data", False, "decrypted")]
    assert "254793" not in json.dumps(s)


def test_snapshot_value_fields_win_over_names_and_wipe_states_are_encrypted():
    from auditagent.probes.disk_encryption.windows_bitlocker import from_bitlocker_volume
    rec = from_bitlocker_volume({"MountPoint": "C:", "VolumeStatus": "FullyEncryptedWipeInProgress",
                                 "VolumeStatusValue": 6, "ProtectionStatus": "On", "ProtectionStatusValue": 1,
                                 "LockStatus": "Unlocked", "LockStatusValue": 0, "VolumeType": "OperatingSystem",
                                 "VolumeTypeValue": 0, "KeyProtector": ["Tpm"]})
    assert (rec["conversion"], rec["protection"], rec["lock"], rec["volume_type"]) == \
        ("FullyEncrypted", "on", "unlocked", "os")
    assert from_bitlocker_volume({"VolumeStatus": "FullyEncryptedWipeSuspended"})["conversion"] == "FullyEncrypted"


def test_public_personal_vault_locked_data_volume():
    """OneDrive's Personal Vault, locked: manage-bde knows nothing but the lock ("Unknown" size,
    conversion, percentage and protection) and the external key that opens it."""
    (rec,), why = parse_manage_bde(_pub_bl("manage-bde-status-onedrive-personal-vault-locked-external-key.txt"))
    assert why is None
    assert (rec["mount"], rec["volume_type"], rec["lock"], rec["conversion"], rec["protection"], rec["percent"]) == \
        ("F:", "data", "locked", None, "unknown", None)
    assert rec["protectors"] == ["ExternalKey"] and rec["method"] == "XtsAes128"
    fact = volume_fact(rec)
    assert (fact["state"], fact["encrypted"], fact["role"], fact["method"]) == ("locked", True, "data", "bitlocker")


def test_public_decryption_in_progress_then_fully_decrypted_fragments():
    (rec,), why = parse_manage_bde(_pub_bl("manage-bde-status-decryption-in-progress-27.1-fragment.txt"))
    assert why is None and (rec["mount"], rec["conversion"], rec["percent"]) == (None, "DecryptionInProgress", 27.1)
    fact = volume_fact(rec)
    assert (fact["state"], fact["encrypted"]) == ("decrypting", False)
    (done,), _ = parse_manage_bde(_pub_bl("manage-bde-status-fully-decrypted-after-off-fragment.txt"))
    assert (done["conversion"], done["percent"], volume_fact(done)["state"]) == ("FullyDecrypted", 0.0, "decrypted")


def test_public_get_bitlockervolume_fully_decrypted_and_chinese_manage_bde_is_unknown_with_reason():
    from auditagent.i18n import reason_text
    text = uncomment(_pub_bl("get-bitlockervolume-fl-fullydecrypted-and-manage-bde-zh-cn-error-comment.txt"))
    (rec,) = parse_bitlocker_format_list(text)
    assert (rec["mount"], rec["volume_type"], rec["conversion"], rec["protection"], rec["lock"], rec["protectors"]) == \
        ("C:", "os", "FullyDecrypted", "off", "unlocked", [])
    assert volume_fact(rec)["state"] == "decrypted"
    # The same script's manage-bde fallback answered in Chinese: no guess, a reason staff can read.
    bde = text[text.index("BitLocker 驱动器加密"):]
    recs, why = parse_manage_bde(bde)
    assert recs == [] and why.startswith("output.language: manage-bde")
    assert reason_text(why, "sv").startswith("manage-bde svarade på ett språk")
    assert reason_text(why, "da").startswith("manage-bde svarede på et sprog")
    host = windows_host({"schema": 2, "bitlocker": {"error": "x"}, "encryptable_volumes": {"error": "y"}})
    host.add_command(["manage-bde", "-status"], bde.encode("utf-8"))
    s = disk_windows(ProbeContext(host))
    assert s["status"] == "unknown" and any(r.startswith("output.language") for r in s["reasons"])


def test_public_select_object_of_three_fields_reads_the_state():
    from auditagent.probes.disk_encryption.windows_bitlocker import from_bitlocker_volume
    from auditagent.probes.sources.windows_format_list import parse_format_list
    (obj,) = parse_format_list(_pub_bl("get-bitlockervolume-select-three-fields-fullydecrypted-zh-tutorial.txt"))
    rec = from_bitlocker_volume(obj)
    assert (rec["conversion"], rec["protection"], rec["percent"], rec["protectors"]) == ("FullyDecrypted", "off", 0.0, None)
    # No MountPoint in a Select-Object of three fields: the text parser does not invent one.
    assert parse_bitlocker_format_list(_pub_bl("get-bitlockervolume-select-three-fields-fullydecrypted-zh-tutorial.txt")) == []


def test_public_used_space_only_protection_off_with_only_a_recovery_password():
    # Windows 11 Pro 24H2/25H2 hosts as a Fleet issue shows them: encrypted, protection off with
    # no "(N reboots left)", and only a Numerical Password left (every TPM protector deleted).
    # The reporter's "<- ..." notes are kept; the protector line's note rides along in its name.
    (rec,), why = parse_manage_bde(
        _pub_bl("manage-bde-status-used-space-only-protection-off-numerical-password-only-annotated.txt"))
    assert why is None
    assert (rec["conversion"], rec["raw_conversion"], rec["protection"], rec["percent"], rec["method"]) == \
        ("FullyEncrypted", "Used Space Only Encrypted", "off", 100.0, "XtsAes128")
    assert len(rec["protectors"]) == 1 and rec["protectors"][0].startswith("Numerical Password")
    fact = volume_fact(rec)
    # Protectors are there but protection is off: suspended, not encrypted, never "waiting".
    assert (fact["state"], fact["encrypted"], fact["method"]) == ("suspended", False, "bitlocker")


# ------------------------------------------ French manage-bde (third pass): read from real captures only

def _windows_tools_dict() -> dict:
    import ast
    # netinvent/windows_tools' README prints manage-bde's raw strings inside a Python dict.
    return ast.literal_eval(_pub_bl("manage-bde-status-fr-fr-10.0.19041-decrypted-and-locked-windows-tools-dict.txt"))


def test_public_french_manage_bde_used_space_only_protection_on_with_no_break_spaces():
    text = _pub_bl("manage-bde-status-fr-fr-used-space-only-protection-on-nbsp.txt")
    assert "\u00a0:" in text  # French typography: some labels end in a no-break space before the colon
    (rec,), why = parse_manage_bde(text)
    assert why is None and rec["source"] == "manage-bde (fr)"
    assert (rec["mount"], rec["volume_type"], rec["conversion"], rec["raw_conversion"]) == \
        ("C:", "os", "FullyEncrypted", "Espace utilisé uniquement chiffré")
    assert (rec["protection"], rec["lock"], rec["percent"], rec["method"], rec["protectors"]) == \
        ("on", "unlocked", 100.0, "XtsAes128", ["RecoveryPassword", "Tpm"])
    fact = volume_fact(rec)
    assert (fact["role"], fact["state"], fact["encrypted"]) == ("system", "encrypted", True)


def test_public_french_manage_bde_decrypted_os_volume_and_locked_data_volume():
    out = _windows_tools_dict()
    (c,), why = parse_manage_bde(out["C:"]["status"])
    assert why is None
    assert (c["mount"], c["volume_type"], c["conversion"], c["protection"], c["lock"], c["percent"], c["method"],
            c["protectors"]) == ("C:", "os", "FullyDecrypted", "off", "unlocked", 0.0, None, [])
    assert (volume_fact(c)["state"], volume_fact(c)["encrypted"]) == ("decrypted", False)
    (d,), why = parse_manage_bde(out["D:"]["status"])
    # Locked: size, conversion and protection all "Inconnu"; the key protectors are still listed
    # (one of them untranslated, "Password", as manage-bde prints it there).
    assert (d["mount"], d["volume_type"], d["lock"], d["conversion"], d["protection"], d["method"]) == \
        ("D:", "data", "locked", None, "unknown", "XtsAes128")
    assert d["protectors"] == ["Password", "RecoveryPassword"] and d["autounlock"] == "Désactivé"
    fact = volume_fact(d)
    assert (fact["role"], fact["state"], fact["encrypted"]) == ("data", "locked", True)


def test_public_french_manage_bde_fragment_from_a_windows_11_laptop():
    (rec,), why = parse_manage_bde(_pub_bl("manage-bde-status-fr-fr-fully-decrypted-win11-hp-laptop-fragment.txt"))
    assert why is None
    assert (rec["mount"], rec["volume_type"], rec["conversion"], rec["protection"], rec["percent"]) == \
        ("C:", "os", "FullyDecrypted", "off", 0.0)
    assert (volume_fact(rec)["state"], volume_fact(rec)["encrypted"]) == ("decrypted", False)


def test_french_state_no_real_capture_shows_is_not_guessed():
    # "Chiffrement en cours" appears only in a course's hand-made "typical output" (whose labels
    # differ from every real capture): not read, so the volume is unknown, never encrypted.
    text = _pub_bl("manage-bde-status-fr-fr-used-space-only-protection-on-nbsp.txt").replace(
        "Espace utilisé uniquement chiffré", "Chiffrement en cours")
    (rec,), why = parse_manage_bde(text)
    assert rec["conversion"] is None
    fact = volume_fact(rec)
    assert (fact["state"], fact["encrypted"]) == (None, None)
    assert fact["detail"]["unrecognised_conversion"] == "Chiffrement en cours"


def test_public_french_manage_bde_through_the_probe():
    host = windows_host({"schema": 2, "bitlocker": {"error": "x"}, "encryptable_volumes": {"error": "y"}})
    host.add_command(["manage-bde", "-status"],
                     _pub_bl("manage-bde-status-fr-fr-used-space-only-protection-on-nbsp.txt").encode("utf-8"))
    s = disk_windows(ProbeContext(host))
    assert [(v["mount"], v["state"], v["encrypted"]) for v in s["volumes"]] == [("C:", "encrypted", True)]


def test_public_spanish_manage_bde_locked_data_volume_in_a_code_comment():
    import textwrap
    # A Spanish Windows 8.1 (tool 6.3.9600) transcript kept in a C# comment: undo exactly the
    # comment's 12-space indentation. "Volumen", and a label that fills its column to the value
    # ("Campo de identificación:Desconocido").
    text = textwrap.dedent(_pub_bl("manage-bde-status-es-es-6.3.9600-locked-data-volume-comment.txt"))
    (rec,), why = parse_manage_bde(text)
    assert why is None and rec["source"] == "manage-bde (es)"
    assert (rec["mount"], rec["volume_type"], rec["lock"], rec["protection"], rec["conversion"], rec["method"]) == \
        ("E:", "data", "locked", "unknown", None, "Aes128")
    assert rec["protectors"] == ["Password", "RecoveryPassword"] and rec["autounlock"] == "Deshabilitado"
    fact = volume_fact(rec, fixed=True)
    assert (fact["role"], fact["state"], fact["encrypted"]) == ("data", "locked", True)
    # An unlocked Spanish volume: no real capture shows its values, so it stays unknown.
    unlocked = text.replace("Bloqueado", "Desbloqueado").replace("Estado de conversión:   Desconocido",
                                                                  "Estado de conversión:   Cifrado completo")
    (rec,), _ = parse_manage_bde(unlocked)
    assert (rec["lock"], rec["conversion"], volume_fact(rec)["encrypted"]) == (None, None, None)
