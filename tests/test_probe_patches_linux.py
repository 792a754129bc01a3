"""Linux patches probe: apt/dnf/pacman/flatpak captures, replayed hosts with cache, this machine."""
from __future__ import annotations

import datetime as dt
import gzip
import os
import shutil

import pytest

from auditagent.host import RealHost, ReplayHost
from auditagent.probes import Cache, ProbeContext
from auditagent.probes.patches.linux import probe as linux
from auditagent.probes.patches.linux_parsers import (nevra_name, parse_apt_check_human, parse_apt_get_simulate,
                                                      parse_apt_list_upgradable, parse_apt_phasing,
                                                      parse_dnf_check_update, parse_dnf_updateinfo,
                                                      parse_dpkg_log_last, parse_flatpak_updates,
                                                      parse_needs_restarting, parse_pacman_log_last,
                                                      parse_pacman_qu, parse_reboot_required_pkgs,
                                                      parse_rpm_install_times)
from conftest import OWN_FIXTURES, shared

U = "linux/updates/"
HERE = OWN_FIXTURES / "captures" / "linux-debian12-vm-virtio-ext4"
APT_SIM = ["apt-get", "-s", "-o", "Debug::NoLocking=1", "dist-upgrade"]


def test_apt_list_upgradable_jammy():
    pkgs = parse_apt_list_upgradable(shared(U + "apt-list-upgradable-jammy.txt").read_text())
    assert len(pkgs) == 15
    security = {p["name"] for p in pkgs if p["security"]}
    assert security == {"accountsservice", "binutils-common", "binutils-x86-64-linux-gnu", "openssl", "perl-base",
                        "perl-modules-5.34", "sudo", "vim", "xxd"}
    vim = next(p for p in pkgs if p["name"] == "vim")
    assert vim["version"] == "2:8.2.3995-1ubuntu2.9" and vim["from"] == "2:8.2.3995-1ubuntu2.3"


def test_apt_check_human_readable():
    assert parse_apt_check_human(shared(U + "apt-check-human-readable-17-updates.txt").read_text()) == {
        "pending": 17, "security": 5}


def test_apt_phasing_noble():
    ph = parse_apt_phasing(shared(U + "apt-upgrade-phasing-show-versions-noble.txt").read_text())
    assert len(ph["deferred"]) == 11 and ph["upgraded"] == 0 and ph["not_upgraded"] == 11
    assert ph["deferred"][1] == {"name": "dhcpcd-base", "from": "1:10.0.6-1ubuntu3.1", "version": "1:10.0.6-1ubuntu3.2"}


def test_reboot_required_transcript_pkgs_part():
    text = shared(U + "reboot-required-and-pkgs-transcript.txt").read_text()
    assert "System restart required" in text.split("% cat /var/run/reboot-required.pkgs")[0]
    pkgs_part = text.split("% cat /var/run/reboot-required.pkgs", 1)[1].split("\n", 1)[1]
    assert parse_reboot_required_pkgs(pkgs_part) == ["libssl1.0.0", "linux-base", "libc6"]


def test_yum_check_update_centos7():
    pkgs = parse_dnf_check_update(shared(U + "yum-check-update-centos7.txt").read_text())
    assert len(pkgs) == 15
    assert pkgs[0] == {"name": "apr-util", "arch": "x86_64", "version": "1.5.2-6.el7_9.1", "repo": "updates"}
    assert {"name": "java-1.8.0-openjdk-headless", "arch": "x86_64", "version": "1:1.8.0.372.b07-1.el7_9",
            "repo": "updates"} in pkgs


def test_dnf_needs_restarting_rocky8():
    text = shared(U + "dnf-needs-restarting-r-no-reboot-rocky8.txt").read_text()
    assert parse_needs_restarting(text, 0) is False
    assert parse_needs_restarting("Core libraries or services have been updated since boot-up:\n  * kernel\n\n"
                                  "Reboot is required to fully utilize these updates.\n", 1) is True
    assert parse_needs_restarting("", 1) is True and parse_needs_restarting("", None) is None


def test_dnf_updateinfo_and_nevra():
    text = ("RHSA-2023:3722 Important/Sec. openssl-1:1.1.1k-9.el8_7.x86_64\n"
            "RHSA-2023:3722 Important/Sec. openssl-libs-1:1.1.1k-9.el8_7.x86_64\n"
            "FEDORA-2024-1a2b3c moderate/Sec. curl-8.2.1-4.fc39.x86_64\n")
    adv = parse_dnf_updateinfo(text)
    assert [nevra_name(a["package"]) for a in adv] == ["openssl", "openssl-libs", "curl"]
    assert parse_rpm_install_times("1690000000\n1700000000\n(none)\n") == 1700000000.0


def test_pacman_qu_arch():
    pkgs = parse_pacman_qu(shared(U + "pacman-Qu-arch-many-including-kernel.txt").read_text())
    assert len(pkgs) == 20
    assert {"name": "linux", "from": "5.18.14.arch1-1", "version": "6.0.12.arch1-1", "ignored": False} in pkgs
    last = parse_pacman_log_last("[2022-12-01T10:00:00+0100] [ALPM] upgraded linux (5.18 -> 6.0)\n"
                                 "[2022-12-01T10:05:00+0100] [ALPM] running 'x'\n")
    assert last == dt.datetime(2022, 12, 1, 9, 0, tzinfo=dt.timezone.utc)


def test_flatpak_remote_ls_updates():
    apps = parse_flatpak_updates(shared(U + "flatpak-remote-ls-updates-debian.txt").read_text())
    assert len(apps) == 5
    assert apps[0] == {"name": "Discord", "application": "com.discordapp.Discord", "version": None,
                       "branch": "stable", "arch": "x86_64"}


def test_own_capture_apt_get_simulate_matches_apt_list():
    sim = parse_apt_get_simulate((HERE / "apt-get-s-dist-upgrade.txt").read_text())
    listed = parse_apt_list_upgradable((HERE / "apt-list-upgradable.txt").read_text())
    assert len(sim) == 136 and len([p for p in sim if p["security"]]) == 81
    assert {p["name"] for p in sim} <= {p["name"] for p in listed}
    apt = next(p for p in sim if p["name"] == "apt")
    assert apt["security"] and apt["from"] == "2.6.1" and apt["origins"] == ["Debian-Security:12/oldstable-security"]
    assert parse_dpkg_log_last((HERE / "dpkg-log-tail.txt").read_text()) == dt.datetime(2026, 11, 23, 5, 55, 50)


# --------------------------------------------------------------------------- probe on replayed hosts

DPKG_LOG = "2024-04-30 09:00:00 upgrade openssl:amd64 3.0.2 3.0.3\n2024-04-30 09:00:05 status installed openssl:amd64 3.0.3\n"
APT_SIM_TEXT = """NOTE: This is only a simulation!
Inst openssl [3.0.2-0ubuntu1.8] (3.0.2-0ubuntu1.10 Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security [amd64])
Inst apt [2.4.8] (2.4.9 Ubuntu:22.04/jammy-updates [amd64])
Inst linux-image-6.5.0-35-generic (6.5.0-35.35~22.04.1 Ubuntu:22.04/jammy-security [amd64])
Conf openssl (3.0.2-0ubuntu1.10 Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security [amd64])
"""


def apt_host(clock: dt.datetime) -> ReplayHost:
    host = ReplayHost(clock=clock).add_command(APT_SIM, APT_SIM_TEXT)
    host.add_file("/var/log/dpkg.log", "2024-05-01 08:00:00 startup archives unpack\n")
    host.add_file("/var/log/dpkg.log.1", DPKG_LOG)
    host.add_file("/etc/timezone", "Europe/Stockholm\n")
    host.add_file("/var/run/reboot-required", "*** System restart required ***\n")
    return host


def test_probe_apt_pending_security_cache_and_first_seen(tmp_path):
    t0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
    cache = Cache(tmp_path)
    s = linux(ProbeContext(apt_host(t0), cache=cache))
    assert s["status"] == "ok", s["reasons"]
    assert (s["manager"], s["pending"], s["pending_security"], s["pending_names"]) == ("apt", 2, 1, ["openssl"])
    assert s["last_update"] == "2024-04-30T07:00:05+00:00"  # dpkg.log is local time (CEST)
    assert s["reboot_required"] is True and s["pending_security_oldest_days"] == 0.0
    assert s["cache_ttl_seconds"] == 6 * 3600 and s["cached_at"]
    # three hours later (the host's clock), from the cache: apt is not asked again
    soon = apt_host(t0 + dt.timedelta(hours=3))
    s1 = linux(ProbeContext(soon, cache=cache))
    assert APT_SIM not in [list(c) for c in soon.calls] and s1["cached_at"] == s["cached_at"]
    # three days later the cache has expired, apt is asked, and the update has waited 3 days
    later = apt_host(t0 + dt.timedelta(days=3))
    s2 = linux(ProbeContext(later, cache=cache))
    assert APT_SIM in [list(c) for c in later.calls]
    assert s2["pending_security_oldest_days"] == 3.0 and s2["cached_at"] != s["cached_at"]


def test_probe_apt_failure_is_not_cached_and_reported(tmp_path):
    host = ReplayHost().add_command(APT_SIM, "", returncode=100, stderr="E: Could not open lock file\n")
    host.add_file("/var/log/dpkg.log.2.gz", gzip.compress(DPKG_LOG.encode()))
    s = linux(ProbeContext(host, cache=Cache(tmp_path)))
    assert s["pending"] is None and s["status"] == "partial"
    assert any("Could not open lock file" in r for r in s["reasons"])
    assert s["last_update"] == "2024-04-30T09:00:05+00:00"  # no zone information: UTC
    assert not list(tmp_path.glob("patches-apt.json"))


def test_probe_apt_reboot_from_kernel_modules():
    host = ReplayHost().add_command(APT_SIM, "")
    host.add_file("/proc/sys/kernel/osrelease", "6.1.0-20-amd64\n")
    host.add_file("/lib/modules/6.1.0-20-amd64/modules.dep", "")
    host.add_file("/lib/modules/6.1.0-21-amd64/modules.dep", "")
    s = linux(ProbeContext(host))
    assert s["reboot_required"] is True and s["pending"] == 0 and s["pending_security"] == 0
    host.files.pop("/lib/modules/6.1.0-21-amd64/modules.dep")
    assert linux(ProbeContext(host))["reboot_required"] is False


def test_probe_dnf_from_captures():
    host = ReplayHost()
    host.add_command(["dnf", "-q", "check-update"], shared(U + "yum-check-update-centos7.txt").read_text(),
                     returncode=100)
    host.add_command(["dnf", "-q", "updateinfo", "list", "--security"],
                     "RHSA-2023:3722 Important/Sec. openssl-1:1.0.2k-26.el7_9.x86_64\n"
                     "RHSA-2023:3722 Important/Sec. openssl-libs-1:1.0.2k-26.el7_9.x86_64\n")
    host.add_command(["rpm", "-qa", "--qf", "*"], "1690000000\n1690500000\n")
    host.add_command(["dnf", "needs-restarting", "-r"],
                     shared(U + "dnf-needs-restarting-r-no-reboot-rocky8.txt").read_text(), returncode=0)
    s = linux(ProbeContext(host))
    assert s["status"] == "ok", s["reasons"]
    assert (s["manager"], s["pending"], s["pending_security"]) == ("dnf", 15, 2)
    assert s["pending_names"] == ["openssl", "openssl-libs"] and s["reboot_required"] is False
    assert s["last_update"] == "2023-07-27T23:20:00+00:00"


def test_probe_pacman_has_no_security_classification():
    host = ReplayHost().add_command(["pacman", "-Qu"], shared(U + "pacman-Qu-arch-many-including-kernel.txt"))
    s = linux(ProbeContext(host))
    assert s["manager"] == "pacman" and s["pending"] == 20 and s["pending_security"] is None
    assert s["status"] == "partial"


def test_probe_without_package_manager():
    s = linux(ProbeContext(ReplayHost()))
    assert s["status"] == "unknown" and s["manager"] is None


@pytest.mark.skipif(not shutil.which("apt-get"), reason="apt machine only")
def test_live_this_machine(tmp_path):
    s = linux(ProbeContext(RealHost("linux"), cache=Cache(tmp_path)))
    assert s["manager"] == "apt"
    assert isinstance(s["pending"], int) and isinstance(s["pending_security"], int)
    assert s["pending_security"] <= s["pending"] and s["cache_ttl_seconds"] == 21600
    assert s["last_update"] is not None


PUB = OWN_FIXTURES / "public/linux"


def test_apt3_phasing_and_summary_kubuntu():
    ph = parse_apt_phasing((PUB / "apt3-upgrade-dry-run-phasing-only-kubuntu-25.10.txt").read_text())
    names = [d["name"] for d in ph["deferred"]]
    assert len(names) == 16 and names[0] == "libnss-mymachines" and "libudev1:i386" in names and names[-1] == "udev"
    assert (ph["upgraded"], ph["not_upgraded"], ph["kept_back"]) == (0, 16, [])


def test_apt2_phasing_unindented_and_kept_back():
    ph = parse_apt_phasing((PUB / "apt2-upgrade-deferred-phasing-ubuntu-24.04-unindented.txt").read_text())
    assert [d["name"] for d in ph["deferred"]] == ["distro-info-data"]
    assert (ph["upgraded"], ph["not_upgraded"]) == (0, 1)
    ph = parse_apt_phasing((PUB / "apt2-full-upgrade-kept-back-multi-name.txt").read_text())
    assert ph["deferred"] == [] and (ph["upgraded"], ph["not_upgraded"]) == (0, 3)
    assert [k["name"] for k in ph["kept_back"]] == ["cloud-init", "python3-update-manager", "update-manager-core"]
    # apt 2 packs several names on one line: every one is kept, not just the first.
    ph = parse_apt_phasing("The following upgrades have been deferred due to phasing:\n"
                           "  gir1.2-gstreamer-1.0 libgstreamer1.0-0\n  udev\n"
                           "0 upgraded, 0 newly installed, 0 to remove and 3 not upgraded.\n")
    assert [d["name"] for d in ph["deferred"]] == ["gir1.2-gstreamer-1.0", "libgstreamer1.0-0", "udev"]


APT_PUB = PUB / "apt"


def test_apt2_phasing_multiarch_mint_and_the_probe_counts_no_phased_update():
    text = (APT_PUB / "apt-get-s-upgrade-linux-mint-2026-10-phasing-only-multiarch-i386.txt").read_text()
    ph = parse_apt_phasing(text)
    names = [d["name"] for d in ph["deferred"]]
    # 16 names over four lines, eight of them the :i386 twin of a native package
    assert len(names) == 16 and sum(n.endswith(":i386") for n in names) == 8
    assert names[:2] == ["libegl-mesa0", "libegl-mesa0:i386"] and names[-1] == "mesa-vulkan-drivers:i386"
    assert (ph["upgraded"], ph["not_upgraded"], ph["kept_back"]) == (0, 16, [])
    # A phased update is not yet offered to this machine: no Inst line, nothing pending
    host = ReplayHost().add_command(APT_SIM, text)
    host.add_file("/var/log/dpkg.log", "2026-10-04 08:00:00 status installed mesa-vulkan-drivers:amd64 25.0.7\n")
    s = linux(ProbeContext(host))
    assert (s["manager"], s["pending"], s["pending_security"]) == ("apt", 0, 0)


def test_apt3_phasing_with_other_apt3_sections():
    # apt 3's "Upgrading:", "Installing dependencies:", "Suggested packages:" and "DOWNGRADING:" lists
    # are not phasing lists; the Summary line gives the counts.
    ph = parse_apt_phasing((APT_PUB / "apt3-upgrade-ubuntu-24.10-arm64-phasing-gzip-summary-boot-space.txt").read_text())
    assert ([d["name"] for d in ph["deferred"]], ph["upgraded"], ph["not_upgraded"]) == (["gzip"], 71, 1)
    ph = parse_apt_phasing((APT_PUB / "apt3-upgrade-noble-phasing-qemu-and-DOWNGRADING-section.txt").read_text())
    assert [d["name"] for d in ph["deferred"]] == ["qemu-guest-agent", "qemu-utils"]
    # "Downgrading: 12" between the counts does not hide "Not Upgrading: 2"
    assert (ph["upgraded"], ph["not_upgraded"], ph["kept_back"]) == (30, 2, [])


# ----------------------------------------------------------------- zypper

ZYP = OWN_FIXTURES / "public/linux/zypper"
ZYPPER_LU = ["zypper", "--xmlout", "--non-interactive", "--no-refresh", "list-updates"]
ZYPPER_LP = ["zypper", "--xmlout", "--non-interactive", "--no-refresh", "list-patches"]
NO_PATCHES = "<?xml version='1.0'?>\n<stream>\n<update-status version=\"0.6\">\n<update-list>\n</update-list>\n" \
             "</update-status>\n</stream>\n"


def zypper_host(tmp_path, updates: str, patches: str | None, reboot_rc: int | None = 0,
                updateinfo: bool = True) -> ReplayHost:
    host = ReplayHost()
    # libzypp's raw metadata cache: an update repository with updateinfo, a codec repository without
    host.add_file("/var/cache/zypp/raw/repo-openh264/repodata/repomd.xml", "<repomd/>")
    if updateinfo:
        host.add_file("/var/cache/zypp/raw/repo-update/repodata/1f2e-updateinfo.xml.zst", b"\x28\xb5")
    host.add_command(ZYPPER_LU, ZYP / updates)
    # 101: security patches needed (zypper's information code, as patch-check gives it)
    host.add_command(ZYPPER_LP, ZYP / patches if patches else NO_PATCHES, returncode=101 if patches else 0)
    host.add_command(["rpm", "-qa", "--qf", "*"], "1766000000\n1766061723\n")
    if reboot_rc is None:  # a zypper without the command
        host.add_command(["zypper", "--non-interactive", "needs-rebooting"], "", returncode=1,
                         stderr="Unknown command 'needs-rebooting'\n")
    else:
        host.add_command(["zypper", "--non-interactive", "needs-rebooting"], "", returncode=reboot_rc)
        if reboot_rc == 102:  # the command answers from libzypp's flag
            host.add_file("/run/reboot-needed", "")
    rpmdb = tmp_path / "rpmdb.sqlite"
    if not rpmdb.exists():
        rpmdb.write_text("x")
    host.add_file("/usr/lib/sysimage/rpm/rpmdb.sqlite", rpmdb)
    return host


def test_probe_zypper_security_patches_reboot_and_cache_by_inputs(tmp_path):
    cache = Cache(tmp_path / "cache")
    host = zypper_host(tmp_path, "zypper-xmlout-list-updates-sles-12-sp1-three-packages.xml",
                       "synthetic-zypper-xmlout-list-patches-all-leap-16-shape.xml", reboot_rc=102)
    s = linux(ProbeContext(host, cache=cache))
    assert s["status"] == "ok", s["reasons"]
    assert (s["manager"], s["pending"], s["pending_security"]) == ("zypper", 3, 2)
    # applied and not-needed security patches and needed recommended ones are not pending security
    assert s["pending_names"] == ["openSUSE-Leap-16.0-112", "openSUSE-Leap-16.0-113"]
    assert s["reboot_required"] is True and s["last_update"] == "2025-12-18T12:42:03+00:00"
    # the rpm database has not changed: the cached answer is used and zypper is not asked again
    again = zypper_host(tmp_path, "zypper-xmlout-list-updates-sles-12-sp1-three-packages.xml",
                        "synthetic-zypper-xmlout-list-patches-all-leap-16-shape.xml", reboot_rc=0)
    s1 = linux(ProbeContext(again, cache=cache))
    assert ZYPPER_LU not in [list(c) for c in again.calls] and s1["pending_security"] == 2
    assert s1["reboot_required"] is False  # the reboot flag is read every run, never cached
    # whether this zypper has needs-rebooting is asked once; the next hourly run only looks at the flag
    hourly = zypper_host(tmp_path, "zypper-xmlout-list-updates-sles-12-sp1-three-packages.xml",
                         "synthetic-zypper-xmlout-list-patches-all-leap-16-shape.xml", reboot_rc=0)
    assert linux(ProbeContext(hourly, cache=cache))["reboot_required"] is False
    assert [list(c) for c in hourly.calls] == [["rpm", "-qa", "--qf", "%{INSTALLTIME}\\n"]]
    # a package was installed (the rpm database changed): zypper is asked again
    os.utime(tmp_path / "rpmdb.sqlite", (1, 1))
    changed = zypper_host(tmp_path, "zypper-xmlout-list-updates-tumbleweed-20260830-one-package.xml",
                          "synthetic-zypper-xmlout-list-patches-all-leap-16-shape.xml")
    s2 = linux(ProbeContext(changed, cache=cache))
    assert ZYPPER_LU in [list(c) for c in changed.calls] and s2["pending"] == 1


def test_probe_zypper_real_leap_16_answers(tmp_path):
    # The real Leap 16.0 pair (list-updates whole; list-patches cut after its second patch, closed
    # here as the source file closes it): four packages pending, two security patches needed.
    from test_public_linux_captures import LEAP16_CLOSE, LEAP16_PATCHES_PARTIAL
    patches = tmp_path / "lp.xml"
    patches.write_text((ZYP.parent / LEAP16_PATCHES_PARTIAL).read_text() + LEAP16_CLOSE)
    host = zypper_host(tmp_path, "zypper-xmlout-list-updates-leap-16.0-aarch64-kernel-and-qemu-guest-agent.xml",
                       str(patches), reboot_rc=0)
    s = linux(ProbeContext(host))
    assert s["status"] == "ok", s["reasons"]
    assert (s["manager"], s["pending"], s["pending_security"]) == ("zypper", 4, 2)
    assert s["pending_names"] == ["openSUSE-Leap-16.0-112", "openSUSE-Leap-16.0-113"]
    # the kernel patch would need a reboot once installed; nothing installed awaits one yet
    assert s["reboot_required"] is False


@pytest.mark.parametrize("release", ["os-release-tumbleweed-20211111-id-opensuse-tumbleweed.txt",
                                     "os-release-tumbleweed-20170521-rpi-id-opensuse-gist-table-cells.txt"])
def test_probe_zypper_tumbleweed_pending_is_unknown_not_an_undercount(tmp_path, release):
    # Tumbleweed is updated with `zypper dup`; list-updates (here: one package) would undercount.
    host = zypper_host(tmp_path, "zypper-xmlout-list-updates-tumbleweed-20260830-one-package.xml", None)
    host.add_file("/etc/os-release", OWN_FIXTURES / "public/linux/os-release" / release)
    s = linux(ProbeContext(host, cache=Cache(tmp_path / "c")))
    assert (s["manager"], s["pending"], s["status"]) == ("zypper", None, "partial")
    assert ZYPPER_LU not in [list(c) for c in host.calls]
    assert "patches.rolling_release: opensuse-tumbleweed" in s["reasons"]
    # the patches Tumbleweed's update repository publishes are still read
    assert s["pending_security"] == 0 and s["reboot_required"] is False
    # Leap (a point release) keeps counting list-updates
    leap = zypper_host(tmp_path, "zypper-xmlout-list-updates-tumbleweed-20260830-one-package.xml", None)
    leap.add_file("/etc/os-release", 'NAME="openSUSE Leap"\nID="opensuse-leap"\nVERSION_ID="16.0"\n')
    assert linux(ProbeContext(leap, cache=Cache(tmp_path / "leap")))["pending"] == 1


def test_rolling_release_reason_is_translated():
    from auditagent.i18n import reason_text
    text = "patches.rolling_release: opensuse-tumbleweed"
    shown = {lang: reason_text(text, lang) for lang in ("sv", "da", "en")}
    assert shown["sv"].startswith("opensuse-tumbleweed är en rullande utgåva")
    assert shown["da"].startswith("opensuse-tumbleweed er en rullende udgivelse")
    assert shown["en"].startswith("opensuse-tumbleweed is a rolling release")
    assert all("zypper dup" in t for t in shown.values()) and len(set(shown.values())) == 3


def test_probe_zypper_without_patch_metadata_says_security_unknown(tmp_path):
    # nothing needed and a repository with updateinfo: no security patch is pending
    host = zypper_host(tmp_path, "zypper-xmlout-list-updates-tumbleweed-20260830-one-package.xml", None)
    assert linux(ProbeContext(host))["pending_security"] == 0
    # nothing needed and no patch metadata anywhere: unknown, not 0
    host = zypper_host(tmp_path, "zypper-xmlout-list-updates-tumbleweed-20260830-one-package.xml", None,
                       reboot_rc=None, updateinfo=False)
    host.add_file("/run/reboot-needed", "")
    s = linux(ProbeContext(host))
    assert (s["manager"], s["pending"], s["pending_security"], s["status"]) == ("zypper", 1, None, "partial")
    assert s["reboot_required"] is True  # libzypp's flag file, without asking needs-rebooting
    assert any("security" in r for r in s["reasons"])


def test_probe_zypper_old_zypper_falls_back_to_kernel_and_refuses_bad_xml(tmp_path):
    host = zypper_host(tmp_path, "zypper-xmlout-list-updates-tumbleweed-20260830-none.xml", None, reboot_rc=None)
    host.add_file("/proc/sys/kernel/osrelease", "6.4.0-150600.23.7-default\n")
    host.add_file("/lib/modules/6.4.0-150600.23.7-default/modules.dep", "")
    s = linux(ProbeContext(host))
    assert s["pending"] == 0 and s["reboot_required"] is False
    bad = ReplayHost().add_command(ZYPPER_LU, "<?xml version='1.0'?>\n<stream>\n<message type=\"error\">System "
                                   "management is locked by the application with pid 812 (zypper).</message>\n"
                                   "</stream>\n", returncode=7)
    s = linux(ProbeContext(bad, cache=Cache(tmp_path / "c")))
    assert s["manager"] == "zypper" and s["pending"] is None and s["pending_security"] is None
    assert not list((tmp_path / "c").glob("patches-zypper.json"))  # a failure is never cached


def test_probe_dnf5_reads_advisories_as_json_and_dnf4_falls_back_to_text():
    dnf5 = ReplayHost()
    dnf5.add_command(["dnf", "-q", "check-update"], OWN_FIXTURES / "public/linux/dnf/dnf5-check-update-fedora-41.txt",
                     returncode=100)
    dnf5.add_command(["dnf", "-q", "updateinfo", "list", "--security", "--json"],
                     OWN_FIXTURES / "public/linux/dnf/dnf5-updateinfo-list-json-buildtime-text-ci-dnf-stack.json")
    dnf5.add_command(["rpm", "-qa", "--qf", "*"], "1690000000\n")
    dnf5.add_command(["dnf", "needs-restarting", "-r"], "", returncode=0)
    s = linux(ProbeContext(dnf5))
    assert (s["pending"], s["pending_security"], s["pending_names"]) == (1, 1, ["labirinto"])
    assert ["dnf", "-q", "updateinfo", "list", "--security"] not in [list(c) for c in dnf5.calls]
    dnf4 = ReplayHost()
    dnf4.add_command(["dnf", "-q", "check-update"], shared(U + "yum-check-update-centos7.txt").read_text(),
                     returncode=100)
    dnf4.add_command(["dnf", "-q", "updateinfo", "list", "--security", "--json"], "", returncode=2,
                     stderr="dnf: error: unrecognized arguments: --json\n")
    dnf4.add_command(["dnf", "-q", "updateinfo", "list", "--security"],
                     OWN_FIXTURES / "public/linux/dnf/yum-updateinfo-list-security-all-rhel-7.txt")
    dnf4.add_command(["rpm", "-qa", "--qf", "*"], "1690000000\n")
    dnf4.add_command(["dnf", "needs-restarting", "-r"], "", returncode=0)
    s = linux(ProbeContext(dnf4))
    assert s["pending_security"] == 2 and s["pending_names"] == ["389-ds-base", "389-ds-base-libs"]
    # JSON that is not an advisory list is a failed query, never "nothing pending"
    dnf5.add_command(["dnf", "-q", "updateinfo", "list", "--security", "--json"], "[1, 2]")
    dnf5.commands = [c for c in dnf5.commands if "--json" not in c.argv or c.stdout == b"[1, 2]"]
    s = linux(ProbeContext(dnf5))
    assert s["pending_security"] is None and s["pending"] is None


@pytest.mark.parametrize("manager, refreshed", [
    ("dnf", "var/cache/libdnf5/fedora-4d1b2f0a"),  # dnf 5's metadata cache
    ("zypper", "var/cache/zypp/solv/repo-oss"),   # libzypp's solver cache of one repository
])
def test_a_metadata_refresh_changes_the_inputs(tmp_path, manager, refreshed):
    from auditagent import package_inputs
    (tmp_path / refreshed).mkdir(parents=True)
    (tmp_path / "usr/lib/sysimage/rpm").mkdir(parents=True)
    (tmp_path / "usr/lib/sysimage/rpm/rpmdb.sqlite").write_text("x")
    host = ReplayHost(root=tmp_path)
    before = package_inputs.fingerprint(host, manager)
    assert before is not None and before == package_inputs.fingerprint(host, manager)
    (tmp_path / refreshed / "solv").write_text("new")
    os.utime(tmp_path / refreshed, (2_000_000_000, 2_000_000_000))
    assert package_inputs.fingerprint(host, manager) != before


def test_probe_zypper_answer_is_asked_again_when_the_distribution_changes(tmp_path):
    # Whether list-updates counts at all depends on os-release (a rolling release does not):
    # a Leap that became Tumbleweed (zypper dup --releasever / a migration) must not keep
    # Leap's cached count, even if the rpm database's times did not move.
    release = tmp_path / "os-release"
    release.write_text('NAME="openSUSE Leap"\nID="opensuse-leap"\nVERSION_ID="16.0"\n')
    cache = Cache(tmp_path / "cache")

    def run() -> tuple[dict, ReplayHost]:
        host = zypper_host(tmp_path, "zypper-xmlout-list-updates-tumbleweed-20260830-one-package.xml", None)
        host.add_file("/etc/os-release", release)
        return linux(ProbeContext(host, cache=cache)), host

    leap, _ = run()
    assert leap["pending"] == 1
    again, host = run()
    assert again["pending"] == 1 and ZYPPER_LU not in [list(c) for c in host.calls]  # unchanged: reused
    release.write_text((OWN_FIXTURES / "public/linux/os-release"
                        / "os-release-tumbleweed-20211111-id-opensuse-tumbleweed.txt").read_text())
    st = release.stat()
    os.utime(release, (st.st_atime + 60, st.st_mtime + 60))
    tumbleweed, _ = run()
    assert tumbleweed["pending"] is None
    assert "patches.rolling_release: opensuse-tumbleweed" in tumbleweed["reasons"]
