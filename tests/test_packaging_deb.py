"""The Linux package, for real: packaging/linux/build-deb.sh builds the .deb, dpkg installs
it on this machine, the installed agent checks this computer, enrols silently against a
real collector on 127.0.0.1 (token dropped in /etc/auditagent before install, as Ansible
does), the systemd unit's own command sends a report, systemd-analyze verifies the unit
files, and remove/purge leave nothing behind.

One .deb is built per session (``AUDITAGENT_TEST_DEB=path`` reuses a prebuilt one). Needs
root, dpkg and the system's python3.X with venv (python3-venv); skipped otherwise. It
installs into the real /opt, /etc, /var/lib and /lib/systemd — it is meant for CI and
throwaway machines, and purges the package afterwards.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from collector_fixtures import start_collector
from conftest import REPO

BUILD = REPO / "packaging" / "linux" / "build-deb.sh"
UNITS = [Path("/lib/systemd/system/auditagent.service"), Path("/lib/systemd/system/auditagent.timer")]
LEFTOVERS = [
    "/opt/auditagent", "/etc/auditagent", "/var/lib/auditagent", "/usr/bin/auditagent",
    "/lib/systemd/system/auditagent.service", "/lib/systemd/system/auditagent.timer",
    "/etc/systemd/system/auditagent.timer", "/etc/systemd/system/timers.target.wants/auditagent.timer",
    "/usr/share/applications/auditagent-check.desktop", "/usr/share/doc/auditagent",
    "/var/lib/systemd/deb-systemd-helper-enabled/auditagent.timer.dsh-also",
    "/var/lib/systemd/deb-systemd-helper-enabled/timers.target.wants/auditagent.timer",
    "/var/lib/systemd/deb-systemd-helper-masked/auditagent.timer",
]

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                       reason="installs a .deb with dpkg: needs root (CI runs as root)"),
    pytest.mark.skipif(shutil.which("dpkg-deb") is None or shutil.which("dpkg") is None,
                       reason="needs dpkg and dpkg-deb (a Debian or Ubuntu machine)"),
    pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="needs the system's /usr/bin/python3"),
    pytest.mark.timeout(900),
]


def sh(*args: str, check: bool = True, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{shlex.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def dpkg(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """dpkg, waiting (up to 3 min) for the dpkg lock if another installation holds it."""
    deadline = time.monotonic() + 180
    while True:
        proc = sh("dpkg", *args, check=False, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if proc.returncode != 0 and "lock" in proc.stderr and time.monotonic() < deadline:
            time.sleep(2)
            continue
        if check and proc.returncode != 0:
            raise AssertionError(f"dpkg {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc


def installed() -> bool:
    proc = sh("dpkg-query", "-W", "-f=${db:Status-Status}", "auditagent", check=False)
    return proc.returncode == 0 and proc.stdout.strip() not in ("", "not-installed")


def pyproject_version() -> str:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prebuilt = os.environ.get("AUDITAGENT_TEST_DEB")
    if prebuilt:
        return Path(prebuilt)
    if sh("/usr/bin/python3", "-c", "import ensurepip, venv", check=False).returncode != 0:
        pytest.skip("the system python3 has no venv/ensurepip (apt install python3-venv)")
    out = tmp_path_factory.mktemp("deb")
    proc = sh("bash", str(BUILD), str(out), timeout=600)
    debs = list(out.glob("auditagent_*.deb"))
    assert len(debs) == 1, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(debs[0])
    return debs[0]


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory):
    c = start_collector(f"sqlite:///{tmp_path_factory.mktemp('deb-collector') / 'c.db'}",
                        tmp_path_factory.mktemp("deb-collector-work"))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def install(deb: Path, collector):
    """Installed the way IT deploys silently: agent.yaml (server) and the unit's enrolment
    token are put in /etc/auditagent first, then the package is installed."""
    if installed():
        dpkg("--purge", "auditagent")
    shutil.rmtree("/var/lib/auditagent", ignore_errors=True)  # state other runs may have left
    unit = "Testförvaltningen/Linux/Paket"
    collector.cli("unit", "add", unit)
    token = collector.cli("token", "create", "--unit", unit).stdout.strip().splitlines()[-1]
    etc = Path("/etc/auditagent")
    etc.mkdir(mode=0o755, exist_ok=True)
    (etc / "agent.yaml").write_text(f"server: {collector.url}\nsend_attempts: 2\nsend_timeout: 10\n")
    fd = os.open(etc / "enroll-token", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    proc = dpkg("--force-confold", "--force-confdef", "-i", str(deb))
    try:
        yield {"token": token, "unit": unit, "dpkg": proc}
    finally:
        if installed():
            dpkg("--purge", "auditagent", check=False)


# ------------------------------------------------------------------ the package file


def test_deb_metadata_and_contents(deb: Path):
    info = sh("dpkg-deb", "-f", str(deb)).stdout
    fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", info, re.MULTILINE))
    assert fields["Package"] == "auditagent" and fields["Version"] == pyproject_version()
    assert re.fullmatch(r"python3\.\d+, init-system-helpers.*", fields["Depends"])
    assert deb.name == f"auditagent_{fields['Version']}_{fields['Architecture']}.deb"
    listing = sh("dpkg-deb", "-c", str(deb)).stdout
    entries = {line.split()[-1] if " -> " not in line else line.split()[-3]: line for line in listing.splitlines()}
    assert entries["./var/lib/auditagent/"].startswith("drwx------ root/root")
    assert entries["./etc/auditagent/agent.yaml"].startswith("-rw-r--r-- root/root")
    assert "-> /opt/auditagent/bin/auditagent" in entries["./usr/bin/auditagent"]
    for path in ("./lib/systemd/system/auditagent.service", "./lib/systemd/system/auditagent.timer",
                 "./usr/share/applications/auditagent-check.desktop", "./opt/auditagent/libexec/auditagent_setup.py",
                 "./opt/auditagent/pyvenv.cfg"):
        assert path in entries, path
    # Agent only, no build tools, no collector.
    assert not any("/site-packages/server/" in p or "/site-packages/fastapi" in p for p in entries)
    assert not any(p.startswith("./opt/auditagent/bin/pip") for p in entries)
    # Bytecode is shipped for every module (so Python never writes beside /opt at run time).
    py = {p for p in entries if p.endswith(".py") and "/site-packages/auditagent/" in p}
    pyc = {p for p in entries if p.endswith(".pyc") and "/site-packages/auditagent/" in p}
    assert py and len(pyc) >= len(py)
    conffiles = subprocess.run(["dpkg-deb", "-I", str(deb), "conffiles"], capture_output=True, text=True, check=False).stdout
    assert conffiles.split() == ["/etc/auditagent/agent.yaml"]


def test_deb_ships_the_commented_sample_config(deb: Path, tmp_path: Path):
    sh("dpkg-deb", "-x", str(deb), str(tmp_path))
    sample = (tmp_path / "etc/auditagent/agent.yaml").read_text()
    assert sample == (REPO / "packaging/common/agent.yaml").read_text()
    sys.path.insert(0, str(REPO))
    from auditagent.config import parse_config

    cfg = parse_config(sample, "/etc/auditagent/agent.yaml")
    assert cfg.server is None  # every key commented out: the agent's defaults
    cfg = re.sub(r"^# server: ", "server: ", sample, flags=re.MULTILINE)
    assert parse_config(cfg, "agent.yaml").server == "https://audit.example.org"


# ------------------------------------------------------------------ installed


def test_installed_layout(install):
    assert Path("/usr/bin/auditagent").resolve() == Path("/opt/auditagent/bin/auditagent")
    assert oct(Path("/var/lib/auditagent").stat().st_mode & 0o777) == "0o700"
    # The conffile IT put there first was kept; the package's sample sits beside it.
    assert "server: http://127.0.0.1:" in Path("/etc/auditagent/agent.yaml").read_text()
    assert Path("/etc/systemd/system/timers.target.wants/auditagent.timer").resolve() == \
        Path("/lib/systemd/system/auditagent.timer").resolve()
    shebang = Path("/opt/auditagent/bin/auditagent").read_text().splitlines()[0]
    assert re.fullmatch(r"#!/opt/auditagent/bin/python3\.\d+ -I", shebang)
    if shutil.which("desktop-file-validate"):
        proc = sh("desktop-file-validate", "/usr/share/applications/auditagent-check.desktop", check=False)
        assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_installed_agent_checks_this_computer(install):
    started = time.time()
    proc = sh("auditagent", "check", "--lang", "en", check=False, timeout=120)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    verdict = proc.stdout.splitlines()[0]
    assert verdict.startswith("READY" if proc.returncode == 0 else "NOT READY"), proc.stdout
    proc = sh("auditagent", "check", "--json", check=False, timeout=120)
    assert proc.returncode in (0, 1) and json.loads(proc.stdout)["verdict"] in ("ready", "not_ready")
    # The packaged bytecode is used as it is: nothing written under /opt.
    written = [p for p in Path("/opt/auditagent").rglob("*.pyc") if p.stat().st_mtime >= started - 1]
    assert not written, written[:5]


def test_postinst_enrolled_with_the_dropped_token(install, collector):
    assert "enrolled: device" in install["dpkg"].stdout + install["dpkg"].stderr
    assert install["token"] not in install["dpkg"].stdout + install["dpkg"].stderr
    assert not Path("/etc/auditagent/enroll-token").exists()
    assert not Path("/var/lib/auditagent/enroll-token").exists()
    enrollment = json.loads(Path("/var/lib/auditagent/enrollment.json").read_text())
    assert enrollment["server"] == collector.url and enrollment["unit"] == install["unit"]
    assert oct(Path("/var/lib/auditagent/enrollment.json").stat().st_mode & 0o777) == "0o600"
    devices = json.loads(collector.cli("device", "list", "--unit", install["unit"], "--json").stdout)
    assert [d["id"] for d in devices] == [enrollment["device_id"]]


def exec_start(unit: Path) -> list[str]:
    line = next(ln for ln in unit.read_text().splitlines() if ln.startswith("ExecStart="))
    return shlex.split(line.split("=", 1)[1])


def test_the_service_command_sends_a_report(install, collector):
    device = json.loads(Path("/var/lib/auditagent/enrollment.json").read_text())["device_id"]
    before = collector.count("reports", device_id=device)
    proc = sh(*exec_start(UNITS[0]), check=False, timeout=180)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # SuccessExitStatus=1 in the unit
    assert collector.count("reports", device_id=device) == before + 1, proc.stdout + proc.stderr
    status = sh("auditagent", "status").stdout
    assert device in status


def test_unit_files_verify(install):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed (apt install systemd)")
    # Works offline: systemd need not be PID 1. --man=no: the Documentation= files are
    # not looked up as man pages.
    proc = sh("systemd-analyze", "verify", "--man=no", *map(str, UNITS), check=False)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    sec = sh("systemd-analyze", "security", "--offline=true", "--no-pager", str(UNITS[0]), check=False)
    m = re.search(r"Overall exposure level for auditagent\.service: ([\d.]+)", sec.stdout)
    assert m and float(m.group(1)) <= 5.0, sec.stdout[-2000:] + sec.stderr
    service = UNITS[0].read_text()
    for directive in ("ProtectSystem=strict", "ReadWritePaths=/var/lib/auditagent", "ProtectHome=read-only",
                      "PrivateTmp=yes", "NoNewPrivileges=yes", "StateDirectoryMode=0700"):
        assert re.search(rf"^{re.escape(directive)}$", service, re.MULTILINE), directive
    timer = UNITS[1].read_text()
    for directive in ("OnCalendar=hourly", "Persistent=true", "OnBootSec=", "RandomizedDelaySec="):
        assert re.search(rf"^{re.escape(directive)}", timer, re.MULTILINE), directive


def test_remove_keeps_identity_then_purge_leaves_nothing(install):
    dpkg("--remove", "auditagent")
    assert not Path("/opt/auditagent").exists() and not Path("/usr/bin/auditagent").exists()
    assert Path("/var/lib/auditagent/enrollment.json").exists()  # reinstalling keeps the device
    assert Path("/etc/auditagent/agent.yaml").exists()  # conffile
    dpkg("--purge", "auditagent")
    left = [p for p in LEFTOVERS if os.path.lexists(p)]
    assert not left, left
    assert not installed()


# ------------------------------------------------------------------ the RPM, from the same tree


def test_rpm_from_the_same_tree(deb: Path, tmp_path: Path):
    if shutil.which("rpmbuild") is None:
        pytest.skip("rpmbuild not installed (apt install rpm)")
    proc = sh("bash", str(REPO / "packaging" / "linux" / "build-rpm.sh"), str(deb), str(tmp_path), timeout=300)
    rpm = Path(proc.stdout.strip().splitlines()[-1])
    assert rpm.is_file() and rpm.parent == tmp_path
    q = lambda *a: sh("rpm", "-qp", *a, str(rpm)).stdout
    assert q("--qf", "%{NAME} %{VERSION}\n").split() == ["auditagent", pyproject_version()]
    files = set(q("-l").split("\n"))
    for path in ("/opt/auditagent/bin/auditagent", "/usr/bin/auditagent", "/etc/auditagent/agent.yaml",
                 "/usr/lib/systemd/system/auditagent.service", "/usr/lib/systemd/system/auditagent.timer",
                 "/var/lib/auditagent", "/usr/share/applications/auditagent-check.desktop"):
        assert path in files, path
    assert q("--configfiles").split() == ["/etc/auditagent/agent.yaml"]
    assert re.search(r"^/usr/bin/python3\.\d+$", q("--requires"), re.MULTILINE)
    dump = q("--dump")
    assert re.search(r"^/var/lib/auditagent \d+ \d+ \d+ 040700 root root", dump, re.MULTILINE), dump[-500:]
    scripts = q("--scripts")
    assert "enroll-pending" in scripts and "systemctl enable --now auditagent.timer" in scripts
