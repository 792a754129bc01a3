"""Sync-client records the Windows and macOS cloud probes build (Linux keeps its own).

Pure helpers, except ``read_client_configs``, which reads through the Host seam.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from auditagent.probes import ProbeContext
from auditagent.reasons import reason


def new_client(name: str) -> dict[str, Any]:
    return {"name": name, "installed": False, "running": False, "accounts": [], "evidence": []}


def add_account(client: dict[str, Any], account: dict[str, Any]) -> None:
    """Accounts are deduplicated: the same account is often seen in two places (HKCU and
    HKU\\<sid>, a CloudStorage folder and the app's config)."""
    if account not in client["accounts"]:
        client["accounts"].append(account)


def add_evidence(client: dict[str, Any], evidence: str) -> None:
    if evidence not in client["evidence"]:
        client["evidence"].append(evidence)


def shorten_home(path: str, homes: Iterable[str]) -> str:
    """``C:\\Users\\anna\\AppData\\…`` → ``~\\AppData\\…`` (facts.md: evidence never names people)."""
    for home in sorted(homes, key=len, reverse=True):
        if home and path.lower().startswith(home.lower().rstrip("\\/")):
            rest = path[len(home.rstrip("\\/")):]
            if not rest or rest[0] in "\\/":
                return "~" + rest
    return path


ConfigParser = Callable[[str], Iterable[dict[str, Any]]]


def read_client_configs(ctx: ProbeContext, clients: dict[str, dict[str, Any]],
                        files: Iterable[tuple[str, str, ConfigParser]], homes: list[str],
                        reasons: list[str]) -> None:
    """Sync clients' own config files (Dropbox info.json, Nextcloud/ownCloud .cfg): a file
    that exists marks the client installed; its accounts are added; an unreadable one is a reason."""
    for name, path, parser in files:
        try:
            text = ctx.host.read_text(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            reasons.append(reason("file.unreadable", shorten_home(path, homes), exc.__class__.__name__))
            continue
        c = clients.setdefault(name, new_client(name))
        c["installed"] = True
        add_evidence(c, f"file:{shorten_home(path, homes)}")
        try:
            for acc in parser(text):
                add_account(c, acc)
        except ValueError:
            reasons.append(reason("output.unrecognised", shorten_home(path, homes), f"not a {name} config"))
