"""Pure parsers of zypper's ``--xmlout`` answers (openSUSE, SLES). The XML is zypper's
culture-invariant interface (``zypper.rnc`` in zypper's sources): element and attribute
names and the ``kind``/``category``/``status`` values are never translated, while the
``<message>`` elements and the summaries are. Each parser takes text, returns plain data,
and raises ValueError for an answer that is not zypper's XML (the probe reports that;
it never guesses a count)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

# A patch in one of these states awaits nothing; every other state (``needed``, and any
# state a later zypper adds) counts as not installed: unknown fails closed.
_SETTLED = frozenset({"applied", "not-needed", "not needed"})


def _updates(text: str) -> list[ET.Element]:
    # zypper never writes a DOCTYPE; refusing one keeps entity expansion out of the reader.
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise ValueError("zypper XML with a DOCTYPE")
    import xml.etree.ElementTree as ET  # only where zypper answers: not on every run elsewhere

    try:
        root = ET.fromstring(text.strip())
    except ET.ParseError as exc:
        raise ValueError(f"not zypper XML: {exc}") from exc
    status = root.find("update-status")
    if root.tag != "stream" or status is None:
        errors = [m.text or "" for m in root.iter("message") if m.get("type") == "error"]
        raise ValueError("; ".join(errors) or "zypper XML without update-status")
    return status.findall("./update-list/update")


def parse_zypper_list_updates(text: str) -> list[dict[str, Any]]:
    """``zypper --xmlout list-updates``: one ``<update kind="package">`` per package with a
    newer version (``edition``; ``edition-old`` from zypper 1.14 on). Entries of another
    kind (patches listed with ``-t patch``) are not packages and are left out."""
    out = []
    for u in _updates(text):
        if (u.get("kind") or "package") != "package":
            continue
        src = u.find("source")
        out.append({"name": u.get("name"), "version": u.get("edition"), "from": u.get("edition-old"),
                    "arch": u.get("arch"), "repo": src.get("alias") if src is not None else None})
    return out


def parse_zypper_list_patches(text: str) -> list[dict[str, Any]]:
    """``zypper --xmlout list-patches [--all]``: one ``<update kind="patch">`` per patch
    with its ``category`` (security, recommended, optional, feature, document, yast),
    ``severity``, ``status`` (needed, applied, not-needed) and whether installing it
    needs a reboot (``restart``). ``pending`` is True unless the status says settled."""
    out = []
    for u in _updates(text):
        if u.get("kind") != "patch":
            continue
        status = (u.get("status") or "").lower()
        out.append({"name": u.get("name"), "category": (u.get("category") or "").lower(),
                    "severity": u.get("severity"), "status": status or None,
                    "pending": status not in _SETTLED, "restart": u.get("restart") == "true",
                    "summary": (u.findtext("summary") or "").strip()})
    return out


def parse_zypper_needs_rebooting(returncode: int | None) -> bool | None:
    """``zypper needs-rebooting`` (newer zyppers: Leap 15, SLE 15 on) answers by exit code
    alone: 102 (ZYPPER_EXIT_INF_REBOOT_NEEDED) when a core library or service installed since
    the last boot flagged a reboot, 0 when none did. Anything else says nothing."""
    return {0: False, 102: True}.get(returncode) if returncode is not None else None
