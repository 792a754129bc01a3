"""Real Linux outputs from public issue threads (tests/fixtures/public/PROVENANCE.md,
section "Linux package managers and block devices"): dnf 4/5 and yum, zypper,
pacman, cryptsetup and lsblk, each asserted with what a reader of the capture sees in it."""
from __future__ import annotations

import pytest
from conftest import OWN_FIXTURES

from auditagent.probes.disk_encryption.linux_parsers import (crypt_table_facts, parse_cryptsetup_status,
                                                             parse_dmsetup_table, parse_lsblk_tree_text)
from auditagent.probes.patches.linux_parsers import (dpkg_version_compare, nevra_name, parse_apt_check_human,
                                                      parse_dnf_advisory_json,
                                                      parse_apt_get_simulate, parse_apt_list_upgradable, parse_apt_phasing,
                                                      parse_dnf_check_update, parse_dnf_updateinfo,
                                                      parse_pacman_qu)
from auditagent.probes.patches.zypper_parsers import (parse_zypper_list_patches, parse_zypper_list_updates,
                                                       parse_zypper_needs_rebooting)

PUB = OWN_FIXTURES / "public/linux"


def text(name: str) -> str:
    return (PUB / name).read_text(encoding="utf-8")


# ----------------------------------------------------------------- dnf 5 / dnf 4 / yum advisories


def test_dnf5_advisory_table_fedora_44_only_security_rows():
    rows = parse_dnf_updateinfo(text("dnf/dnf5-advisory-list-fedora-44-security-kernel.txt"))
    # Two security rows (kernel-core, kernel-modules-core); enhancement and bugfix rows are not security.
    assert [(r["advisory"], r["severity"], nevra_name(r["package"])) for r in rows] == [
        ("FEDORA-2026-bc20b091a8", "Important", "kernel-core"),
        ("FEDORA-2026-bc20b091a8", "Important", "kernel-modules-core")]


def test_dnf5_advisory_table_cut_columns_fedora_40():
    rows = parse_dnf_updateinfo(text("dnf/dnf5-advisory-list-fedora-40-narrow-columns-truncated.txt"))
    # "secu" is the cut "security"; "enha", "bugf", "unsp" are not security.
    assert [nevra_name(r["package"]) for r in rows] == ["glib2-debuginfo", "glib2-debugsource"]
    assert {r["advisory"] for r in rows} == {"FEDORA-2024-635a54eb7e"}


def test_dnf5_updateinfo_enhancements_are_not_security():
    assert parse_dnf_updateinfo(text("dnf/dnf5-updateinfo-list-rawhide-dated-columns.txt")) == []


def test_dnf4_and_yum_sec_rows():
    rows = parse_dnf_updateinfo(text("dnf/yum-updateinfo-list-security-all-rhel-7.txt"))
    assert len(rows) == 13 and rows[0] == {"advisory": "RHSA-2014:1031", "severity": "Important",
                                           "package": "389-ds-base-1.3.1.6-26.el7_0.x86_64"}
    assert {nevra_name(r["package"]) for r in rows} == {"389-ds-base", "389-ds-base-libs"}
    assert sum(r["severity"] == "Moderate" for r in rows) == 4
    assert parse_dnf_updateinfo(text("dnf/dnf-list-sec-fedora-27-unknown-severity.txt")) == [
        {"advisory": "FEDORA-2017-fb5e227432", "severity": "Unknown", "package": "glibc-2.26-20.fc27.x86_64"}]
    assert parse_dnf_updateinfo(text("dnf/dnf-list-sec-all-fedora-bodhitest-moderate.txt")) == [
        {"advisory": "FEDORA-2017-ad1937a146", "severity": "Moderate", "package": "TurboGears-1.0.2.2-2.fc17.noarch"}]


# ----------------------------------------------------------------- check-update


def test_check_update_wrapped_long_name_is_one_package():
    assert parse_dnf_check_update(text("dnf/yum-check-update-rhel-6-wrapped-long-name.txt")) == [
        {"name": "java-1.7.0-openjdk-devel", "arch": "x86_64", "version": "1:1.7.0.99-2.6.5.0.el6_7",
         "repo": "rhel-6-server-rpms"}]


def test_check_update_dnf4_wide_and_dnf5():
    rows = parse_dnf_check_update(text("dnf/dnf4-check-update-fedora-40-wide-columns.txt"))
    assert [(r["name"], r["version"], r["repo"]) for r in rows] == [
        ("brave-browser", "1.71.121-1", "brave-browser-rpm-release.s3.brave.com_x86_64_"),
        ("code", "1.95.0-1730153639.el8", "code"), ("dkms", "3.1.1-1.fc40", "updates")]
    assert parse_dnf_check_update(text("dnf/dnf5-check-update-fedora-41.txt")) == [
        {"name": "warp-terminal", "arch": "x86_64", "version": "v0.2024.10.29.08.02.stable_02-1",
         "repo": "warpdotdev"}]


# ----------------------------------------------------------------- pacman


def test_pacman_qu_arch():
    rows = parse_pacman_qu(text("pacman/pacman-Qu-arch-2017.txt"))
    assert [r["name"] for r in rows] == ["flashplugin", "libnm", "libnm-glib", "networkmanager", "pepper-flash",
                                         "shadow"]
    assert rows[1] == {"name": "libnm", "from": "1.10.1dev+58+gd5dc3df20-1", "version": "1.10.2-1", "ignored": False}


def test_checkupdates_arch_2025_epochs_and_prompt():
    rows = parse_pacman_qu(text("pacman/checkupdates-arch-2025-12-particleos-epochs.txt"))
    assert len(rows) == 18 and rows[0]["name"] == "bash" and rows[-1]["name"] == "zlib-ng"
    assert next(r for r in rows if r["name"] == "mesa") == {"name": "mesa", "from": "1:25.2.7-1",
                                                          "version": "1:25.3.1-2", "ignored": False}
    # pacman -Qu marks an IgnorePkg package (pacman 4.1 on); it is still an update the laptop lacks
    assert parse_pacman_qu("linux 6.17.9.arch1-1 -> 6.18.1.arch1-1 [ignored]\n") == [
        {"name": "linux", "from": "6.17.9.arch1-1", "version": "6.18.1.arch1-1", "ignored": True}]


def test_pacman_query_upgrades_long_form_docker_arch_2017():
    rows = parse_pacman_qu(text("pacman/pacman-query-upgrades-docker-arch-2017-08-24-packages-epoch.txt"))
    # the same 24 the post's `pacman -Suw` then lists as "Packages (24)"
    assert len(rows) == 24 and rows[0]["name"] == "archlinux-keyring" and rows[-1]["name"] == "sqlite"
    assert next(r for r in rows if r["name"] == "lz4") == {"name": "lz4", "from": "1:1.7.5-1", "version": "1:1.8.0-1",
                                                         "ignored": False}
    assert not any(r["ignored"] for r in rows)


def test_pacman_qu_real_ignored_mark():
    transcript = text("pacman/pacman-Qu-ignored-IgnorePkg-fish-docker-arch-2017-transcript.txt")
    # the `pacman -Qu` answer only (the transcript's other commands answer other questions)
    answer = transcript.split("$ pacman -Qu\n", 1)[1].split("\n\n", 1)[0]
    assert parse_pacman_qu(answer) == [{"name": "fish", "from": "2.4.0-1", "version": "2.6.0-1", "ignored": True}]
    # -Su's "ignoring package upgrade (a => b)" warning is not a pending-update row
    assert parse_pacman_qu(transcript) == parse_pacman_qu(answer)


def test_checkupdates_2018_trailing_spaces():
    rows = parse_pacman_qu(text("pacman/checkupdates-arch-2018-05-linux-and-nvidia-sample.txt"))
    # the first line ends in four spaces (as posted): still a row
    assert [(r["name"], r["version"]) for r in rows] == [
        ("fuse-common", "3.2.3-1"), ("fuse3", "3.2.3-1"), ("libgphoto2", "2.5.18-1"), ("linux", "4.16.10-1"),
        ("nvidia", "396.24-4")]


# ----------------------------------------------------------------- cryptsetup / lsblk


def test_cryptsetup_status_luks2_and_luks1():
    st = parse_cryptsetup_status(text("cryptsetup/cryptsetup-status-luks2-ubuntu-26.04-tpm-keyring.txt"))
    assert (st["active"], st["in_use"], st["method"], st["cipher"], st["device"], st["key_location"]) == \
        (True, True, "luks2", "aes-xts-plain64", "/dev/vda5", "keyring")
    old = parse_cryptsetup_status(text("cryptsetup/cryptsetup-status-luks1-lvm-cbc-essiv.txt"))
    assert (old["mapping"], old["active"], old["in_use"], old["method"], old["cipher"], old["device"]) == \
        ("/dev/mapper/cryptgrp-home", True, False, "luks1", "aes-cbc-essiv:sha256", "/dev/xvdc")


def test_cryptsetup_failure_says_nothing_about_activity():
    st = parse_cryptsetup_status(text("cryptsetup/cryptsetup-status-wrong-parameters-lvm-name.txt"))
    assert st["active"] is None and st["in_use"] is None and "method" not in st


def test_lsblk_default_tree_crypt_mounted():
    nodes = {n["name"]: n for n in parse_lsblk_tree_text(text("lsblk/lsblk-default-tree-omv5-vd-crypt-mounted.txt"))}
    assert len(nodes) == 16
    assert (nodes["vdc-crypt"]["type"], nodes["vdc-crypt"]["parent"], nodes["vdc-crypt"]["mountpoints"]) == \
        ("crypt", "vdc", ["/srv/dev-disk-by-label-crypttest"])
    assert nodes["vda5"]["mountpoints"] == ["[SWAP]"] and nodes["vda1"]["mountpoints"] == ["/"]
    assert nodes["sr0"]["type"] == "rom" and nodes["vdg"]["mountpoints"] == []


# ----------------------------------------------------------------- zypper (--xmlout)


def test_zypper_list_updates_sles_12_sp1():
    rows = parse_zypper_list_updates(text("zypper/zypper-xmlout-list-updates-sles-12-sp1-three-packages.xml"))
    # zypper before 1.14 writes no edition-old; the "Loading repository data" messages are not updates.
    assert rows == [
        {"name": "SUSEConnect", "version": "0.2.33-7.1", "from": None, "arch": "x86_64",
         "repo": "SLE12-SP1-x86_64-Update"},
        {"name": "bind-libs", "version": "9.9.6P1-35.1", "from": None, "arch": "x86_64",
         "repo": "SLE12-SP1-x86_64-Update"},
        {"name": "bind-utils", "version": "9.9.6P1-35.1", "from": None, "arch": "x86_64",
         "repo": "SLE12-SP1-x86_64-Update"}]


def test_zypper_list_updates_sles_11_sp2_many_with_entities():
    rows = parse_zypper_list_updates(text("zypper/zypper-xmlout-list-updates-sles-11-sp2-nu-novell.xml"))
    assert len(rows) == 25 and rows[0]["name"] == "yast2-trans-en_US" and rows[-1]["name"] == "branding-SLES"
    assert {r["repo"] for r in rows} == {"nu_novell_com:SLES11-SP2-Core", "nu_novell_com:SLES11-SP2-Updates",
                                         "nu_novell_com:SLE11-SDK-SP2-Core"}
    assert next(r for r in rows if r["name"] == "grep")["version"] == "2.7-5.5.61"


def test_zypper_list_updates_tumbleweed_one_and_none():
    assert parse_zypper_list_updates(text("zypper/zypper-xmlout-list-updates-tumbleweed-20260830-one-package.xml")) \
        == [{"name": "libopenh264-8", "version": "2.6.0-2.suse1699.10", "from": "2.6.0~noopenh264-1.5",
             "arch": "aarch64", "repo": "repo-openh264"}]
    assert parse_zypper_list_updates(text("zypper/zypper-xmlout-list-updates-tumbleweed-20260830-none.xml")) == []


LEAP16_PATCHES_PARTIAL = "zypper/zypper-xmlout-list-patches-category-security-leap-16.0-aarch64-PARTIAL-first-two.xml"
# The capture stops after the second patch's <summary>: what the source file has after the kernel
# patch's long issue list is its closing tags, which a test adds to read the two patches.
LEAP16_CLOSE = "</update></update-list>\n</update-status>\n</stream>"


def test_zypper_list_updates_leap_16_aarch64_kernel_and_guest_agent():
    rows = parse_zypper_list_updates(text("zypper/zypper-xmlout-list-updates-leap-16.0-aarch64-kernel-and-qemu-guest-agent.xml"))
    # zypper 1.14+ writes edition-old; no <message> lines (the command ran with --quiet)
    assert [(r["name"], r["from"], r["version"]) for r in rows] == [
        ("kernel-default", "6.12.0-160000.7.1", "6.12.0-160000.8.1"),
        ("kernel-default-extra", "6.12.0-160000.7.1", "6.12.0-160000.8.1"),
        ("kernel-default-optional", "6.12.0-160000.7.1", "6.12.0-160000.8.1"),
        ("qemu-guest-agent", "10.0.4-160000.1.1", "10.0.7-160000.1.1")]
    assert {(r["arch"], r["repo"]) for r in rows} == {("aarch64", "https-download.opensuse.org-4bc031d9")}


def test_zypper_list_patches_leap_16_real_partial():
    raw = text(LEAP16_PATCHES_PARTIAL)
    # cut short, it is not zypper's whole answer: refused, never half-read
    with pytest.raises(ValueError):
        parse_zypper_list_patches(raw)
    rows = parse_zypper_list_patches(raw + LEAP16_CLOSE)
    assert [(r["name"], r["category"], r["severity"], r["status"], r["pending"], r["restart"]) for r in rows] == [
        ("openSUSE-Leap-16.0-112", "security", "important", "needed", True, False),
        # the kernel patch: restart="true" interactive="true" (installing it asks for a reboot)
        ("openSUSE-Leap-16.0-113", "security", "important", "needed", True, True)]
    assert [r["summary"] for r in rows] == ["Security update for qemu", "Security update for the Linux Kernel"]


def test_zypper_list_patches_synthetic_states():
    # Synthetic: no real capture shows the applied / not-needed states of list-patches --all.
    rows = parse_zypper_list_patches(text("zypper/synthetic-zypper-xmlout-list-patches-all-leap-16-shape.xml"))
    assert [(r["name"], r["category"], r["status"], r["pending"]) for r in rows] == [
        ("openSUSE-Leap-16.0-99", "security", "applied", False),
        ("openSUSE-Leap-16.0-112", "security", "needed", True),
        ("openSUSE-Leap-16.0-113", "security", "needed", True),
        ("openSUSE-Leap-16.0-120", "recommended", "needed", True),
        ("openSUSE-Leap-16.0-121", "security", "not-needed", False)]
    assert [r["restart"] for r in rows] == [False, False, True, False, False]


def test_zypper_xml_that_is_not_an_answer_is_refused():
    with pytest.raises(ValueError, match="System management is locked"):
        parse_zypper_list_updates("<?xml version='1.0'?>\n<stream>\n<message type=\"error\">System management is "
                                  "locked by the application with pid 1234 (zypper).</message>\n</stream>\n")
    with pytest.raises(ValueError):
        parse_zypper_list_patches("Loading repository data...\nNo updates found.\n")
    with pytest.raises(ValueError, match="DOCTYPE"):
        parse_zypper_list_patches('<!DOCTYPE s [<!ENTITY a "aaaa">]><stream><update-status/></stream>')
    assert parse_zypper_needs_rebooting(102) is True and parse_zypper_needs_rebooting(0) is False
    assert parse_zypper_needs_rebooting(1) is None and parse_zypper_needs_rebooting(None) is None


def _chain(nodes: dict[str, dict], name: str) -> list[str]:
    """Types from a node down to its disk (the tree's parents)."""
    out = []
    while name:
        out.append(nodes[name]["type"])
        name = nodes[name]["parent"]
    return out


# ----------------------------------------------------------------- dmsetup table

DMSETUP_CRYPT = {
    # file: (table name, length, key in the kernel keyring, backing device, feature args)
    "dmsetup-table-all-debian-luks2-ssd-name-prefixed-key-ref-redacted-by-author.txt":
        ("debian_crypt", 463583232, True, "8:19", ["allow_discards"]),
    "dmsetup-table-luks-detached-header-ramdisk-key-masked-zeros.txt": ("", 8388608, False, "1:0", []),
    "dmsetup-table-luks-detached-header-ramdisk-same_cpu_crypt-feature-arg.txt":
        ("", 8388608, False, "1:0", ["same_cpu_crypt"]),
    "dmsetup-table-arch-btrfs-root-luks2-keyring-no-feature-args.txt": ("", 3221192705, True, "259:2", []),
}


@pytest.mark.parametrize("name", sorted(DMSETUP_CRYPT))
def test_dmsetup_table_crypt_targets(name):
    table, length, keyring, device, options = DMSETUP_CRYPT[name]
    tables = parse_dmsetup_table(text("dmsetup/" + name))
    # the pasted command line ("# dmsetup table", "$ sudo dmsetup table NAME") is not a table row
    assert list(tables) == [table]
    (segment,) = tables[table]
    assert (segment["start"], segment["length"], segment["target"]) == (0, length, "crypt")
    facts = crypt_table_facts(segment)
    assert facts == {"cipher": "aes-xts-plain64", "key_in_keyring": keyring, "device": device, "options": options}


def test_dmsetup_table_targets_that_are_not_crypt():
    pool = parse_dmsetup_table(text("dmsetup/dmsetup-table-docker-devicemapper-thin-pool-loopback.txt"))
    assert [(s["target"], s["length"], s["args"][:2]) for s in pool[""]] == [("thin-pool", 209715200, ["7:1", "7:0"])]
    cache = parse_dmsetup_table(text("dmsetup/dmsetup-table-dm-cache-writeback-ubuntu-13.04.txt"))
    assert [(s["target"], s["args"][3:6]) for s in cache[""]] == [("cache", ["512", "1", "writeback"])]
    assert crypt_table_facts(pool[""][0]) == {} and crypt_table_facts(cache[""][0]) == {}


def test_lsblk_discard_tree_lvm_on_luks_indented_as_pasted():
    # A Markdown code block: every line indented four spaces. Depth counts from the header's indentation.
    nodes = {n["name"]: n for n in parse_lsblk_tree_text(text("lsblk/lsblk-discard-tree-debian-lvm-on-luks2-four-lvs-indented.txt"))}
    assert len(nodes) == 9 and nodes["sdb"]["depth"] == 0 and nodes["sdb"]["parent"] is None
    assert [nodes[n]["depth"] for n in ("sdb3", "debian_crypt", "goodram_ssd-home")] == [1, 2, 3]
    lvs = sorted(n for n, v in nodes.items() if v["parent"] == "debian_crypt")
    # four LVs on the one LUKS mapping of sdb3: LVM on LUKS
    assert lvs == ["goodram_ssd-ccache", "goodram_ssd-debuilder", "goodram_ssd-home", "goodram_ssd-root"]
    assert nodes["debian_crypt"]["parent"] == "sdb3" and nodes["sdb3"]["parent"] == "sdb"
    # --discard has no TYPE column: the types stay unknown rather than guessed from names
    assert {v["type"] for v in nodes.values()} == {None}


def test_lsblk_tree_lvm_on_luks_manjaro():
    nodes = {n["name"]: n for n in parse_lsblk_tree_text(text("lsblk/lsblk-default-tree-manjaro-lvm-on-luks-swap-root.txt"))}
    assert len(nodes) == 9
    root = next(n for n in nodes.values() if n["mountpoints"] == ["/"])
    # the root LV sits on the crypt mapping of sda2: LVM on LUKS, the root is encrypted
    assert root["name"] == "manjaro--vg0-manjaro--root" and _chain(nodes, root["name"]) == ["lvm", "crypt", "part", "disk"]
    assert _chain(nodes, "manjaro--vg0-manjaro--swap") == ["lvm", "crypt", "part", "disk"]
    assert nodes["manjaro--vg0-manjaro--swap"]["mountpoints"] == ["[SWAP]"] and nodes["sda1"]["mountpoints"] == ["/boot"]
    # sda3..sda5 are siblings of sda2 although the tree line of sda2's subtree runs past them
    assert {nodes[n]["parent"] for n in ("sda3", "sda4", "sda5")} == {"sda"}


def test_lsblk_tree_ascii_btrfs_subvolume_mountpoints_after_command_line():
    # The pasted command line stands before the header; each further btrfs subvolume
    # mountpoint is a line of its own under an ASCII "|" (another partition follows).
    nodes = parse_lsblk_tree_text(text("lsblk/lsblk-ipo-ascii-pkname-btrfs-subvolume-mountpoints-cut.txt"))
    assert [n["name"] for n in nodes] == ["/dev/sda", "/dev/sda1", "/dev/sda2"]
    assert nodes[2]["fstype"] == "btrfs" and nodes[2]["parent"] == "/dev/sda" and nodes[2]["type"] == "part"
    assert nodes[2]["mountpoints"] == ["/var", "/usr/local", "/tmp", "/root", "/srv", "/opt", "/home",
                                       "/boot/grub2/x86_64-efi"]


def test_lsblk_tree_md_raid_lvm_mountpoint_column_not_last():
    nodes = {n["name"]: n for n in parse_lsblk_tree_text(text("lsblk/lsblk-o-hctl-md-raid1-lvm-not-encrypted-cut.txt"))}
    # MOUNTPOINT stands between TYPE and FSTYPE: its cell ends where FSTYPE begins
    assert nodes["kube--storage--01--vg-root"]["mountpoints"] == ["/"]
    assert nodes["md126p1"]["mountpoints"] == ["/boot/efi"] and nodes["md126p2"]["mountpoints"] == []
    assert nodes["kube--storage--01--vg-root"]["fstype"] == "ext4" and nodes["sda"]["mountpoints"] == []
    # LVM on software RAID, no crypt layer anywhere below the root: not encrypted
    assert _chain(nodes, "kube--storage--01--vg-root") == ["lvm", "part", "raid1", "disk"]


# ----------------------------------------------------------------- apt variants


def test_apt_simulate_downgrade_is_not_a_pending_update():
    # A pinned Docker repository makes apt propose 1.6.6-1 -> 1.6.4-1: nothing is missing.
    assert parse_apt_get_simulate(text("apt/apt-get-just-print-upgrade-downgraded-docker-bullseye-cut.txt")) == []
    up = parse_apt_get_simulate("Inst containerd.io [1.6.4-1] (1.6.6-1 Docker CE:bullseye [amd64])\n")
    assert [u["name"] for u in up] == ["containerd.io"]


def test_apt_list_upgradable_focal_updates_none_security():
    rows = parse_apt_list_upgradable(text("apt/apt-list-upgradable-focal-updates-no-security-cut.txt"))
    assert len(rows) == 12 and not any(r["security"] for r in rows)
    assert rows[1] == {"name": "cloud-init", "from": "20.3-2-g371b392c-0ubuntu1~20.04.1",
                       "version": "20.4.1-0ubuntu1~20.04.1", "origins": ["focal-updates"], "security": False}


def test_apt_check_human_xenial_wording():
    # update-notifier before Ubuntu 20.04: "N packages can be updated." (was read as unknown)
    assert parse_apt_check_human(text("apt/apt-check-xenial-packages-can-be-updated.txt")) == \
        {"pending": 178, "security": 122}


def _capture_versions() -> list[str]:
    """Every old and new version in the real apt captures (public and shared)."""
    from conftest import shared
    seen: list[str] = []
    for t in (text("apt/apt-list-upgradable-focal-updates-no-security-cut.txt"),
              shared("linux/updates/apt-list-upgradable-jammy.txt").read_text()):
        seen += [r[k] for r in parse_apt_list_upgradable(t) for k in ("from", "version")]
    for t in (shared("linux/updates/apt-upgrade-phasing-show-versions-noble.txt").read_text(),
              text("apt3-upgrade-dry-run-phasing-only-kubuntu-25.10.txt")):
        seen += [d[k] for d in parse_apt_phasing(t)["deferred"] for k in ("from", "version") if d[k]]
    return sorted(set(seen))


@pytest.mark.skipif(not __import__("shutil").which("dpkg"), reason="needs dpkg to compare with")
def test_dpkg_version_compare_agrees_with_dpkg_on_capture_versions():
    import itertools
    import subprocess
    versions = _capture_versions() + ["1.0~rc1", "1.0", "1:0.9", "1.0a", "1.0-0", "1.0~~", "1.0~", "2.0+dfsg-1",
                                      "5:20.10.17~3-0~debian-bullseye", "5:20.10.17~3-0~debian-buster"]
    assert len(versions) >= 25
    pairs = list(itertools.combinations(versions, 2))[::7][:150]
    for a, b in pairs:
        want = 0 if subprocess.run(["dpkg", "--compare-versions", a, "eq", b]).returncode == 0 else \
            -1 if subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0 else 1
        assert dpkg_version_compare(a, b) == want, (a, b)


# ----------------------------------------------------------------- dnf 5 JSON


def test_dnf5_advisory_json_both_buildtime_forms_and_with_bz_schema():
    rows = parse_dnf_advisory_json(text("dnf/dnf5-updateinfo-list-json-buildtime-text-ci-dnf-stack.json"))
    # three security advisories (one with a custom severity), custom types are not security
    assert [(r["advisory"], r["severity"]) for r in rows] == [
        ("FEDORA-2019-57b5902ed1", "Critical"), ("FEDORA-2022-2222222223", "custom_severity"),
        ("FEDORA-2019-f4eb34cf4c", "Moderate")]
    assert {nevra_name(r["package"]) for r in rows} == {"labirinto"}
    assert parse_dnf_advisory_json(text("dnf/dnf5-advisory-list-json-buildtime-epoch-ci-dnf-stack.json")) == []
    assert parse_dnf_advisory_json(text("dnf/dnf5-advisory-list-with-bz-json-ci-dnf-stack.json")) == []
    assert parse_dnf_advisory_json("[]") == []
    for bad in ('{"FEDORA-1": {}}', '[{"type": "security"}]', "[1]"):
        with pytest.raises(ValueError):
            parse_dnf_advisory_json(bad)
