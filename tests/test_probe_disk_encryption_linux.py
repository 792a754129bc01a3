"""Linux disk probe: fixture trees of /sys and /proc, shared captures, this machine."""
from __future__ import annotations

import fcntl
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from auditagent.host import RealHost, ReplayHost
from auditagent.probes import ProbeContext
from auditagent.probes.disk_encryption.linux import probe as linux, select_mounts
from auditagent.probes.disk_encryption.linux_parsers import (crypt_table_facts, dm_kind, lsblk_encryption,
                                                   parse_cryptsetup_status, parse_dmsetup_table,
                                                   parse_fscrypt_status, parse_lsattr_dir, parse_lsblk_json,
                                                   parse_lsblk_tree_text, parse_mountinfo, parse_proc_mounts,
                                                   parse_proc_swaps)
from conftest import OWN_FIXTURES, shared

TREES = OWN_FIXTURES / "linux-trees"
HERE = OWN_FIXTURES / "captures" / "linux-debian12-vm-virtio-ext4"
ENC = "linux/encryption/"


def tree_host(name: str, homes: list[str] | None = None) -> ReplayHost:
    return ReplayHost(root=TREES / name, homes=homes or [])


def volumes(host: ReplayHost) -> tuple[dict, dict[str, dict]]:
    section = linux(ProbeContext(host))
    by_mount: dict[str, dict] = {}
    for v in section["volumes"]:
        key = v["mount"] if v["mount"] != "[SWAP]" else f"[SWAP]{v['device']}"
        by_mount[key] = v
    return section, by_mount


# --------------------------------------------------------------------------- fixture trees


def test_ubuntu_luks2_lvm_all_encrypted_usb_stick_not_fixed():
    section, vols = volumes(tree_host("ubuntu-luks2-lvm"))
    assert section["status"] == "ok", section["reasons"]
    root = vols["/"]
    assert root["device"] == "/dev/mapper/vgubuntu-root"
    assert root["role"] == "system" and root["fixed"] is True
    assert root["encrypted"] is True and root["method"] == "luks2" and root["state"] == "encrypted"
    assert root["stack"] == ["dm-1 (lvm)", "dm-0 (crypt LUKS2)", "nvme0n1p3"]
    assert vols["/home"]["role"] == "home" and vols["/home"]["encrypted"] is True
    swap = vols["[SWAP]/dev/mapper/vgubuntu-swap_1"]
    assert swap["role"] == "swap" and swap["encrypted"] is True and swap["method"] == "luks2"
    usb = vols["/media/anna/KINGSTON"]
    assert usb["fixed"] is False and usb["encrypted"] is False and usb["role"] == "data"
    # /boot, /boot/efi, the snap loop, tmpfs and fuse mounts are not data volumes
    assert not any(m.startswith(("/boot", "/snap", "/run")) for m in vols)


def test_lvm_then_luks_found_by_dm_name_and_plain_swap():
    section, vols = volumes(tree_host("lvm-then-luks"))
    assert section["status"] == "ok", section["reasons"]
    assert vols["/"]["method"] == "luks1"
    assert vols["/"]["stack"] == ["dm-1 (crypt LUKS1)", "dm-0 (lvm)", "sda2"]
    assert vols["/home"]["method"] == "luks2" and vols["/home"]["encrypted"] is True
    swap = vols["[SWAP]/dev/mapper/swap"]
    assert swap["method"] == "dm-crypt-plain" and swap["encrypted"] is True
    assert "/mnt/share" not in vols and "/tmp" not in vols  # nfs and tmpfs


def test_plain_ext4_with_swapfile_not_encrypted():
    section, vols = volumes(tree_host("plain-ext4-swapfile"))
    assert vols["/"]["encrypted"] is False and vols["/"]["method"] is None and vols["/"]["state"] is None
    swap = vols["[SWAP]/dev/nvme0n1p2"]
    assert swap["encrypted"] is False and swap["detail"]["file"] == "/swapfile"
    # overlay and the bind mount of a file from the same filesystem are not extra volumes
    assert set(vols) == {"/", "[SWAP]/dev/nvme0n1p2"}


def test_btrfs_subvolumes_on_luks_with_anonymous_devno():
    section, vols = volumes(tree_host("btrfs-luks-subvols"))
    assert section["status"] == "ok"
    for mount in ("/", "/home", "/var/log"):
        assert vols[mount]["encrypted"] is True and vols[mount]["method"] == "luks2"
        assert vols[mount]["device"] == "/dev/mapper/luks-6f36da02-44bc-441e-ae48-f225a66b3575"
    assert vols["/var/log"]["role"] == "data"
    zram = vols["[SWAP]/dev/zram0"]
    assert zram["method"] == "ram" and zram["encrypted"] is True and zram["stack"] == ["zram0 (ram)"]


def test_zram_plus_unencrypted_swap_partition_from_proc_mounts():
    _, vols = volumes(tree_host("zram-and-plain-swap"))
    assert vols["/"]["device"] == "/dev/sda2" and vols["/"]["encrypted"] is False
    assert vols["[SWAP]/dev/sda3"]["encrypted"] is False
    assert vols["[SWAP]/dev/zram0"]["encrypted"] is True


def test_mixed_disks_raid_dmsetup_fallback_and_fscrypt_home():
    host = tree_host("mixed-encrypted-root-plain-home", homes=["/home/anna", "/home/bob"])
    table = shared(ENC + "dmsetup-table-luks2-keyring-allow-discards.txt").read_text().splitlines()[-1]
    host.add_command(["dmsetup", "table"], "cryptdata: " + table + "\n")
    host.add_command(["lsattr", "-d", "/home/anna"], (HERE / "lsattr-d-plain-dir.txt").read_text())
    host.add_command(["lsattr", "-d", "/home/bob"], (HERE / "lsattr-d-fscrypt-dir.txt").read_text())
    section, vols = volumes(host)
    assert section["status"] == "ok", section["reasons"]
    assert vols["/"]["encrypted"] is True
    assert vols["/home"]["device"] == "/dev/sda1" and vols["/home"]["encrypted"] is False
    data = vols["/srv/data"]
    assert data["encrypted"] is True and data["method"] == "dm-crypt"
    assert data["stack"] == ["dm-1 (crypt)", "md0 (raid1)", "sdb1", "sdc1"]
    # anna's folder shares /home's plain volume, so only /home reports it; bob's fscrypt folder stands apart.
    assert "/home/anna" not in vols
    bob = vols["/home/bob"]
    assert bob["encrypted"] is True and bob["method"] == "fscrypt" and bob["stack"][0] == "fscrypt"


@pytest.mark.parametrize("capture,encrypted,label", [
    ("dmsetup-table-luks-detached-header-ramdisk-key-masked-zeros.txt", True, "crypt"),
    ("dmsetup-table-arch-btrfs-root-luks2-keyring-no-feature-args.txt", True, "crypt"),
    ("dmsetup-table-luks-detached-header-ramdisk-same_cpu_crypt-feature-arg.txt", True, "crypt"),
    # a dm device that is a thin pool or a cache over plain disks is not encrypted: read, not guessed
    ("dmsetup-table-docker-devicemapper-thin-pool-loopback.txt", False, "thin-pool"),
    ("dmsetup-table-dm-cache-writeback-ubuntu-13.04.txt", False, "cache"),
])
def test_public_dmsetup_tables_decide_a_dm_device_without_uuid(capture, encrypted, label):
    # `dmsetup table` without a name prints every device as "NAME: row"; the captures are of one
    # device ("dmsetup table NAME"), so their row is put under the tree's dm-1 name, "cryptdata".
    row = next(line.strip() for line in (OWN_FIXTURES / "public/linux/dmsetup" / capture).read_text().splitlines()
               if line.strip()[:1].isdigit())
    host = tree_host("mixed-encrypted-root-plain-home")
    host.add_command(["dmsetup", "table"], f"cryptdata: {row}\n")
    section, vols = volumes(host)
    data = vols["/srv/data"]
    assert data["encrypted"] is encrypted and data["stack"][0] == f"dm-1 ({label})"
    assert data["method"] == ("dm-crypt" if encrypted else None)


def test_unknown_dm_without_dmsetup_is_not_a_guess():
    section, vols = volumes(tree_host("mixed-encrypted-root-plain-home"))
    assert vols["/srv/data"]["encrypted"] is None
    assert section["status"] == "partial"


def test_home_without_lsattr_on_plain_disk_is_unknown_with_reason():
    section, vols = volumes(tree_host("plain-ext4-swapfile", homes=["/home/anna"]))
    assert vols["/home/anna"]["encrypted"] is None
    assert any("lsattr" in r for r in section["reasons"])


def test_dm_uuid_kinds():
    assert dm_kind("CRYPT-LUKS2-abc-name") == ("crypt LUKS2", "luks2")
    assert dm_kind("CRYPT-LUKS1-abc-name")[1] == "luks1"
    assert dm_kind("CRYPT-PLAIN-swap")[1] == "dm-crypt-plain"
    assert dm_kind("CRYPT-VERITY-abc-root")[1] is None  # integrity, not secrecy
    assert dm_kind("LVM-abc") == ("lvm", None)
    assert dm_kind("") == ("dm", None)


# --------------------------------------------------------------------------- shared captures


def test_cryptsetup_status_luks1_active():
    st = parse_cryptsetup_status(shared(ENC + "cryptsetup-status-luks1-active.txt").read_text())
    assert st["mapping"] == "/dev/mapper/dm-crypto-luks1" and st["active"] and st["in_use"]
    assert st["device"] == "/dev/sdc1"
    assert st["type"] == "LUKS1" and st["method"] == "luks1" and st["cipher"] == "aes-xts-plain64"
    assert st["keysize"] == "512 bits" and st["key_location"] == "dm-crypt"


def test_cryptsetup_status_luks2_keyring():
    st = parse_cryptsetup_status(shared(ENC + "cryptsetup-status-luks2-keyring.txt").read_text())
    assert st["method"] == "luks2" and st["key_location"] == "keyring" and st["mapping"].endswith("luks2")
    assert st["active"] is True and st["in_use"] is True


def test_cryptsetup_status_plain_active_not_in_use():
    st = parse_cryptsetup_status(shared(ENC + "cryptsetup-status-plain-active-not-in-use.txt").read_text())
    assert st["active"] is True and st["in_use"] is False and st["method"] == "dm-crypt-plain"
    assert st["cipher"] == "aes-cbc-essiv:sha256"


def test_cryptsetup_status_inactive_and_not_found():
    st = parse_cryptsetup_status(shared(ENC + "cryptsetup-status-inactive.txt").read_text())
    assert st["active"] is False and st["in_use"] is False and "type" not in st
    nf = parse_cryptsetup_status(shared(ENC + "cryptsetup-status-device-not-found.txt").read_text())
    assert nf["found"] is False and nf["active"] is False


def test_dmsetup_table_crypt_with_prompt_line():
    tables = parse_dmsetup_table(shared(ENC + "dmsetup-table-luks2-keyring-allow-discards.txt").read_text())
    (segment,) = tables[""]
    assert segment["target"] == "crypt" and segment["length"] == 1998278656
    facts = crypt_table_facts(segment)
    assert facts["cipher"] == "aes-xts-plain64" and facts["key_in_keyring"] is True
    assert facts["device"] == "259:2" and facts["options"] == ["allow_discards"]


def test_lsblk_json_luks_on_lvm_nothing_unlocked():
    entries = {e["name"]: e for e in parse_lsblk_json(shared(ENC + "lsblk-json-luks-on-lvm.json").read_text())}
    assert entries["/dev/sda3"]["mountpoints"] == ["/"] and lsblk_encryption(entries["/dev/sda3"]) is None
    assert entries["/dev/mapper/LvmEncrypt-lvmcryptroot"]["parents"] == ["/dev/sdc2", "/dev/sdc"]
    assert entries["/dev/mapper/LvmEncrypt-lvmcryptroot"]["fstype"] == "crypto_LUKS"
    # the ext4 LV is not below a LUKS container: not encrypted
    assert lsblk_encryption(entries["/dev/mapper/LvmEncrypt-lvmcrypthome"]) is None
    assert [e["name"] for e in entries.values() if e["fstype"] == "crypto_LUKS"] == [
        "/dev/sdb3", "/dev/mapper/LvmEncrypt-lvmcryptroot", "/dev/sdd3", "/dev/sdd4"]


def test_probe_falls_back_to_lsblk_without_sysfs():
    host = ReplayHost()
    host.add_file("/proc/mounts", "/dev/sda3 / xfs rw 0 0\n/dev/sda2 /boot/efi vfat rw 0 0\n")
    host.add_file("/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n")
    host.add_command(["lsblk", "-J", "-p", "-o", "*"], shared(ENC + "lsblk-json-luks-on-lvm.json"))
    section = linux(ProbeContext(host))
    (root,) = section["volumes"]
    assert root["mount"] == "/" and root["device"] == "/dev/sda3" and root["encrypted"] is False
    assert section["status"] == "partial" and any("lsblk" in r for r in section["reasons"])


def test_lsblk_tree_text_luks2_btrfs_two_mountpoints():
    nodes = {n["name"]: n for n in parse_lsblk_tree_text(shared(ENC + "lsblk-f-luks2-btrfs-multi-mountpoints.txt")
                                                         .read_text())}
    luks = nodes["luks-6f36da02-44bc-441e-ae48-f225a66b3575"]
    assert luks["parent"] == "sda4" and luks["fstype"] == "btrfs"
    assert luks["mountpoints"] == ["/mnt/kali/home", "/mnt/kali"]
    assert nodes["sda4"]["fstype"] == "crypto_LUKS" and nodes["sda4"]["fsver"] == "2"
    assert nodes["sda3"]["fstype"] == "swap" and nodes["sda1"]["mountpoints"] == ["/mnt/kali/boot/efi"]


# --------------------------------------------------------------------------- this machine's captures


def test_own_capture_proc_tables():
    mounts = parse_proc_mounts((HERE / "proc-mounts.txt").read_text())
    info = parse_mountinfo((HERE / "proc-self-mountinfo.txt").read_text())
    chosen = select_mounts(info)
    assert [(m.mountpoint, m.source, m.devno) for m in chosen] == [("/", "/dev/vda", "254:0")]
    assert [m.mountpoint for m in select_mounts(mounts)] == ["/"]
    assert parse_proc_swaps((HERE / "proc-swaps.txt").read_text()) == []
    nodes = {e["name"]: e for e in parse_lsblk_json((HERE / "lsblk-json.json").read_text())}
    assert nodes["/dev/vda"]["mountpoints"] == ["/"] and nodes["/dev/zram0"]["mountpoints"] == []


def test_own_capture_lsattr_and_fscrypt_status():
    assert parse_lsattr_dir((HERE / "lsattr-d-fscrypt-dir.txt").read_text()) is True
    assert parse_lsattr_dir((HERE / "lsattr-d-plain-dir.txt").read_text()) is False
    assert parse_lsattr_dir("lsattr: Operation not supported While reading flags on /x\n") is None
    st = parse_fscrypt_status((HERE / "fscrypt-status-no-config.txt").read_text())
    assert st["encrypted"] is None  # no config: the tool says nothing about the folder


def test_fscrypt_status_text():
    text = ('"/home/anna" is encrypted with fscrypt.\n\nPolicy:   7626382168311a9d\nOptions:  padding:32 '
            'contents:AES_256_XTS filenames:AES_256_CTS policy_version:2\nUnlocked: Yes\n')
    assert parse_fscrypt_status(text) == {"encrypted": True, "policy": "7626382168311a9d", "policy_version": 2,
                                          "unlocked": True}


# --------------------------------------------------------------------------- live


def _is_linux() -> bool:
    return os.path.isdir("/sys/class/block") and os.path.exists("/proc/self/mountinfo")


@pytest.mark.skipif(not _is_linux(), reason="needs a Linux /sys and /proc")
def test_live_this_machine():
    section = linux(ProbeContext(RealHost("linux")))
    assert section["status"] in ("ok", "partial")
    root = next(v for v in section["volumes"] if v["mount"] == "/")
    assert root["role"] == "system"
    swaps = Path("/proc/swaps").read_text().splitlines()[1:]
    assert len([v for v in section["volumes"] if v["mount"] == "[SWAP]"]) == len(swaps)
    if root["device"] == "/dev/vda" and not os.path.isdir("/sys/class/block/vda/dm"):
        # the project's build VM: ext4 straight on a virtio disk, zram0 present but unused
        assert root["encrypted"] is False and root["stack"] == ["vda"] and root["fixed"] is True


FS_IOC_ADD_ENCRYPTION_KEY = 0xC0506617
FS_IOC_SET_ENCRYPTION_POLICY = 0x800C6613


@pytest.fixture
def fscrypt_mount(tmp_path):
    """An ext4 image with the encrypt feature, loop-mounted: root, mkfs.ext4 and loop devices needed."""
    if os.geteuid() != 0 or not shutil.which("mkfs.ext4") or not shutil.which("mount"):
        pytest.skip("needs root, mkfs.ext4 and mount")
    image, mnt = tmp_path / "fs.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(image, "wb") as fh:
        fh.truncate(32 * 1024 * 1024)
    if subprocess.run(["mkfs.ext4", "-q", "-O", "encrypt", str(image)], capture_output=True).returncode:
        pytest.skip("mkfs.ext4 -O encrypt refused")
    res = subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], capture_output=True, text=True)
    if res.returncode:
        pytest.skip(f"loop mount refused: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def _set_v2_policy(mnt: Path, directory: Path) -> None:
    raw = os.urandom(64)
    arg = bytearray(struct.pack("II32sII32s", 2, 0, b"", len(raw), 0, b"") + raw)  # key spec: identifier
    fd = os.open(mnt, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, FS_IOC_ADD_ENCRYPTION_KEY, arg, True)
    finally:
        os.close(fd)
    identifier = bytes(arg[8:24])
    policy = struct.pack("BBBB4s16s", 2, 1, 4, 0x02, b"", identifier)  # v2, AES-256-XTS, AES-256-CTS, pad 16
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, FS_IOC_SET_ENCRYPTION_POLICY, policy)
    finally:
        os.close(fd)


def test_live_fscrypt_home_detected(fscrypt_mount, tmp_path):
    enc = fscrypt_mount / "anna"
    enc.mkdir()
    try:
        _set_v2_policy(fscrypt_mount, enc)
    except OSError as exc:
        pytest.skip(f"kernel refused fscrypt: {exc}")
    plain = tmp_path / "bob"  # beside the image, on the machine's own filesystem
    plain.mkdir()

    class Homes(RealHost):
        def home_dirs(self) -> list[str]:
            return [str(enc), str(plain)]

    section = linux(ProbeContext(Homes("linux")))
    vols = {v["mount"]: v for v in section["volumes"]}
    assert vols[str(enc)]["encrypted"] is True and vols[str(enc)]["method"] == "fscrypt"
    assert vols[str(enc)]["role"] == "home"
    if str(plain) in vols:  # listed when its filesystem is a disk volume
        assert vols[str(plain)]["method"] != "fscrypt"
        assert vols[str(plain)]["encrypted"] is not True or vols[str(plain)]["stack"][0] != "fscrypt"


def test_lsblk_tree_variants():
    pub = OWN_FIXTURES / "public/linux"
    old = {n["name"]: n for n in parse_lsblk_tree_text(
        (pub / "lsblk-f-util-linux-2.36-crypto-luks-locked-mountpoint-singular.txt").read_text())}
    assert (old["sda1"]["fstype"], old["sda1"]["fsver"], old["sda1"]["mountpoints"]) == ("crypto_LUKS", "2", [])
    assert old["sda2"]["mountpoints"] == ["/boot/efi"] and old["sdb1"]["parent"] == "sdb"
    ascii_tree = {n["name"]: n for n in parse_lsblk_tree_text((pub / "lsblk-Afi-ascii-tree-libreelec.txt").read_text())}
    assert ascii_tree["mmcblk0p2"]["parent"] == "mmcblk0" and ascii_tree["mmcblk0p2"]["mountpoints"] == ["/storage"]
    assert ascii_tree["mmcblk0boot1"]["depth"] == 0 and ascii_tree["loop0"]["fstype"] == "squashfs"
    merged = parse_lsblk_tree_text((pub / "lsblk-merge-paths-name-type-majmin-crypt.txt").read_text())
    crypt = merged[-1]
    assert (crypt["name"], crypt["type"], crypt["parent"], crypt["fstype"]) == \
        ("/dev/mapper/crypt", "crypt", "/dev/nvme0n1p2", None)
    # A name wider than its column (narrow terminal) shifts the rest of its row right.
    narrow = ("NAME      FSTYPE      FSVER MOUNTPOINTS\n"
              "nvme0n1\n"
              "└─nvme0n1p3 crypto_LUKS 2\n"
              "  └─luks-6f36da02 btrfs             /home\n")
    nodes = {n["name"]: n for n in parse_lsblk_tree_text(narrow)}
    assert (nodes["nvme0n1p3"]["fstype"], nodes["nvme0n1p3"]["fsver"]) == ("crypto_LUKS", "2")
    assert (nodes["luks-6f36da02"]["fstype"], nodes["luks-6f36da02"]["mountpoints"]) == ("btrfs", ["/home"])
