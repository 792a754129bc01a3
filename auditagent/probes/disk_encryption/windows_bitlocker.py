"""BitLocker parsers (pure): structured sources first, manage-bde text as the last resort.

Every source is brought to one normalised record::

    {mount, device, volume_type: "os"|"data"|None, conversion, protection: "on"|"off"|"unknown"|None,
     lock: "locked"|"unlocked"|None, percent, method, protectors: [..] (None: not seen), source}

``conversion`` uses the names of Win32_EncryptableVolume.GetConversionStatus
(FullyDecrypted, FullyEncrypted, EncryptionInProgress, DecryptionInProgress,
EncryptionPaused, DecryptionPaused). ``volume_fact`` turns a record into a
docs/facts.md ``disk.volumes[]`` entry.

manage-bde is localised: its labels and values are read for the languages we have real
captures of (English, German, French, Spanish), and only the values those captures show. Any other
language yields no records and a reason, so a Swedish laptop is reported *unknown*, never
*unencrypted*; a value no capture shows (a French "encryption in progress") leaves that
volume's state unknown. French ends some labels with a no-break space before the colon.
"""
from __future__ import annotations

import re
from typing import Any

from auditagent.probes.sources.windows_format_list import parse_format_list
from auditagent.reasons import reason

Record = dict[str, Any]

# Win32_EncryptableVolume.GetConversionStatus ConversionStatus (Microsoft Learn).
CONVERSION_BY_CODE = {0: "FullyDecrypted", 1: "FullyEncrypted", 2: "EncryptionInProgress",
                      3: "DecryptionInProgress", 4: "EncryptionPaused", 5: "DecryptionPaused"}
# Get-BitLockerVolume VolumeStatus (BitLockerVolumeStatus) identifiers → the same names. The two
# "wipe" states are a fully encrypted volume whose free space is being wiped.
CONVERSION_BY_VOLUME_STATUS = {"fullydecrypted": "FullyDecrypted", "fullyencrypted": "FullyEncrypted",
                               "encryptioninprogress": "EncryptionInProgress",
                               "decryptioninprogress": "DecryptionInProgress",
                               "encryptionsuspended": "EncryptionPaused", "decryptionsuspended": "DecryptionPaused",
                               "encryptionpaused": "EncryptionPaused", "decryptionpaused": "DecryptionPaused",
                               "fullyencryptedwipeinprogress": "FullyEncrypted",
                               "fullyencryptedwipesuspended": "FullyEncrypted"}
# The same enum's numbers, as Windows PowerShell 5.1's ConvertTo-Json writes them.
CONVERSION_BY_VOLUME_STATUS_CODE = {0: "FullyDecrypted", 1: "FullyEncrypted", 2: "EncryptionInProgress",
                                    3: "DecryptionInProgress", 4: "EncryptionPaused", 5: "DecryptionPaused",
                                    6: "FullyEncrypted", 7: "FullyEncrypted"}
# Win32_EncryptableVolume.GetProtectionStatus: 0 off, 1 on, 2 unknown (e.g. locked).
PROTECTION_BY_CODE = {0: "off", 1: "on", 2: "unknown"}
# Win32_EncryptableVolume.GetEncryptionMethod; Get-BitLockerVolume uses the names.
METHOD_BY_CODE = {0: None, 1: "Aes128Diffuser", 2: "Aes256Diffuser", 3: "Aes128", 4: "Aes256",
                  5: "Hardware", 6: "XtsAes128", 7: "XtsAes256"}
# Win32_EncryptableVolume.GetKeyProtectorType; names as Get-BitLockerVolume prints them.
PROTECTOR_BY_CODE = {0: "Unknown", 1: "Tpm", 2: "ExternalKey", 3: "RecoveryPassword", 4: "TpmPin",
                     5: "TpmStartupKey", 6: "TpmPinStartupKey", 7: "PublicKey", 8: "Password",
                     9: "TpmCertificate", 10: "CngProtector"}
# Win32_EncryptableVolume.VolumeType: 0 OS, 1 fixed data, 2 portable data.
VOLUME_TYPE_BY_CODE = {0: "os", 1: "data", 2: "portable"}


def _record(**kw: Any) -> Record:
    base: Record = {"mount": None, "device": None, "volume_type": None, "conversion": None, "protection": None,
                    "lock": None, "percent": None, "method": None, "protectors": None, "source": None}
    base.update(kw)
    return base


def _num(value: Any) -> float | None:
    """A percentage or size, written with a decimal point or a decimal comma."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    m = re.search(r"\d+(?:[.,]\d+)?", str(value))
    return float(m.group(0).replace(",", ".")) if m else None


def _code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


# --------------------------------------------------------------------------- Get-BitLockerVolume


def _enum(obj: dict[str, Any], name: str) -> tuple[str, int | None]:
    """(lower-case identifier, number) of an enum property. The snapshot writes both (``X`` and
    ``XValue``); a raw ``Get-BitLockerVolume | ConvertTo-Json`` (Windows PowerShell 5.1) writes
    only the number under ``X``; Format-List and PowerShell 7 only the identifier."""
    raw = obj.get(name)
    number = _code(obj.get(f"{name}Value"))
    if number is None:
        number = _code(raw)
    text = "" if raw is None or _code(raw) is not None else str(raw).strip().lower()
    return text, number


def from_bitlocker_volume(obj: dict[str, Any], source: str = "Get-BitLockerVolume") -> Record:
    """One Get-BitLockerVolume object (JSON from the snapshot or from ConvertTo-Json, or a
    Format-List block). Property names are not localised; enum values are English identifiers
    or their numbers, and the number wins where both are given."""
    status, status_code = _enum(obj, "VolumeStatus")
    conversion = (CONVERSION_BY_VOLUME_STATUS_CODE.get(status_code) if status_code is not None
                  else CONVERSION_BY_VOLUME_STATUS.get(status))
    prot, prot_code = _enum(obj, "ProtectionStatus")
    protection = PROTECTION_BY_CODE.get(prot_code) if prot_code is not None else \
        {"on": "on", "off": "off", "unknown": "unknown"}.get(prot)
    lock, lock_code = _enum(obj, "LockStatus")
    lock = {0: "unlocked", 1: "locked"}.get(lock_code) if lock_code is not None else lock  # type: ignore[assignment]
    vtype, vtype_code = _enum(obj, "VolumeType")
    volume_type = {0: "os", 1: "data"}.get(vtype_code) if vtype_code is not None else \
        {"operatingsystem": "os", "data": "data"}.get(vtype)
    method_text, method_code = _enum(obj, "EncryptionMethod")
    method = METHOD_BY_CODE.get(method_code) if method_code is not None else \
        (None if method_text in ("", "none") else str(obj.get("EncryptionMethod")).strip())
    protectors = obj.get("KeyProtector")  # absent: not seen (None); empty: none found ([])
    if isinstance(protectors, str):  # Format-List prints "{Tpm, RecoveryPassword}"
        protectors = [p.strip() for p in protectors.strip("{} ").split(",") if p.strip()]
    if isinstance(protectors, dict):
        protectors = [protectors]
    if protectors is not None:
        # Only the type is kept: a ConvertTo-Json of the object also holds RecoveryPassword.
        types = [p.get("KeyProtectorType") if isinstance(p, dict) else p for p in protectors]
        protectors = [PROTECTOR_BY_CODE.get(_code(t), str(t)) if _code(t) is not None else str(t) for t in types]
    return _record(
        mount=obj.get("MountPoint") or None,
        volume_type=volume_type,
        conversion=conversion,
        protection=protection,
        lock=lock if lock in ("locked", "unlocked") else None,
        percent=_num(obj.get("EncryptionPercentage")),
        method=method,
        protectors=protectors,
        source=source,
    )


def parse_bitlocker_format_list(text: str) -> list[Record]:
    return [from_bitlocker_volume(o, source="Get-BitLockerVolume (text)") for o in parse_format_list(text)
            if "MountPoint" in o and "VolumeStatus" in o]


# --------------------------------------------------------------------------- Win32_EncryptableVolume


def from_encryptable_volume(obj: dict[str, Any]) -> Record:
    """One Win32_EncryptableVolume, with the outputs of GetConversionStatus,
    GetProtectionStatus and GetKeyProtectorType gathered by the snapshot script."""
    percent = _num(obj.get("EncryptionPercentage"))
    precision = _code(obj.get("PrecisionFactor")) or 0
    if percent is not None and precision:
        percent = percent / (10 ** precision)  # GetConversionStatus scales by 10^PrecisionFactor
    types = obj.get("KeyProtectorTypes")
    if types is not None and not isinstance(types, list):
        types = [types]
    return _record(
        mount=obj.get("DriveLetter") or None,
        device=obj.get("DeviceID") or None,
        volume_type=VOLUME_TYPE_BY_CODE.get(_code(obj.get("VolumeType"))),  # type: ignore[arg-type]
        conversion=CONVERSION_BY_CODE.get(_code(obj.get("ConversionStatus"))),  # type: ignore[arg-type]
        protection=PROTECTION_BY_CODE.get(_code(obj.get("ProtectionStatus"))),  # type: ignore[arg-type]
        percent=percent,
        method=METHOD_BY_CODE.get(_code(obj.get("EncryptionMethod"))),  # type: ignore[arg-type]
        protectors=None if types is None else [PROTECTOR_BY_CODE.get(_code(t), str(t)) for t in types],  # type: ignore[arg-type]
        source="Win32_EncryptableVolume",
    )


# --------------------------------------------------------------------------- manage-bde -status

_LABELS = {
    "en": {"Conversion Status": "conversion", "Percentage Encrypted": "percent", "Encryption Method": "method",
           "Protection Status": "protection", "Lock Status": "lock", "Key Protectors": "protectors",
           "Size": "size", "BitLocker Version": "version", "Identification Field": "id",
           "Automatic Unlock": "autounlock"},
    "de": {"Konvertierungsstatus": "conversion", "Verschlüsselt (Prozent)": "percent",
           "Verschlüsselungsmethode": "method", "Schutzstatus": "protection", "Sperrungsstatus": "lock",
           "Schlüsselschutzvorrichtungen": "protectors", "Größe": "size", "BitLocker-Version": "version",
           "ID-Feld": "id", "Automatische Entsperrung": "autounlock"},
    "fr": {"État de la conversion": "conversion", "Pourcentage chiffré": "percent",
           "Méthode de chiffrement": "method", "État de la protection": "protection",
           "État du verrouillage": "lock", "Protecteurs de clés": "protectors", "Taille": "size",
           "Version de BitLocker": "version", "Champ d’identification": "id", "Champ d'identification": "id",
           "Champ d?identification": "id",  # the apostrophe lost to "?" in a non-UTF-8 pipe
           "Déverrouillage automatique": "autounlock"},
    "es": {"Estado de conversión": "conversion", "Porcentaje cifrado": "percent", "Método de cifrado": "method",
           "Estado de protección": "protection", "Estado de bloqueo": "lock", "Protectores de clave": "protectors",
           "Tamaño": "size", "Versión de BitLocker": "version", "Campo de identificación": "id",
           "Desbloqueo automático": "autounlock"},
}
# The label that tells the language (the first one each capture has).
_CONVERSION_LABEL = {"en": "Conversion Status", "de": "Konvertierungsstatus", "fr": "État de la conversion",
                     "es": "Estado de conversión"}
_CONVERSION_TEXT = {
    "en": {"fully decrypted": "FullyDecrypted", "fully encrypted": "FullyEncrypted",
           "used space only encrypted": "FullyEncrypted",  # encrypted where data is; free space never held data
           "encryption in progress": "EncryptionInProgress", "decryption in progress": "DecryptionInProgress",
           "encryption paused": "EncryptionPaused", "decryption paused": "DecryptionPaused"},
    "de": {"vollständig entschlüsselt": "FullyDecrypted", "vollständig verschlüsselt": "FullyEncrypted",
           "verschlüsselung wird durchgeführt": "EncryptionInProgress",
           "entschlüsselung wird durchgeführt": "DecryptionInProgress"},
    "fr": {"intégralement déchiffré": "FullyDecrypted",
           "espace utilisé uniquement chiffré": "FullyEncrypted"},
    "es": {},  # the one Spanish capture is of a locked volume ("Desconocido")
}
_PROTECTION_TEXT = {
    "en": [("protection on", "on"), ("protection off", "off"), ("unknown", "unknown")],
    "de": [("der schutz ist aktiviert", "on"), ("der schutz ist deaktiviert", "off"), ("unbekannt", "unknown")],
    "fr": [("protection activée", "on"), ("protection désactivée", "off"), ("inconnu", "unknown")],
    "es": [("desconocido", "unknown")],
}
_LOCK_TEXT = {"en": {"locked": "locked", "unlocked": "unlocked"}, "de": {"gesperrt": "locked", "entsperrt": "unlocked"},
              "fr": {"verrouillé": "locked", "déverrouillé": "unlocked"}, "es": {"bloqueado": "locked"}}
_NONE_TEXT = {"none", "kein", "keine", "none found", "keine gefunden", "aucun", "aucun trouvé"}
_METHOD_TEXT = {"xts-aes 128": "XtsAes128", "xts-aes 256": "XtsAes256", "aes 128": "Aes128", "aes 256": "Aes256",
                "aes 128 with diffuser": "Aes128Diffuser", "aes 256 with diffuser": "Aes256Diffuser",
                "hardware encryption": "Hardware"}
_PROTECTOR_TEXT = {"tpm": "Tpm", "numerical password": "RecoveryPassword", "numerisches kennwort": "RecoveryPassword",
                   "mot de passe numérique": "RecoveryPassword", "contraseña numérica": "RecoveryPassword",
                   "contraseña": "Password",
                   "external key": "ExternalKey", "password": "Password", "tpm and pin": "TpmPin",
                   "tpm and startup key": "TpmStartupKey", "tpm and pin and startup key": "TpmPinStartupKey"}


def detect_manage_bde_language(text: str) -> str | None:
    for lang, label in _CONVERSION_LABEL.items():
        if re.search(rf"^\s*{re.escape(label)}\s*:", text, re.M):
            return lang
    return None


def parse_manage_bde(text: str) -> tuple[list[Record], str | None]:
    """``manage-bde -status`` → (records, reason). A fragment without its ``Volume`` line
    (as pasted in issues) gives one record with ``mount`` None."""
    lang = detect_manage_bde_language(text)
    if lang is None:
        return [], reason("output.language", "manage-bde", "only English, German, French and Spanish are read")
    labels = _LABELS[lang]
    blocks: list[tuple[str | None, str | None, list[str]]] = []
    mount: str | None = None
    vtype: str | None = None
    lines: list[str] = []
    started = False
    for raw in text.splitlines():
        m = re.match(r'^Volumen?\s+"?([A-Za-z]:|\\\\\?\\Volume\{[^}]+\})"?', raw.strip())
        if m and not raw.startswith(" "):
            if started or lines:
                blocks.append((mount, vtype, lines))
            mount, vtype, lines, started = m.group(1).upper() if ":" in m.group(1)[:2] else m.group(1), None, [], True
            continue
        tag = raw.strip().lower()
        if tag in ("[os volume]", "[betriebssystemvolume]") or re.fullmatch(r"\[volume du système d.exploitation\]", tag):
            vtype = "os"
            continue
        if tag in ("[data volume]", "[datenvolume]", "[volume de données]", "[volumen de datos]"):
            vtype = "data"
            continue
        lines.append(raw)
    blocks.append((mount, vtype, lines))

    records: list[Record] = []
    for mount, vtype, block in blocks:
        fields: dict[str, str] = {}
        protectors: list[str] = []
        in_protectors = False
        for raw in block:
            m = re.match(r"^\s*(.+?):\s*(.*?)\s*$", raw)
            key = labels.get(m.group(1).strip()) if m else None
            if key:
                fields[key] = m.group(2)  # type: ignore[union-attr]
                # The list follows only an empty "Key Protectors:"; "None Found" ends it, and
                # so does any line that is not indented (a transcript's closing prompt).
                in_protectors = key == "protectors" and not m.group(2).strip()  # type: ignore[union-attr]
                continue
            if in_protectors and raw.strip() and raw[:1] in (" ", "\t"):
                protectors.append(raw.strip())
            elif in_protectors and raw.strip():
                in_protectors = False
        if "conversion" not in fields:
            continue
        conv_text = fields["conversion"].strip().lower()
        prot_text = fields.get("protection", "").strip().lower()
        protection = next((v for k, v in _PROTECTION_TEXT[lang] if prot_text.startswith(k)), None)
        method_text = fields.get("method", "").strip().lower()
        names = []
        for p in protectors:
            base = re.sub(r"\s*\(.*\)\s*$", "", p).strip().lower()  # "External Key (Required for automatic unlock)"
            names.append(_PROTECTOR_TEXT.get(base, p))
        records.append(_record(
            mount=mount, volume_type=vtype,
            conversion=_CONVERSION_TEXT[lang].get(conv_text),
            protection=protection,
            lock=_LOCK_TEXT[lang].get(fields.get("lock", "").strip().lower()),
            percent=_num(fields.get("percent")),
            method=None if method_text in _NONE_TEXT or not method_text else _METHOD_TEXT.get(method_text, fields["method"].strip()),
            protectors=names if "protectors" in fields else None,
            source=f"manage-bde ({lang})",
            raw_conversion=fields["conversion"].strip(),
            autounlock=fields.get("autounlock"),
        ))
    if not records:
        return [], reason("output.unrecognised", "manage-bde")
    return records, None


# --------------------------------------------------------------------------- record → fact


def volume_fact(rec: Record, system_drive: str = "C:", fixed: bool | None = None) -> dict[str, Any]:
    """docs/facts.md disk.volumes[] entry. ``encrypted`` is True only when the volume is fully
    converted AND protection is on (or it is locked: its key is not available at all)."""
    conversion, protection = rec.get("conversion"), rec.get("protection")
    mount = rec.get("mount")
    state: str | None
    encrypted: bool | None
    if rec.get("lock") == "locked":
        state, encrypted = "locked", True
    elif conversion == "FullyEncrypted" and protection == "on":
        state, encrypted = "encrypted", True
    elif conversion == "FullyEncrypted" and protection == "off":
        # Encrypted, but the key sits in the clear on the disk. Why decides the fix:
        # protectors present → suspended (Suspend-BitLocker, an update; resumes at a
        # restart); none at all → waiting for activation (Device Encryption before the
        # recovery key is backed up to an account); protectors not seen → clear key.
        protectors = rec.get("protectors")
        if protectors is None:
            state = "clear_key"
        else:
            state = "suspended" if protectors else "waiting_activation"
        encrypted = False
    elif conversion in ("EncryptionInProgress", "EncryptionPaused"):
        state, encrypted = "encrypting", False
    elif conversion in ("DecryptionInProgress", "DecryptionPaused"):
        state, encrypted = "decrypting", False
    elif conversion == "FullyDecrypted":
        state, encrypted = "decrypted", False
    else:
        state, encrypted = None, None  # unrecognised conversion or protection text: not seen
    is_system = rec.get("volume_type") == "os" or (mount or "").upper() == system_drive.upper()
    if fixed is None:
        fixed = rec.get("volume_type") != "portable"
    detail = {k: rec[k] for k in ("conversion", "protection", "lock", "protectors", "source") if rec.get(k) is not None}
    if rec.get("method"):
        detail["encryption_method"] = rec["method"]
    if rec.get("raw_conversion") and rec.get("conversion") is None:
        detail["unrecognised_conversion"] = rec["raw_conversion"]
    return {
        "mount": mount,
        "device": rec.get("device"),
        "role": "system" if is_system else "data",
        "fixed": bool(fixed),
        "encrypted": encrypted,
        "method": "bitlocker" if conversion not in (None, "FullyDecrypted") or rec.get("lock") == "locked" else None,
        "state": state,
        "percent": rec.get("percent"),
        "stack": [],
        "detail": detail,
    }
