"""One PowerShell process per check run.

Starting PowerShell costs about a second, so every structured source that needs it
(BitLocker, hot fixes, Windows Update, firewall profiles, Defender) is gathered by ONE
script into ONE JSON object, a key per source. Each source sits in its own try/catch:
a failing cmdlet (no admin rights, Defender replaced by another product) becomes
``{"error": "..."}`` under its key and the other sources still arrive. The registry is
not read here: Python reads it directly through ``host.registry_values`` (winreg).

The script holds no double quotes (powershell.exe's command-line parser strips them
from ``-Command`` arguments) and prints ASCII only (non-ASCII escaped as \\uXXXX), so
the console code page cannot garble names.

Every value is culture-invariant and typed (docs/snapshot-contract.md): dates as ISO 8601
(``yyyy-MM-dd`` for a calendar day, ``'o'`` in UTC for a moment), numbers as JSON numbers,
enums as their name and, beside it, their integer value (``VolumeStatus`` /
``VolumeStatusValue``). Hot fixes are read one by one, so one entry whose date cannot be
read (PowerShell's InstalledOn ScriptProperty throws on some machines) loses only its date.
"""
from __future__ import annotations

import json
from typing import Any

from auditagent.host import Host
from auditagent.reasons import reason

SNAPSHOT_TIMEOUT = 120.0  # Windows Update's offline search and Defender can each take seconds

SCRIPT = r"""
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$inv = [Globalization.CultureInfo]::InvariantCulture
$r = [ordered]@{ schema = 2 }
try {
  $r['os'] = Get-CimInstance -ClassName Win32_OperatingSystem | Select-Object Caption, Version, BuildNumber, OSArchitecture
} catch { $r['os'] = @{ error = $_.Exception.Message } }
try {
  $r['logical_disks'] = @(Get-CimInstance -ClassName Win32_LogicalDisk | ForEach-Object {
    [ordered]@{ DeviceID = $_.DeviceID; DriveType = [int]$_.DriveType; FileSystem = $_.FileSystem; VolumeName = $_.VolumeName } })
} catch { $r['logical_disks'] = @{ error = $_.Exception.Message } }
try {
  $r['bitlocker'] = @(Get-BitLockerVolume | ForEach-Object {
    [ordered]@{
      MountPoint = $_.MountPoint; VolumeType = [string]$_.VolumeType; VolumeTypeValue = [int]$_.VolumeType
      VolumeStatus = [string]$_.VolumeStatus; VolumeStatusValue = [int]$_.VolumeStatus
      ProtectionStatus = [string]$_.ProtectionStatus; ProtectionStatusValue = [int]$_.ProtectionStatus
      LockStatus = [string]$_.LockStatus; LockStatusValue = [int]$_.LockStatus
      EncryptionPercentage = [double]$_.EncryptionPercentage
      EncryptionMethod = [string]$_.EncryptionMethod; EncryptionMethodValue = [int]$_.EncryptionMethod
      KeyProtector = @($_.KeyProtector | ForEach-Object { [string]$_.KeyProtectorType })
    } })
} catch { $r['bitlocker'] = @{ error = $_.Exception.Message } }
try {
  $r['encryptable_volumes'] = @(Get-CimInstance -Namespace 'root/cimv2/Security/MicrosoftVolumeEncryption' -ClassName Win32_EncryptableVolume | ForEach-Object {
    $v = $_
    $conv = Invoke-CimMethod -InputObject $v -MethodName GetConversionStatus -Arguments @{ PrecisionFactor = 1 }
    $prot = Invoke-CimMethod -InputObject $v -MethodName GetProtectionStatus
    $ids = (Invoke-CimMethod -InputObject $v -MethodName GetKeyProtectors -Arguments @{ KeyProtectorType = [uint32]0 }).VolumeKeyProtectorID
    [ordered]@{
      DriveLetter = $v.DriveLetter; DeviceID = $v.DeviceID; VolumeType = $v.VolumeType
      ProtectionStatus = $prot.ProtectionStatus; ConversionStatus = $conv.ConversionStatus
      EncryptionPercentage = $conv.EncryptionPercentage; PrecisionFactor = 1; EncryptionMethod = $v.EncryptionMethod
      KeyProtectorTypes = @($ids | ForEach-Object { (Invoke-CimMethod -InputObject $v -MethodName GetKeyProtectorType -Arguments @{ VolumeKeyProtectorID = $_ }).KeyProtectorType })
    } })
} catch { $r['encryptable_volumes'] = @{ error = $_.Exception.Message } }
try {
  $r['hotfixes'] = @(Get-CimInstance -ClassName Win32_QuickFixEngineering | ForEach-Object {
    $raw = $null; $day = $null
    try { $raw = [string]$_.CimInstanceProperties['InstalledOn'].Value } catch { }
    try { $d = $_.InstalledOn; if ($d -is [datetime]) { $day = $d.ToString('yyyy-MM-dd', $inv) } } catch { }
    [ordered]@{ HotFixID = $_.HotFixID; Description = $_.Description; InstalledOn = $day; InstalledOnRaw = $raw } })
} catch { $r['hotfixes'] = @{ error = $_.Exception.Message } }
try {
  $searcher = (New-Object -ComObject Microsoft.Update.Session).CreateUpdateSearcher()
  $searcher.Online = $false
  $found = $searcher.Search('IsInstalled=0 and IsHidden=0 and Type=''Software''')
  $r['wu_pending'] = @($found.Updates | ForEach-Object {
    [ordered]@{ Title = $_.Title; MsrcSeverity = $_.MsrcSeverity; KBArticleIDs = @($_.KBArticleIDs)
      CategoryIDs = @($_.Categories | ForEach-Object { $_.CategoryID }); RebootRequired = $_.RebootRequired } })
} catch { $r['wu_pending'] = @{ error = $_.Exception.Message } }
try {
  $r['firewall_profiles'] = @(Get-NetFirewallProfile -PolicyStore ActiveStore | ForEach-Object {
    [ordered]@{ Name = [string]$_.Name; Enabled = [string]$_.Enabled; EnabledValue = [int]$_.Enabled
      DefaultInboundAction = [string]$_.DefaultInboundAction; DefaultInboundActionValue = [int]$_.DefaultInboundAction } })
} catch { $r['firewall_profiles'] = @{ error = $_.Exception.Message } }
try {
  $m = Get-MpComputerStatus
  $r['defender'] = [ordered]@{
    AMServiceEnabled = $m.AMServiceEnabled; AntivirusEnabled = $m.AntivirusEnabled
    RealTimeProtectionEnabled = $m.RealTimeProtectionEnabled; AMRunningMode = [string]$m.AMRunningMode
    AntivirusSignatureAge = $m.AntivirusSignatureAge
    AntivirusSignatureLastUpdated = $(if ($m.AntivirusSignatureLastUpdated) { $m.AntivirusSignatureLastUpdated.ToUniversalTime().ToString('o') } else { $null })
  }
} catch { $r['defender'] = @{ error = $_.Exception.Message } }
try {
  $r['av_products'] = @(Get-CimInstance -Namespace 'root/SecurityCenter2' -ClassName AntiVirusProduct | ForEach-Object {
    [ordered]@{ displayName = $_.displayName; productState = $_.productState } })
} catch { $r['av_products'] = @{ error = $_.Exception.Message } }
$json = ConvertTo-Json -InputObject $r -Depth 6 -Compress
[regex]::Replace($json, '[^\x00-\x7F]', { param($c) '\u{0:x4}' -f [int][char]$c.Value })
""".strip()

ARGV = ("powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-Command", SCRIPT)

SOURCES = ("os", "logical_disks", "bitlocker", "encryptable_volumes", "hotfixes", "wu_pending",
           "firewall_profiles", "defender", "av_products")


def parse_snapshot(text: str) -> dict[str, Any]:
    """The script's JSON, or ``{"error": ...}`` when it is not JSON at all."""
    start = text.find("{")
    if start < 0:
        return {"error": reason("output.unrecognised", "powershell.exe", "no JSON")}
    try:
        data = json.loads(text[start:])
    except ValueError as exc:
        return {"error": reason("output.unrecognised", "powershell.exe", exc.msg)}
    return data if isinstance(data, dict) else {"error": reason("output.unrecognised", "powershell.exe",
                                                                "not a JSON object")}


def snapshot(host: Host) -> dict[str, Any]:
    """The snapshot of this check run: computed once, shared by every probe via host.memo."""

    def compute() -> dict[str, Any]:
        result = host.run(ARGV, timeout=SNAPSHOT_TIMEOUT)
        if not result.ok and not result.stdout:
            return {"error": result.why_not()}
        return parse_snapshot(result.text())

    return host.memo("windows_snapshot", compute)


def source(snap: dict[str, Any], key: str) -> tuple[Any, str | None]:
    """(data, None) or (None, reason). Lists always come back as lists: ConvertTo-Json
    writes a one-element array as the bare element on some PowerShell versions."""
    if "error" in snap and key not in snap:
        return None, str(snap["error"])
    if key not in snap:
        return None, reason("value.missing", f"powershell {key}")
    data = snap[key]
    if isinstance(data, dict) and set(data) == {"error"}:
        return None, reason("source.failed", key, data["error"])
    return data, None


def source_list(snap: dict[str, Any], key: str) -> tuple[list[dict[str, Any]] | None, str | None]:
    data, why = source(snap, key)
    if data is None:
        return None, why
    if isinstance(data, dict):
        data = [data]
    return [d for d in data if isinstance(d, dict)], None
