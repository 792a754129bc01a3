"""Registry glue shared by the Windows probes (reads only through the Host)."""
from __future__ import annotations

import re
from typing import Any

from auditagent.host import Host, RegistryError

# Interactive users' SIDs (local and domain accounts): S-1-5-21-…; the *_Classes hives are skipped.
_USER_SID = re.compile(r"^S-1-5-21-[\d-]+$", re.I)


class RegistryValues(dict):  # type: ignore[type-arg]
    """A key's values by name, looked up as Windows does: without regard to case. The
    registry keeps a name in the case it was first written (`reg add ... /v ScreenSaveTimeout`
    makes "ScreenSaveTimeout", Group Policy writes "ScreenSaveTimeOut") and finds it under
    either, so a probe asking for one spelling must not miss the other. Names are stored folded."""

    def __init__(self, data: Any = None) -> None:
        super().__init__()
        self.update(data or {})

    @staticmethod
    def _fold(name: Any) -> Any:
        return name.casefold() if isinstance(name, str) else name

    def __setitem__(self, name: Any, value: Any) -> None:
        super().__setitem__(self._fold(name), value)

    def __getitem__(self, name: Any) -> Any:
        return super().__getitem__(self._fold(name))

    def __contains__(self, name: object) -> bool:
        return super().__contains__(self._fold(name))

    def get(self, name: Any, default: Any = None) -> Any:
        return super().get(self._fold(name), default)

    def update(self, other: Any = (), **kw: Any) -> None:  # type: ignore[override]
        for name, value in dict(other, **kw).items():
            self[name] = value


def values(host: Host, key: str) -> RegistryValues | None:
    try:
        return RegistryValues(host.registry_values(key))
    except (RegistryError, OSError):
        return None


def subkeys(host: Host, key: str) -> list[str] | None:
    try:
        return host.registry_subkeys(key)
    except (RegistryError, OSError):
        return None


def running_as_system(host: Host) -> bool:
    """A scheduled task as SYSTEM sees SYSTEM's own HKCU, not the users'."""
    user = (host.getenv("USERNAME") or "").upper()
    profile = (host.getenv("USERPROFILE") or "").lower()
    return user == "SYSTEM" or user.endswith("$") or profile.endswith("\\systemprofile")


def user_roots(host: Host) -> list[str]:
    """Registry roots of the people who use this machine: HKCU for an interactive run; as
    SYSTEM, every loaded user hive HKU\\<SID> (users signed in at the time of the check)."""
    roots = [] if running_as_system(host) else ["HKCU"]
    for sid in subkeys(host, "HKU") or []:
        if _USER_SID.match(sid):
            roots.append(f"HKU\\{sid}")
    return roots or ["HKCU"]


def dword(value: Any) -> int | None:
    """REG_DWORD comes as int; policy tools sometimes write numbers as REG_SZ."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


_HIVES = {"HKEY_LOCAL_MACHINE": "HKLM", "HKEY_CURRENT_USER": "HKCU", "HKEY_USERS": "HKU",
          "HKEY_CLASSES_ROOT": "HKCR", "HKEY_CURRENT_CONFIG": "HKCC"}
_REG_KEY = re.compile(r"^\s*(HKEY_[A-Z_]+)((?:\\[^\r\n]*)?)\s*$")
_REG_VALUE = re.compile(r"^\s*(\S.*?) {4}(REG_[A-Z_]+)(?: {4}(.*?))?\s*$")


def _reg_data(kind: str, text: str) -> Any:
    if kind in ("REG_DWORD", "REG_QWORD"):
        try:
            return int(text, 16) if text.lower().startswith("0x") else int(text)
        except ValueError:
            return None
    if kind == "REG_MULTI_SZ":
        return [part for part in text.split("\\0") if part]
    return text  # REG_SZ, REG_EXPAND_SZ as printed; REG_BINARY stays its hex text


def parse_reg_query(text: str) -> dict[str, RegistryValues]:
    """``reg query`` text (as IT staff paste it) → {key: values}, with the hive short names the
    probes use (HKCU, HKLM, HKU). Values printed before any key line (an excerpt that kept only
    the value line) are filed under the key "". Pure: for captures; the probes read the
    registry through the Host."""
    out: dict[str, RegistryValues] = {}
    key = ""
    for line in text.splitlines():
        m = _REG_KEY.match(line)
        if m:
            key = _HIVES.get(m.group(1), m.group(1)) + m.group(2)
            out.setdefault(key, RegistryValues())
            continue
        m = _REG_VALUE.match(line)
        if m:
            out.setdefault(key, RegistryValues())[m.group(1)] = _reg_data(m.group(2), m.group(3) or "")
    return out
