"""The block-device graph as sysfs shows it, read through the Host.

Needs neither udev nor device-mapper tools nor systemd: /sys/class/block/<name>
links into /sys/devices, ``slaves/`` name the devices below a dm/md device,
``dm/uuid`` says what a dm device is (CRYPT-LUKS2-…, LVM-…), ``partition`` marks
a partition whose parent disk is the directory above it.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from auditagent.host import Host
from auditagent.probes.disk_encryption.linux_parsers import dm_kind, parse_dmsetup_table

SYS_BLOCK = "/sys/class/block"


@dataclass
class Layer:
    """One device in a stack, with the devices it is built on."""

    kname: str
    label: str
    method: str | None = None  # encryption this layer adds
    uncertain: bool = False  # a dm device whose kind could not be seen
    removable: bool | None = None  # leaves only
    children: list["Layer"] = field(default_factory=list)

    def encrypted(self) -> bool | None:
        """True if every path down to the disks passes an encrypting layer."""
        if self.method:
            return True
        if not self.children:
            return None if self.uncertain else False
        results = [c.encrypted() for c in self.children]
        if all(r is True for r in results):
            return True
        if any(r is False for r in results) and not self.uncertain:
            return False
        return None

    def first_method(self) -> str | None:
        if self.method:
            return self.method
        for child in self.children:
            found = child.first_method()
            if found:
                return found
        return None

    def labels(self) -> list[str]:
        out = [self.label]
        for child in self.children:
            out.extend(child.labels())
        return out

    def leaves(self) -> list["Layer"]:
        return [self] if not self.children else [leaf for c in self.children for leaf in c.leaves()]


class BlockGraph:
    def __init__(self, host: Host) -> None:
        self.host = host
        self._dm_names: dict[str, str] | None = None
        self._dm_tables: dict[str, list] | None = None

    def available(self) -> bool:
        try:
            return bool(self.host.listdir(SYS_BLOCK))
        except OSError:
            return False

    def read_attr(self, path: str) -> str | None:
        try:
            return self.host.read_text(path).strip()
        except OSError:
            return None

    def _link_base(self, path: str) -> str | None:
        try:
            return posixpath.basename(self.host.readlink(path).rstrip("/"))
        except OSError:
            return None

    def exists(self, kname: str) -> bool:
        return self.host.exists(f"{SYS_BLOCK}/{kname}")

    def dm_names(self) -> dict[str, str]:
        """dm name (as in /dev/mapper) → kernel name dm-N."""
        if self._dm_names is None:
            self._dm_names = {}
            for path in self.host.glob(f"{SYS_BLOCK}/dm-*/dm/name"):
                name = self.read_attr(path)
                if name:
                    self._dm_names[name] = path.split("/")[-3]
        return self._dm_names

    def kname_for(self, source: str, devno: str | None = None) -> str | None:
        """Kernel name for a mount/swap source: via major:minor when the kernel gave a real
        one, then the /dev path (following /dev/mapper, /dev/disk/by-*, /dev/VG/LV links)."""
        if devno and not devno.startswith("0:"):
            name = self._link_base(f"/sys/dev/block/{devno}")
            if name and self.exists(name):
                return name
        if not source.startswith("/dev/"):
            return None
        path = source
        for _ in range(6):  # follow /dev symlinks (relative like ../dm-1)
            try:
                target = self.host.readlink(path)
            except OSError:
                break
            path = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        base = posixpath.basename(path)
        if self.exists(base):
            return base
        if path.startswith("/dev/mapper/"):
            return self.dm_names().get(base)
        parts = path.split("/")
        if len(parts) == 4:  # /dev/VG/LV → dm name VG-LV with '-' doubled inside names
            return self.dm_names().get(parts[2].replace("-", "--") + "-" + parts[3].replace("-", "--"))
        return None

    def dev_path(self, kname: str) -> str:
        """/dev path a person recognises: /dev/mapper/<name> for dm devices."""
        name = self.read_attr(f"{SYS_BLOCK}/{kname}/dm/name") if kname.startswith("dm-") else None
        return f"/dev/mapper/{name}" if name else f"/dev/{kname}"

    def parent_disk(self, kname: str) -> str:
        """Disk holding a partition (the directory above it in /sys/devices)."""
        if not self.host.exists(f"{SYS_BLOCK}/{kname}/partition"):
            return kname
        try:
            target = self.host.readlink(f"{SYS_BLOCK}/{kname}")
        except OSError:
            return kname
        parts = [p for p in target.split("/") if p]
        return parts[-2] if len(parts) >= 2 else kname

    def removable(self, kname: str) -> bool | None:
        disk = self.parent_disk(kname)
        value = self.read_attr(f"{SYS_BLOCK}/{disk}/removable")
        return None if value is None else value == "1"

    def slaves(self, kname: str) -> list[str]:
        try:
            return self.host.listdir(f"{SYS_BLOCK}/{kname}/slaves")
        except OSError:
            return []

    def dm_table_target(self, kname: str) -> str | None:
        """Fallback for dm devices without a telling uuid: ``dmsetup table`` (needs root)."""
        if self._dm_tables is None:
            res = self.host.run(["dmsetup", "table"], timeout=10, env={"LC_ALL": "C"})
            self._dm_tables = parse_dmsetup_table(res.text()) if res.ok else {}
        name = self.read_attr(f"{SYS_BLOCK}/{kname}/dm/name")
        segments = self._dm_tables.get(name or "", [])
        targets = {s["target"] for s in segments}
        return targets.pop() if len(targets) == 1 else None

    def layer(self, kname: str, depth: int = 0) -> Layer:
        base = f"{SYS_BLOCK}/{kname}"
        if kname.startswith("zram"):
            return Layer(kname, f"{kname} (ram)", method="ram", removable=False)
        if self.host.exists(f"{base}/dm"):
            uuid = self.read_attr(f"{base}/dm/uuid") or ""
            label, method = dm_kind(uuid)
            uncertain = False
            if label == "dm":
                target = self.dm_table_target(kname)
                if target == "crypt":
                    label, method = "crypt", "dm-crypt"
                elif target:
                    label = target
                else:
                    uncertain = True
            layer = Layer(kname, f"{kname} ({label})", method=method, uncertain=uncertain)
        elif self.host.exists(f"{base}/md"):
            level = self.read_attr(f"{base}/md/level") or "md"
            layer = Layer(kname, f"{kname} ({level})")
        else:
            layer = Layer(kname, kname)
        if depth < 12:
            layer.children = [self.layer(s, depth + 1) for s in self.slaves(kname)]
        if not layer.children:
            layer.removable = self.removable(kname)
        return layer
