"""Check kinds, declared: what each reads from the facts and which parameters it takes.

A security officer can read this file without reading the evaluation code. The
``reads`` of a kind decides which probes run and which facts leave the machine
(data minimisation): a policy without a cloud_storage check never looks at, nor
reports, sync clients.
"""
from __future__ import annotations

from dataclasses import dataclass

from auditagent.schema import (F, AnyScalar, Bool, Either, Enum, Identifier, ListOf, Map, MapOf, NonNegInt,
                               Number, Regex, Str)

PLATFORMS = ("linux", "windows", "macos")
CLOUD_CLIENTS = ("onedrive", "dropbox", "google_drive", "icloud", "box", "nextcloud", "owncloud", "megasync",
                 "pcloud", "jottacloud", "syncthing", "sync_com")
OPERATORS = ("equals", "not_equals", "in", "not_in", "at_least", "at_most", "matches", "exists")


@dataclass(frozen=True)
class Kind:
    """One check kind: the fact sections it reads and the parameters it takes."""

    name: str
    reads: tuple[str, ...]  # fact sections
    parameters: Map
    summary: str


def _approved_client_extra(value: dict, node, path, ctx) -> None:
    if value.get("kind") == "personal" and value.get("tenant"):
        ctx.error(node, path, "a personal account has no tenant; remove 'tenant' or use kind: business")


_approved_client = Map({
    "client": F(Enum(*CLOUD_CLIENTS), required=True, doc="which sync client"),
    "kind": F(Enum("personal", "business"), doc="account kind required"),
    "tenant": F(Str, doc="Entra ID tenant id (OneDrive for business), or Dropbox team"),
    "server": F(Str, doc="server URL (Nextcloud/ownCloud, e.g. https://moln.example.se; OneDrive for business: the organisation's SharePoint, e.g. https://kommun-my.sharepoint.com)"),
    "email_domain": F(Str, doc="account e-mail domain, e.g. kommun.example.se"),
}, extra=_approved_client_extra)

# A minimum version is either one version for the whole platform, or per edition
# (Windows LTSC editions are supported far longer than Home/Pro).
_min_version = Either(Str, NonNegInt, Number, MapOf(Either(Str, Number), what="edition"))

KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("disk_encryption", ("disk",), Map({
        "system": F(Bool, default=True, doc="the volume holding the OS (and on macOS its data volume)"),
        "fixed": F(Bool, default=True, doc="every other fixed (non-removable) volume, including /home"),
        "swap": F(Bool, default=True, doc="swap and hibernation space"),
        "allow_in_progress": F(Bool, default=False, doc="count a volume still encrypting as encrypted"),
    }), "data at rest is encrypted on the system volume, all fixed volumes and swap"),
    Kind("os_patches", ("patches",), Map({
        "max_days_since_update": F(NonNegInt, required=True, doc="days since OS updates were last installed"),
        "max_pending_security": F(NonNegInt, default=0, doc="pending security updates allowed"),
        "max_pending_security_age_days": F(Number, doc="how long a pending security update may wait"),
        "allow_reboot_pending": F(Bool, default=True, doc="whether a pending restart after updates is acceptable"),
    }), "OS updates are installed promptly"),
    Kind("os_supported", ("os",), Map({
        "minimum": F(MapOf(_min_version, what="OS id (windows, macos, ubuntu, debian, fedora …)"), required=True,
                     doc="minimum version per OS id; anything older is past end of support"),
        "unlisted": F(Enum("unknown", "fail", "pass"), default="unknown",
                      doc="verdict for an OS that 'minimum' does not name"),
    }), "the OS still gets security updates from its vendor"),
    Kind("cloud_storage", ("cloud",), Map({
        "approved": F(ListOf(_approved_client), required=True, doc="sync clients/accounts allowed"),
        "flag_installed": F(Bool, default=True,
                            doc="an unapproved client that is installed but not running is a finding too"),
    }), "files sync only to the organisation's approved cloud"),
    Kind("firewall", ("firewall",), Map({
        "all_profiles": F(Bool, default=True, doc="Windows: domain, private and public profiles all on"),
    }), "a host firewall filters inbound connections"),
    Kind("screen_lock", ("screen_lock",), Map({
        "max_idle_seconds": F(NonNegInt, required=True, doc="screen locks after at most this many idle seconds"),
    }), "an unattended screen locks by itself"),
    Kind("antimalware", ("antimalware",), Map({
        "realtime": F(Bool, default=True, doc="real-time protection must be on"),
        "max_signature_age_days": F(Number, default=3, doc="signatures at most this many days old"),
    }), "malware protection is on and current"),
    Kind("fact", (), Map({
        "path": F(Str, required=True, doc="fact path, e.g. os.id or disk.volumes[].encrypted"),
        "op": F(Enum(*OPERATORS), required=True),
        "value": F(Either(AnyScalar, ListOf(AnyScalar)), doc="what to compare with (not for 'exists')"),
        "quantifier": F(Enum("all", "any"), default="all", doc="over list paths ([]): every item, or at least one"),
        "missing": F(Enum("unknown", "fail", "pass"), default="unknown", doc="verdict when the fact was not seen"),
    }), "a generic condition on any fact"),
)}

# Parameters a 'fact' check's value must satisfy per operator.
FACT_VALUE_SHAPE = {
    "equals": "scalar", "not_equals": "scalar", "at_least": "number_or_version", "at_most": "number_or_version",
    "in": "list", "not_in": "list", "matches": "regex", "exists": "none",
}

__all__ = ["KINDS", "Kind", "PLATFORMS", "CLOUD_CLIENTS", "OPERATORS", "FACT_VALUE_SHAPE", "Regex", "Identifier"]
