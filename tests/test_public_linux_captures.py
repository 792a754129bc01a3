"""Real Linux outputs from public issue threads (tests/fixtures/public/PROVENANCE.md,
section "Linux package managers and block devices"): dnf 4/5 and yum, pacman,
cryptsetup and lsblk, each asserted with what a reader of the capture sees in it."""
from __future__ import annotations

from conftest import OWN_FIXTURES

from auditagent.probes.disk_encryption.linux_parsers import parse_cryptsetup_status, parse_lsblk_tree_text
from auditagent.probes.patches.linux_parsers import (nevra_name, parse_dnf_check_update, parse_dnf_updateinfo,
                                                      parse_pacman_qu)

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
    assert rows[1] == {"name": "libnm", "from": "1.10.1dev+58+gd5dc3df20-1", "version": "1.10.2-1"}


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
