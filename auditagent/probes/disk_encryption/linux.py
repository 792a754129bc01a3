"""Linux ``disk`` section: the volumes holding /, /home, other fixed data mounts and
swap, and whether dm-crypt (LUKS or plain) sits anywhere below each; home folders
encrypted with fscrypt; zram swap (never on disk).

Mounts come from /proc/self/mountinfo, swap from /proc/swaps, the device stacks
from sysfs (see _linux_block). ``lsblk -J`` stands in when sysfs is not there.
"""
from __future__ import annotations

import posixpath
from typing import Any

from auditagent.probes import ProbeContext
from auditagent.probes.disk_encryption.linux_block import BlockGraph, Layer
from auditagent.probes.disk_encryption.linux_parsers import (Mount, lsblk_encryption, parse_cryptsetup_status,
                                                   parse_fscrypt_status, parse_lsattr_dir, parse_lsblk_json,
                                                   parse_mountinfo, parse_proc_mounts, parse_proc_swaps)
from auditagent.reasons import reason

C_ENV = {"LC_ALL": "C", "LANG": "C"}
# Filesystems that live on a local block device. Pseudo, memory, overlay and network
# filesystems (proc, tmpfs, overlay, nfs, cifs, fuse.sshfs …) are not in this list.
DISK_FS = {"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "jfs", "reiserfs", "vfat", "exfat", "ntfs", "ntfs3",
           "fuseblk", "bcachefs", "nilfs2", "hfsplus", "zfs", "udf"}
FSCRYPT_FS = {"ext4", "f2fs", "ubifs", "ceph"}
# Boot loaders must read these before any unlock; they hold no case data.
SKIP_PREFIXES = ("/boot", "/efi")
SYSTEM_MOUNTS = {"/", "/usr"}


def role_for(mountpoint: str) -> str:
    if mountpoint in SYSTEM_MOUNTS:
        return "system"
    if mountpoint == "/home" or mountpoint.startswith("/home/") or mountpoint == "/root":
        return "home"
    return "data"


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def select_mounts(mounts: list[Mount]) -> list[Mount]:
    """Data-bearing mounts: on-disk filesystems, last mount per mountpoint wins (overmounts),
    bind mounts of a subtree dropped when the filesystem is already listed."""
    by_point: dict[str, Mount] = {}
    for m in mounts:
        if m.fstype in DISK_FS and not any(_under(m.mountpoint, p) for p in SKIP_PREFIXES):
            by_point[m.mountpoint] = m
    chosen = list(by_point.values())
    whole = {m.source for m in chosen if m.root == "/"}
    return [m for m in chosen if m.root == "/" or m.fstype == "btrfs" or m.source not in whole]


def _volume(mount: str, device: str | None, role: str, layer: Layer | None, **detail: Any) -> dict[str, Any]:
    encrypted = layer.encrypted() if layer else None
    fixed = True
    if layer is not None:
        fixed = not any(leaf.removable for leaf in layer.leaves())
    return {"mount": mount, "device": device, "role": role, "fixed": fixed, "encrypted": encrypted,
            "method": layer.first_method() if layer and encrypted else None,
            "state": "encrypted" if encrypted else None, "percent": None,
            "stack": layer.labels() if layer else [], "detail": {k: v for k, v in detail.items() if v is not None}}


def _crypt_detail(ctx: ProbeContext, graph: BlockGraph, layer: Layer) -> list[dict[str, Any]]:
    """cryptsetup status of each crypt layer, when cryptsetup is there (it needs root)."""
    if ctx.host.which("cryptsetup") is None:
        return []
    out = []
    stack = [layer]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.method and node.method != "ram":
            name = graph.read_attr(f"/sys/class/block/{node.kname}/dm/name")
            res = ctx.host.run(["cryptsetup", "status", name or node.kname], timeout=10, env=C_ENV)
            if res.ok:
                st = parse_cryptsetup_status(res.text())
                out.append({k: st.get(k) for k in ("type", "cipher", "keysize", "key_location", "device")})
    return out


def _read_mounts(ctx: ProbeContext) -> list[Mount] | None:
    for path, parse in (("/proc/self/mountinfo", parse_mountinfo), ("/proc/mounts", parse_proc_mounts)):
        try:
            return parse(ctx.host.read_text(path))
        except OSError:
            continue
    return None


def _containing(mounts: list[Mount], path: str) -> Mount | None:
    best = None
    for m in mounts:
        if _under(path, m.mountpoint) and (best is None or len(m.mountpoint) > len(best.mountpoint)):
            best = m
    return best


def _fscrypt_of(ctx: ProbeContext, path: str, reasons: list[str]) -> tuple[bool | None, dict[str, Any]]:
    """Is this directory fscrypt-encrypted? lsattr's E flag works without fscrypt's own
    config (and without root for one's own files); fscrypt status adds lock state."""
    res = ctx.host.run(["lsattr", "-d", path], timeout=10, env=C_ENV)
    encrypted = parse_lsattr_dir(res.text()) if res.ok else None
    detail: dict[str, Any] = {}
    if encrypted is None:
        reasons.append(res.why_not())
    elif encrypted and ctx.host.which("fscrypt"):
        st = ctx.host.run(["fscrypt", "status", path], timeout=10, env=C_ENV)
        if st.ok:
            parsed = parse_fscrypt_status(st.text())
            detail = {k: parsed[k] for k in ("policy_version", "unlocked") if parsed[k] is not None}
    return encrypted, detail


def _from_sysfs(ctx: ProbeContext, graph: BlockGraph, mounts: list[Mount], reasons: list[str]) -> list[dict]:
    volumes: list[dict[str, Any]] = []
    layers: dict[str, tuple[str | None, Layer | None]] = {}

    def resolve(source: str, devno: str | None) -> tuple[str | None, Layer | None]:
        key = f"{source}|{devno}"
        if key not in layers:
            kname = graph.kname_for(source, devno)
            layers[key] = (kname, graph.layer(kname) if kname else None)
        return layers[key]

    for m in select_mounts(mounts):
        kname, layer = resolve(m.source, m.devno)
        if kname and kname.startswith(("loop", "ram")):
            continue  # images and ramdisks: not a volume of this machine
        if layer is None:
            reasons.append(reason("volume.device_unknown", m.mountpoint, f"{m.source} ({m.fstype}) not in sysfs"))
        vol = _volume(m.mountpoint, graph.dev_path(kname) if kname else m.source, role_for(m.mountpoint), layer,
                      fstype=m.fstype)
        if layer is not None:
            crypt = _crypt_detail(ctx, graph, layer)
            if crypt:
                vol["detail"]["crypt"] = crypt
        volumes.append(vol)
    return volumes


def _from_lsblk(ctx: ProbeContext, mounts: list[Mount], reasons: list[str]) -> list[dict] | None:
    """Without sysfs (a container, a replay of a capture): lsblk's tree."""
    res = ctx.host.run(["lsblk", "-J", "-p", "-o", "NAME,TYPE,FSTYPE,FSVER,RM,MOUNTPOINTS"], timeout=15, env=C_ENV)
    if not res.ok:
        reasons.append(res.why_not())
        return None
    entries = parse_lsblk_json(res.text())
    wanted = {m.mountpoint: m for m in select_mounts(mounts)} if mounts else None
    volumes = []
    for e in entries:
        for mp in e["mountpoints"]:
            if (wanted is not None and mp not in wanted) or (wanted is None and any(_under(mp, p) for p in SKIP_PREFIXES)):
                continue
            method = lsblk_encryption(e)
            chain = [e] + e["_parents"]
            volumes.append({"mount": mp, "device": e["name"], "role": "swap" if mp == "[SWAP]" else role_for(mp),
                            "fixed": not any(str(n.get("rm")).lower() in ("1", "true") for n in chain),
                            "encrypted": method is not None, "method": method,
                            "state": "encrypted" if method else None, "percent": None,
                            "stack": [posixpath.basename(n["name"]) for n in chain], "detail": {"source": "lsblk"}})
    return volumes


def _swaps(ctx: ProbeContext, graph: BlockGraph | None, mounts: list[Mount], volumes: list[dict],
           reasons: list[str]) -> list[dict]:
    try:
        swaps = parse_proc_swaps(ctx.host.read_text("/proc/swaps"))
    except OSError:
        reasons.append(reason("file.unreadable", "/proc/swaps"))
        return []
    out = []
    for sw in swaps:
        if sw.kind == "file":
            holder = _containing(select_mounts(mounts), sw.filename)
            base = next((v for v in volumes if holder and v["mount"] == holder.mountpoint), None)
            if base is None:
                out.append({**_volume("[SWAP]", None, "swap", None, file=sw.filename)})
                reasons.append(reason("volume.device_unknown", sw.filename, "swap file's filesystem"))
            else:
                out.append({**base, "mount": "[SWAP]", "role": "swap",
                            "detail": {**base["detail"], "file": sw.filename}})
            continue
        if graph is None:
            continue  # lsblk already listed swap partitions as [SWAP]
        kname = graph.kname_for(sw.filename)
        layer = graph.layer(kname) if kname else None
        if layer is None:
            reasons.append(reason("volume.device_unknown", sw.filename, "not in sysfs"))
        out.append(_volume("[SWAP]", graph.dev_path(kname) if kname else sw.filename, "swap", layer))
    return out


def _homes(ctx: ProbeContext, mounts: list[Mount], volumes: list[dict], reasons: list[str]) -> list[dict]:
    """Home folders whose protection differs from the volume below them (fscrypt on the
    folder itself); a home folder that is its own mount is already a volume."""
    listed = {v["mount"] for v in volumes}
    out = []
    for home in ctx.host.home_dirs():
        if home in listed:
            continue
        holder = _containing(mounts, home)
        base = next((v for v in volumes if holder and v["mount"] == holder.mountpoint), None)
        if base is None:
            # Not on a listed volume (tmpfs, network, an image): only fscrypt can still protect it.
            if holder is not None and holder.fstype in FSCRYPT_FS:
                enc, detail = _fscrypt_of(ctx, home, [])
                if enc:
                    out.append({"mount": home, "device": holder.source, "role": "home", "fixed": True,
                                "encrypted": True, "method": "fscrypt", "state": "encrypted", "percent": None,
                                "stack": ["fscrypt", posixpath.basename(holder.source)],
                                "detail": {"fstype": holder.fstype, "fscrypt": detail}})
            continue
        vol = {**base, "mount": home, "role": "home", "detail": dict(base["detail"]), "stack": list(base["stack"])}
        if holder.fstype in FSCRYPT_FS:
            enc, detail = _fscrypt_of(ctx, home, reasons)
            if enc:
                vol.update(encrypted=True, method="fscrypt", stack=["fscrypt"] + vol["stack"],
                           state="locked" if detail.get("unlocked") is False else "encrypted")
                vol["detail"]["fscrypt"] = detail
            elif enc is None and not base["encrypted"]:
                vol.update(encrypted=None, method=None, state=None)
        # A home folder that shares its volume's state would only repeat that volume's
        # finding; it is listed on its own when fscrypt (or doubt about it) sets it apart.
        if (vol["encrypted"], vol["method"]) != (base["encrypted"], base["method"]):
            out.append(vol)
    return out


def probe(ctx: ProbeContext) -> dict[str, Any]:
    reasons: list[str] = []
    mounts = _read_mounts(ctx)
    if mounts is None:
        reasons.append(reason("file.unreadable", "/proc/self/mountinfo"))
        mounts = []
    graph = BlockGraph(ctx.host)
    if graph.available():
        volumes = _from_sysfs(ctx, graph, mounts, reasons)
        volumes += _swaps(ctx, graph, mounts, volumes, reasons)
    else:
        reasons.append(reason("file.unreadable", "/sys/class/block", "lsblk used instead"))
        volumes = _from_lsblk(ctx, mounts, reasons) or []
        volumes += _swaps(ctx, None, mounts, volumes, reasons)
    volumes += _homes(ctx, mounts, volumes, reasons)
    if not volumes:
        return {"status": "unknown", "reasons": reasons or ["no volumes found"], "volumes": []}
    complete = all(v["encrypted"] is not None for v in volumes) and not reasons
    return {"status": "ok" if complete else "partial", "reasons": reasons, "volumes": volumes}
