"""Why something could not be seen: one code per kind of gap, translated for staff.

A reason in the facts is ``"<code>"`` or ``"<code>: <subject>"``, optionally followed by
`` — <detail>``: the code is one of ``CODES`` (the catalogs ``auditagent/i18n/*.yaml``
hold ``reason.<code>`` in sv, da and en), the subject names a tool, file, registry key or
source (never prose), the detail is the operating system's own words for IT (an error
message), which the self-check does not show to staff. Collectors and exports keep the
whole string.
"""
from __future__ import annotations

import re

# code → what it means (English, for this file's readers; staff see the catalogs).
CODES: dict[str, str] = {
    "tool.not_found": "the command is not installed",
    "tool.denied": "the command was refused (no permission)",
    "tool.timeout": "the command did not answer in time",
    "tool.failed": "the command failed",
    "output.unrecognised": "the output is not in a form we read",
    "output.language": "the output is in a language we do not read",
    "file.missing": "the file is not there",
    "file.unreadable": "the file could not be read",
    "registry.unreadable": "the registry key could not be read",
    "source.failed": "a structured source answered with an error",
    "value.missing": "a value was not reported",
    "probe.failed": "the check itself failed (a bug)",
    "probe.none": "no check for this OS yet",
    "not_checked_here": "the check does not apply to this OS",
    "volume.not_listed": "a volume was not listed by the encryption tool",
    "volume.device_unknown": "the device under a mount could not be identified",
    "volume.not_every": "the encryption state was not seen for every volume",
    "desktop.none": "no graphical desktop",
    "desktop.unsupported": "a desktop this check does not read",
    "firewall.no_tool": "no firewall tool found",
    "firewall.ufw_not_filtering": "ufw says active, the kernel does not filter",
    "patches.no_manager": "no supported package manager",
    "patches.no_security_info": "the package manager does not mark security updates",
    "patches.reboot_unknowable": "nothing on this system tells whether a restart is needed",
    "patches.dpkg_status_time": "install time taken from the package database",
    "patches.rolling_release": "a rolling release is updated with zypper dup, which list-updates does not count",
    "hotfixes.undated": "some hot fixes carry no readable date",
    "hotfixes.no_date": "no hot fix carries a readable date",
    "history.no_os_update": "no OS update in the install history",
    "antimalware.third_party": "another antivirus product: its real-time state is not read",
    "homes.none": "no home folders found",
    "processes.unreadable": "the process list could not be read",
}

_REASON = re.compile(r"^(?P<code>[a-z_]+(?:\.[a-z_]+)*)(?::\s(?P<subject>.*?))?(?:\s—\s(?P<detail>.*))?$", re.S)


def reason(code: str, subject: object | None = None, detail: object | None = None) -> str:
    """The reason string for the facts. An unknown code is a programming error."""
    if code not in CODES:
        raise KeyError(f"unknown reason code {code!r} (add it to probes/reasons.py and the catalogs)")
    text = code if subject in (None, "") else f"{code}: {subject}"
    if detail not in (None, ""):
        text += f" — {str(detail).strip()[:200]}"
    return text


def parse(text: str) -> tuple[str, str | None, str | None] | None:
    """(code, subject, detail) of a reason string, or None when it is not one."""
    m = _REASON.match(text)
    if not m or m.group("code") not in CODES:
        return None
    return m.group("code"), m.group("subject"), m.group("detail")
