"""Pure parsers for the Linux disk probe: /proc tables, device-mapper names and
the outputs of lsblk, dmsetup, cryptsetup, lsattr and fscrypt."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Mount:
    """One mounted filesystem (from /proc/self/mountinfo or /proc/mounts)."""

    source: str
    mountpoint: str
    fstype: str
    devno: str | None = None  # "major:minor" (mountinfo only)
    root: str = "/"  # the subtree mounted (bind mounts, btrfs subvolumes)


def _unescape(field: str) -> str:
    """/proc escapes space, tab, newline and backslash as octal (\\040 …)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_proc_mounts(text: str) -> list[Mount]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            out.append(Mount(_unescape(parts[0]), _unescape(parts[1]), parts[2]))
    return out


def parse_mountinfo(text: str) -> list[Mount]:
    """/proc/self/mountinfo: ``id parent maj:min root mountpoint opts [optional…] - fstype source superopts``."""
    out = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lparts, rparts = left.split(), right.split()
        if len(lparts) < 5 or len(rparts) < 2:
            continue
        out.append(Mount(_unescape(rparts[1]), _unescape(lparts[4]), rparts[0], lparts[2], _unescape(lparts[3])))
    return out


@dataclass(frozen=True)
class Swap:
    """One active swap area (from /proc/swaps)."""

    filename: str
    kind: str  # partition | file


def parse_proc_swaps(text: str) -> list[Swap]:
    out = []
    for line in text.splitlines()[1:]:  # first line is the header
        parts = line.split()
        if len(parts) >= 2:
            out.append(Swap(_unescape(parts[0]), parts[1]))
    return out


# --------------------------------------------------------------------------- device-mapper


def dm_kind(uuid: str) -> tuple[str, str | None]:
    """Classify a dm device by its uuid prefix (set by cryptsetup / LVM / multipath).
    Returns (label for the stack, encryption method or None)."""
    u = uuid.strip()
    if u.startswith("CRYPT-LUKS2-"):
        return "crypt LUKS2", "luks2"
    if u.startswith("CRYPT-LUKS1-") or u.startswith("CRYPT-LUKS-"):
        return "crypt LUKS1", "luks1"
    if u.startswith("CRYPT-PLAIN-"):
        return "crypt PLAIN", "dm-crypt-plain"
    if u.startswith("CRYPT-BITLK-"):
        return "crypt BITLK", "bitlocker"
    if u.startswith("CRYPT-TCRYPT-"):
        return "crypt TCRYPT", "tcrypt"
    # dm-verity and dm-integrity also carry CRYPT- uuids but protect integrity, not secrecy.
    if u.startswith("CRYPT-VERITY-"):
        return "verity", None
    if u.startswith("CRYPT-INTEGRITY-"):
        return "integrity", None
    if u.startswith("CRYPT-"):
        return "crypt " + u.split("-")[1], "dm-crypt"
    if u.startswith("LVM-"):
        return "lvm", None
    if u.startswith("mpath-"):
        return "multipath", None
    if u.startswith("part"):
        return "partition", None
    return "dm", None


def parse_dmsetup_table(text: str) -> dict[str, list[dict[str, Any]]]:
    """``dmsetup table [NAME]``: lines ``[name: ]start length target args``. A single-device
    table has no ``name:`` prefix; it is filed under ''. Prompt lines are skipped."""
    out: dict[str, list[dict[str, Any]]] = {}
    for line in text.splitlines():
        m = re.match(r"^(?:(\S+): )?(\d+) (\d+) (\S+)\s*(.*)$", line.strip())
        if not m:
            continue
        name, start, length, target, args = m.groups()
        out.setdefault(name or "", []).append({"start": int(start), "length": int(length), "target": target,
                                               "args": args.split()})
    return out


def crypt_table_facts(segment: dict[str, Any]) -> dict[str, Any]:
    """Details of one ``crypt`` target: cipher, key in kernel keyring or not, backing device."""
    args = segment["args"]
    if segment["target"] != "crypt" or len(args) < 5:
        return {}
    return {"cipher": args[0], "key_in_keyring": args[1].startswith(":"), "device": args[3],
            "options": args[6:] if len(args) > 6 else []}


def parse_cryptsetup_status(text: str) -> dict[str, Any]:
    """``cryptsetup status NAME``: {mapping, active, in_use, type, cipher, keysize, device (backing), …}."""
    out: dict[str, Any] = {"mapping": None, "active": None, "in_use": None, "found": True}
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return out
    head = lines[0].strip()
    if re.match(r"Device \S+ not found", head) or "doesn't exist" in head:
        return {**out, "found": False, "active": False, "in_use": False}
    m = re.match(r"^(\S+) is (inactive|active)(?: and is (in use))?", head)
    if m:
        out["mapping"] = m.group(1)
        out["active"] = m.group(2) == "active"
        out["in_use"] = bool(m.group(3))
    for line in lines[1:]:
        key, sep, value = line.strip().partition(":")
        if sep:
            out[key.strip().replace(" ", "_")] = value.strip()
    if "type" in out:
        out["method"] = {"LUKS1": "luks1", "LUKS2": "luks2", "PLAIN": "dm-crypt-plain",
                         "BITLK": "bitlocker", "TCRYPT": "tcrypt"}.get(out["type"], "dm-crypt")
    return out


# --------------------------------------------------------------------------- lsblk


def parse_lsblk_json(text: str) -> list[dict[str, Any]]:
    """``lsblk -J``: flattened nodes {name, fstype, fsver, mountpoints, parents: [names]},
    each listing the chain of devices below it (nearest first)."""
    data = json.loads(text)
    out: list[dict[str, Any]] = []

    def walk(node: dict[str, Any], parents: list[dict[str, Any]]) -> None:
        mps = node.get("mountpoints")
        if mps is None:
            mps = [node.get("mountpoint")]
        entry = {"name": node.get("name"), "type": node.get("type"), "fstype": node.get("fstype"),
                 "fsver": node.get("fsver"), "mountpoints": [m for m in mps if m],
                 "rm": node.get("rm"), "parents": [p["name"] for p in reversed(parents)],
                 "_parents": list(reversed(parents))}
        out.append(entry)
        for child in node.get("children") or []:
            walk(child, parents + [node])

    for dev in data.get("blockdevices", []):
        walk(dev, [])
    return out


def lsblk_encryption(entry: dict[str, Any]) -> str | None:
    """Method protecting an lsblk node: a ``crypt`` node itself or any device below it
    whose parent is a ``crypto_LUKS`` container (the unlocked mapping sits on it)."""
    chain = [entry] + entry["_parents"]
    for i, node in enumerate(chain):
        below = chain[i + 1] if i + 1 < len(chain) else None
        if below is not None and below.get("fstype") == "crypto_LUKS":
            ver = str(below.get("fsver") or "")
            return "luks2" if ver.startswith("2") else "luks1" if ver.startswith("1") else "dm-crypt"
        if node.get("type") == "crypt":
            return "dm-crypt"
    return None


_TREE = re.compile(r"^([\s│├└─`|-]*)(\S+)")


def parse_lsblk_tree_text(text: str) -> list[dict[str, Any]]:
    """``lsblk`` tree-drawn text (for people; used only to read captures): nodes with
    name, depth, type, fstype, fsver, mountpoints and parent. Whatever columns the header
    names are read (``-f``, ``-o NAME,TYPE,MAJ:MIN``, ``MOUNTPOINT`` before util-linux 2.37);
    missing ones stay None. Unicode (``├─``) and ASCII (``|-`` with ``-i``) trees both read.
    A name wider than its column (a narrow terminal) pushes the rest of its row right: the
    row's other columns are read shifted by that overflow. Lines before the header (the
    command line as pasted, ``# lsblk -o NAME,…``) are skipped; lines indented as the header is
    (a Markdown code block) read as if not indented."""
    lines = text.splitlines()
    at = next((i for i, line in enumerate(lines) if line.split()[:1] == ["NAME"]), None)
    if at is None:
        return []
    header, lines = lines[at], lines[at:]
    starts = [(m.start(), m.group(0)) for m in re.finditer(r"\S+", header)]
    cols = {name: (pos, starts[i + 1][0] if i + 1 < len(starts) else None) for i, (pos, name) in enumerate(starts)}
    mp_col = "MOUNTPOINTS" if "MOUNTPOINTS" in cols else "MOUNTPOINT" if "MOUNTPOINT" in cols else None
    name_end = cols["NAME"][1]
    # A capture pasted as a Markdown code block indents every line: depth counts from the header's.
    indent = cols["NAME"][0]

    def cell(line: str, col: str, shift: int) -> str | None:
        if col not in cols:
            return None
        begin, stop = cols[col]
        # lsblk sizes each column to its widest value; only the last one runs to the line's end.
        value = line[begin + shift:] if stop is None else line[begin + shift:stop + shift]
        return value.strip() or None

    out: list[dict[str, Any]] = []
    for line in lines[1:]:
        if not line.strip():
            continue
        m = _TREE.match(line)
        prefix, name = (m.group(1), m.group(2)) if m else ("", line.strip())
        if name_end is not None and m and m.start(2) >= name_end:
            # Nothing in the NAME column but tree lines (``│``, ``|`` of a sibling below):
            # a further mountpoint of the device above.
            mp = cell(line, mp_col, 0) if mp_col else None
            if out and mp:
                out[-1]["mountpoints"].append(mp)
            continue
        shift = max(0, m.end() + 1 - name_end) if (m and name_end is not None) else 0
        mp = cell(line, mp_col, shift) if mp_col else None
        fsver = cell(line, "FSVER", shift)
        out.append({"name": name, "depth": max(0, len(prefix) - indent) // 2, "type": cell(line, "TYPE", shift),
                    "fstype": cell(line, "FSTYPE", shift), "fsver": fsver.split()[0] if fsver else None,
                    "mountpoints": [mp] if mp else []})
    for i, node in enumerate(out):
        node["parent"] = next((out[j]["name"] for j in range(i - 1, -1, -1) if out[j]["depth"] < node["depth"]), None)
    return out


# --------------------------------------------------------------------------- fscrypt


def parse_lsattr_dir(text: str) -> bool | None:
    """``lsattr -d PATH``: ``---------E----e------- /home/anna``; ``E`` = encrypted (fscrypt)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    flags = line.split(" ", 1)[0]
    if not flags or not re.fullmatch(r"[-A-Za-z]+", flags):
        return None
    return "E" in flags


def parse_fscrypt_status(text: str) -> dict[str, Any]:
    """``fscrypt status PATH`` for a directory: encrypted?, policy version, unlocked?."""
    encrypted = None
    if re.search(r'is encrypted with fscrypt', text):
        encrypted = True
    elif re.search(r'is not encrypted', text):
        encrypted = False
    m = re.search(r"Policy:\s+(\S+)", text)
    version = re.search(r"Options:.*?v(\d)", text) or re.search(r"policy_version:(\d)", text)
    unlocked = re.search(r"Unlocked:\s+(\w+)", text)
    return {"encrypted": encrypted, "policy": m.group(1) if m else None,
            "policy_version": int(version.group(1)) if version else None,
            "unlocked": unlocked.group(1).lower() == "yes" if unlocked else None}
