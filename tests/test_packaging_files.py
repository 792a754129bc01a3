"""Every packaging file that cannot be installed on this Linux machine is still checked here:
well-formed, the keys that matter present, and its paths the agent's own defaults
(auditagent/paths.py) — so a path changed in one place fails here, not on a laptop.

The Windows MSI is built here with msitools' wixl from a stand-in payload (the real
embeddable-Python payload is made by build.ps1 on Windows CI) and its tables inspected
with msiinfo.
"""
from __future__ import annotations

import plistlib
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path, PureWindowsPath

import pytest
from conftest import REPO

PKG = REPO / "packaging"
sys.path.insert(0, str(PKG / "common"))
import auditagent_setup

from auditagent.config import parse_config
from auditagent.paths import default_paths

TASK_NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
WIX_NS = {"w": "http://schemas.microsoft.com/wix/2006/wi"}


# ------------------------------------------------------------------ shared pieces


def test_sample_config_parses_and_every_commented_key_is_valid(tmp_path):
    sample = (PKG / "common" / "agent.yaml").read_text(encoding="utf-8")
    assert parse_config(sample, "agent.yaml").server is None
    from auditagent.config import CONFIG_FIELDS

    keys = re.findall(r"^# ([a-z0-9_]+): (.*)$", sample, re.MULTILINE)
    assert {k for k, _ in keys} == set(CONFIG_FIELDS), "the sample documents every agent.yaml key"
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    for key, value in keys:
        if key == "ca_bundle":
            value = str(tmp_path / "ca.pem")
        cfg = parse_config(f"{key}: {value}\n", str(tmp_path / "agent.yaml"))
        assert cfg.lines.get(key) == 1, key


def test_setup_helper_sets_server_in_the_sample():
    sample = (PKG / "common" / "agent.yaml").read_text(encoding="utf-8")
    out = auditagent_setup.set_server(sample, "https://audit.example.se")
    assert parse_config(out, "agent.yaml").server == "https://audit.example.se"
    again = auditagent_setup.set_server(out, "https://other.example.se")
    assert again.count("server:") == 1 and parse_config(again, "a.yaml").server == "https://other.example.se"
    assert auditagent_setup.set_server("", "https://x.example") == "server: https://x.example\n"


def test_setup_helper_configure_stash_and_pending(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("AUDITAGENT_HOME", str(home))
    monkeypatch.delenv("AUDITAGENT_ENROLL_TOKEN", raising=False)
    assert auditagent_setup.main(["configure", "--sample", str(PKG / "common" / "agent.yaml"),
                                  "--server", "https://audit.example.se/"]) == 0
    assert parse_config((home / "agent.yaml").read_text(), "a").server == "https://audit.example.se"
    assert auditagent_setup.main(["configure", "--server", "ftp://nope"]) == 2
    token = tmp_path / "t"
    token.write_text("aaenr_secret\n")
    assert auditagent_setup.main(["stash-token", "--token-file", str(token), "--remove-source"]) == 0
    stashed = home / "enroll-token"
    assert stashed.read_text() == "aaenr_secret\n" and oct(stashed.stat().st_mode & 0o777) == "0o600"
    assert oct(home.stat().st_mode & 0o777) == "0o700" and not token.exists()
    # selfcheck page: in the person's own folder, never the machine state
    target = auditagent_setup.selfcheck_target({"XDG_CACHE_HOME": str(tmp_path / "c")})
    assert target == tmp_path / "c" / "auditagent" / "selfcheck.html"


# ------------------------------------------------------------------ Linux


def _unit(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def test_linux_units_use_the_agents_default_paths():
    service = _unit(PKG / "linux" / "auditagent.service")
    state = "/var/lib/auditagent"
    assert service["ReadWritePaths"] == [state] and service["StateDirectory"] == ["auditagent"]
    assert {f"|{state}/enrollment.json", f"|{state}/{auditagent_setup.TOKEN_FILE}"} == set(service["ConditionPathExists"])
    argv = shlex.split(service["ExecStart"][0])
    assert argv[0].startswith("/opt/auditagent/bin/python") and argv[-1] == "scheduled"
    assert auditagent_setup.build_parser().parse_args(argv[3:]).cmd == "scheduled"
    desktop = (PKG / "linux" / "auditagent-check.desktop").read_text()
    assert re.search(r"^Name\[sv\]=Kontrollera min dator$", desktop, re.MULTILINE)
    assert re.search(r"^Name\[da\]=", desktop, re.MULTILINE) and "selfcheck" in desktop


def test_linux_root_default_paths_match_the_package(monkeypatch):
    import auditagent.paths as p

    monkeypatch.setattr(p.os, "geteuid", lambda: 0, raising=False)
    paths = p.default_paths(env={}, platform="linux")
    assert str(paths.config) == "/etc/auditagent/agent.yaml" and str(paths.state) == "/var/lib/auditagent"
    build = (PKG / "linux" / "build-deb.sh").read_text()
    assert '"$ROOT/etc/auditagent/agent.yaml"' in build and '"$ROOT/var/lib/auditagent"' in build
    assert "/etc/auditagent/agent.yaml" in (PKG / "linux" / "debian" / "postrm").read_text()


def test_debian_maintainer_scripts_are_valid_sh():
    for name in ("postinst", "prerm", "postrm"):
        script = PKG / "linux" / "debian" / name
        assert script.stat().st_mode & 0o111, f"{name} must be executable"
        proc = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
    for script in [PKG / "linux" / "build-deb.sh", PKG / "windows" / "build-msi.sh", PKG / "macos" / "build-pkg.sh",
                   PKG / "macos" / "test-pkg.sh"]:
        proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"{script}: {proc.stderr}"
    for script in [PKG / "macos" / "scripts" / "postinstall", PKG / "macos" / "scripts" / "preinstall",
                   PKG / "macos" / "jamf-enroll.sh", PKG / "macos" / "uninstall.sh"]:
        assert script.stat().st_mode & 0o111, f"{script} must be executable"
        proc = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"{script}: {proc.stderr}"


# ------------------------------------------------------------------ macOS


def test_launchdaemon_plist():
    path = PKG / "macos" / "org.auditagent.agent.plist"
    d = plistlib.loads(path.read_bytes())
    assert d["Label"] == "org.auditagent.agent" == path.stem
    assert d["StartInterval"] == 3600 and d["RunAtLoad"] is True
    assert d["Umask"] == 0o077
    argv = d["ProgramArguments"]
    assert argv[0] == "/usr/local/auditagent/python/bin/python3"
    assert argv[3] == "/usr/local/auditagent/libexec/auditagent_setup.py"
    assert auditagent_setup.build_parser().parse_args(argv[4:]).cmd == "scheduled"
    build = (PKG / "macos" / "build-pkg.sh").read_text()
    assert "PREFIX=/usr/local/auditagent" in build and 'libexec/"' in build


def test_macos_paths_match_the_agents_defaults():
    paths = default_paths(env={}, platform="macos")
    data = str(paths.config.parent)
    assert str(paths.config) == f"{data}/agent.yaml" and str(paths.state) == f"{data}/state"
    postinstall = (PKG / "macos" / "scripts" / "postinstall").read_text()
    assert f'DATA="{data}"' in postinstall
    assert 'MANAGED="/Library/Managed Preferences/org.auditagent.agent.plist"' in postinstall
    assert "pref Server" in postinstall and "pref EnrollToken" in postinstall
    assert f'"{data}"' in (PKG / "macos" / "uninstall.sh").read_text()


def test_mobileconfig_structure():
    profile = plistlib.loads((PKG / "macos" / "org.auditagent.agent.mobileconfig").read_bytes())
    assert profile["PayloadType"] == "Configuration" and profile["PayloadScope"] == "System"
    for key in ("PayloadIdentifier", "PayloadUUID", "PayloadVersion", "PayloadDisplayName", "PayloadContent"):
        assert key in profile, key
    (payload,) = profile["PayloadContent"]
    assert payload["PayloadType"] == "org.auditagent.agent"  # the managed preferences domain
    for key in ("PayloadIdentifier", "PayloadUUID", "PayloadVersion", "Server", "EnrollToken"):
        assert key in payload, key
    uuids = [profile["PayloadUUID"], payload["PayloadUUID"]]
    assert all(re.fullmatch(r"[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}", u) for u in uuids) and len(set(uuids)) == 2
    assert parse_config(f"server: {payload['Server']}\n", "a").server == payload["Server"]


# ------------------------------------------------------------------ Windows


def _task() -> ET.Element:
    return ET.parse(PKG / "windows" / "auditagent-task.xml").getroot()


def test_scheduled_task_xml():
    task = _task()
    assert task.tag == "{{{}}}Task".format(TASK_NS["t"])
    trig = task.find("t:Triggers", TASK_NS)
    time_trigger = trig.find("t:TimeTrigger", TASK_NS)
    assert time_trigger.findtext("t:Repetition/t:Interval", namespaces=TASK_NS) == "PT1H"
    assert time_trigger.findtext("t:RandomDelay", namespaces=TASK_NS)
    assert trig.find("t:LogonTrigger", TASK_NS) is not None and trig.find("t:BootTrigger", TASK_NS) is not None
    sub = ET.fromstring(trig.findtext("t:EventTrigger/t:Subscription", namespaces=TASK_NS))
    select = sub.find("Query/Select")
    assert select.get("Path") == "Microsoft-Windows-NetworkProfile/Operational"
    assert "EventID=10000" in select.text and "Microsoft-Windows-NetworkProfile" in select.text
    assert task.findtext("t:Principals/t:Principal/t:UserId", namespaces=TASK_NS) == "S-1-5-18"  # SYSTEM
    settings = task.find("t:Settings", TASK_NS)
    assert settings.findtext("t:StartWhenAvailable", namespaces=TASK_NS) == "true"
    assert settings.findtext("t:MultipleInstancesPolicy", namespaces=TASK_NS) == "IgnoreNew"
    assert settings.findtext("t:DisallowStartIfOnBatteries", namespaces=TASK_NS) == "false"


def test_scheduled_task_action_resolves_to_the_installed_helper():
    task = _task()
    xml = auditagent_setup.task_xml((PKG / "windows" / "auditagent-task.xml").read_text(),
                                    r"C:\Program Files\auditagent")
    assert "@INSTALLDIR@" not in xml
    resolved = ET.fromstring(xml.encode())
    cmd = resolved.findtext("t:Actions/t:Exec/t:Command", namespaces=TASK_NS)
    assert cmd == r'"C:\Program Files\auditagent\python\python.exe"'
    args = shlex.split(resolved.findtext("t:Actions/t:Exec/t:Arguments", namespaces=TASK_NS).replace("\\", "/"))
    assert args[:2] == ["-I", "-B"] and args[2] == "C:/Program Files/auditagent/auditagent_setup.py"
    assert auditagent_setup.build_parser().parse_args(args[3:]).cmd == "scheduled"
    assert task.find("t:Actions", TASK_NS).get("Context") == "System"


def test_wix_source_is_consistent_with_the_agent_and_the_task():
    wxs = ET.parse(PKG / "windows" / "auditagent.wxs").getroot()
    product = wxs.find("w:Product", WIX_NS)
    props = {p.get("Id"): p for p in product.iter("{{{}}}Property".format(WIX_NS["w"]))}
    assert props["TOKEN"].get("Hidden") == "yes" and props["TOKEN"].get("Secure") == "yes"
    assert props["SERVER"].get("Secure") == "yes" and props["MsiHiddenProperties"].get("Value") == "TOKEN"
    dirs = {d.get("Id"): d for d in product.iter("{{{}}}Directory".format(WIX_NS["w"]))}
    # %ProgramData%\auditagent is where the agent looks (auditagent/paths.py).
    paths = default_paths(env={"ProgramData": r"C:\ProgramData"}, platform="windows")
    assert PureWindowsPath(paths.config) == PureWindowsPath(r"C:\ProgramData\auditagent\agent.yaml")
    assert dirs["DATADIR"].get("Name") == PureWindowsPath(paths.config).parent.name
    assert list(dirs["CommonAppDataFolder"]) == [dirs["DATADIR"]]
    assert dirs["INSTALLDIR"].get("Name") == "auditagent" and dirs["PYTHONDIR"].get("Name") == "python"
    files = {f.get("Id"): f.get("Name") for f in product.iter("{{{}}}File".format(WIX_NS["w"]))}
    assert files["PythonExe"] == "python.exe" and files["TaskXml"] == "auditagent-task.xml"
    assert files["SetupPy"] == "auditagent_setup.py"
    cas = {c.get("Id"): c for c in product.iter("{{{}}}CustomAction".format(WIX_NS["w"]))}
    parser = auditagent_setup.build_parser()
    for ca in cas.values():
        assert ca.get("FileKey") == "PythonExe" and ca.get("Execute") == "deferred" and ca.get("Impersonate") == "no"
        argv = shlex.split(ca.get("ExeCommand"))
        assert argv[:3] == ["-I", "-B", "[INSTALLDIR]auditagent_setup.py"]
        parser.parse_args(argv[3:])  # a subcommand the helper has, with valid options
    assert cas["StashToken"].get("HideTarget") == "yes" and "[TOKEN]" in cas["StashToken"].get("ExeCommand")
    assert all("[TOKEN]" not in c.get("ExeCommand") for k, c in cas.items() if k != "StashToken")
    names = {s.get("Name") for s in product.iter("{{{}}}Shortcut".format(WIX_NS["w"]))}
    assert names == {"Check my computer", "Kontrollera min dator", "Tjek min computer"}


@pytest.fixture(scope="module")
def msi(tmp_path_factory) -> Path:
    if not (shutil.which("wixl") and shutil.which("msiinfo") and shutil.which("msibuild")):
        pytest.skip("wixl/msitools not installed (apt install wixl msitools)")
    payload = tmp_path_factory.mktemp("winpayload") / "python"
    site = payload / "Lib" / "site-packages"
    site.mkdir(parents=True)
    # A stand-in for build.ps1's payload: same layout, placeholder executables.
    for exe in ("python.exe", "pythonw.exe"):
        (payload / exe).write_bytes(b"MZ stand-in")
    (payload / "python312._pth").write_text("python312.zip\n.\nLib\\site-packages\nimport site\n")
    (payload / "python312.zip").write_bytes(b"PK")
    shutil.copytree(REPO / "auditagent", site / "auditagent", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("msi")
    proc = subprocess.run(["bash", str(PKG / "windows" / "build-msi.sh"), str(payload), str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    msi = Path(proc.stdout.strip().splitlines()[-1])
    assert msi.is_file() and msi.parent == out
    return msi


def msi_table(msi: Path, table: str) -> list[dict[str, str]]:
    text = subprocess.run(["msiinfo", "export", str(msi), table], capture_output=True, check=True).stdout
    lines = text.decode("cp1252").replace("\r\n", "\n").splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[3:]]


def test_msi_built_with_wixl_has_the_install_logic(msi: Path):
    props = {r["Property"]: r["Value"] for r in msi_table(msi, "Property")}
    assert props["MsiHiddenProperties"] == "TOKEN"
    assert {"SERVER", "TOKEN", "SHORTCUTLANG"} <= set(props["SecureCustomProperties"].split(";"))
    assert props["ALLUSERS"] == "1" and props["ProductName"] == "auditagent"
    import tomllib

    assert props["ProductVersion"] == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    cas = {r["Action"]: r for r in msi_table(msi, "CustomAction")}
    for name, row in cas.items():
        t = int(row["Type"])
        assert t & 0x3F == 18 and t & 0x400 and t & 0x800, f"{name}: deferred, as SYSTEM, exe from an installed file"
    assert int(cas["StashToken"]["Type"]) & 0x2000, "StashToken hides its command line from the log"
    seq = {r["Action"]: (int(r["Sequence"]), r["Condition"]) for r in msi_table(msi, "InstallExecuteSequence")}
    init, fin = seq["InstallInitialize"][0], seq["InstallFinalize"][0]
    for name in cas:
        assert init < seq[name][0] < fin, f"{name} must run inside the install script"
    assert seq["InstallFiles"][0] < seq["ConfigureAgent"][0] < seq["StashToken"][0] < seq["RegisterTask"][0]
    assert seq["UnregisterTask"][0] < seq["RemoveFiles"][0] and "REMOVE" in seq["UnregisterTask"][1]
    assert seq["StashToken"][1].startswith("TOKEN")


def test_msi_shortcuts_directories_and_files(msi: Path):
    shortcuts = {r["Name"]: r for r in msi_table(msi, "Shortcut")}
    assert set(shortcuts) == {"Check my computer", "Kontrollera min dator", "Tjek min computer"}
    assert all(r["Directory_"] == "ProgramMenuFolder" and "selfcheck" in r["Arguments"] for r in shortcuts.values())
    comps = {r["Component"]: r for r in msi_table(msi, "Component")}
    assert "1053" in comps["ShortcutSv"]["Condition"] and "1030" in comps["ShortcutDa"]["Condition"]
    assert comps["ShortcutEn"]["Condition"].startswith('SHORTCUTLANG="en" OR')
    dirs = {r["Directory"]: r for r in msi_table(msi, "Directory")}
    assert dirs["DATADIR"]["Directory_Parent"] == "CommonAppDataFolder" and dirs["DATADIR"]["DefaultDir"] == "auditagent"
    files = {r["FileName"].split("|")[-1] for r in msi_table(msi, "File")}
    assert {"python.exe", "pythonw.exe", "auditagent_setup.py", "auditagent-task.xml", "agent.yaml.sample",
            "auditagent.cmd", "cli.py", "paths.py"} <= files
    streams = subprocess.run(["msiinfo", "streams", str(msi)], capture_output=True, text=True, check=False).stdout
    assert "cab1.cab" in streams


# ------------------------------------------------------------------ collector host


def test_collector_unit_and_container_start_the_collector_the_same_way(tmp_path):
    import server.cli

    unit = _unit(PKG / "collector" / "auditagent-collector.service")
    argv = shlex.split(unit["ExecStart"][0])
    assert argv[0] == "/opt/auditagent-collector/bin/auditagent-collector"
    args = server.cli.build_parser().parse_args(argv[1:])
    assert args.host == "127.0.0.1" and int(args.port) == 8080
    assert unit["DynamicUser"] == ["yes"] and unit["StateDirectory"] == ["auditagent-collector"]
    nginx = (PKG / "collector" / "nginx-auditagent.conf").read_text()
    assert re.search(r"^\s*server 127\.0\.0\.1:8080;", nginx, re.MULTILINE)
    if shutil.which("systemd-analyze"):
        # verify needs the ExecStart binary to exist: point it at a stand-in.
        stub = tmp_path / "auditagent-collector"
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
        text = (PKG / "collector" / "auditagent-collector.service").read_text()
        copy = tmp_path / "auditagent-collector.service"
        copy.write_text(text.replace("/opt/auditagent-collector/bin/auditagent-collector", str(stub)))
        proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


CONTAINERFILE_INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
                              "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


def test_containerfile_is_sane():
    import json

    import server.cli

    text = (PKG / "collector" / "Containerfile").read_text()
    logical = re.sub(r"\\\n", " ", text)
    steps = [ln.strip() for ln in logical.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    ops = [s.split(None, 1)[0] for s in steps]
    assert set(ops) <= CONTAINERFILE_INSTRUCTIONS, set(ops) - CONTAINERFILE_INSTRUCTIONS
    assert ops[0] == "FROM" and ops.count("FROM") == 2
    stages = [s.split() for s in steps if s.startswith("FROM")]
    assert stages[0][-2:] == ["AS", "build"] and any("--from=build" in s for s in steps)
    for s in steps:
        if s.startswith("COPY") and "--from" not in s:
            for src in s.split()[1:-1]:
                assert (REPO / src).exists(), f"COPY source {src} not in the repository"
    exposed = [s.split()[1] for s in steps if s.startswith("EXPOSE")]
    entry = json.loads(next(s for s in steps if s.startswith("ENTRYPOINT")).split(None, 1)[1])
    cmd = json.loads(next(s for s in steps if s.startswith("CMD")).split(None, 1)[1])
    assert entry == ["/opt/auditagent-collector/bin/auditagent-collector"]
    assert cmd[0] == "serve" and cmd[cmd.index("--port") + 1] in exposed
    assert any(s.startswith("USER") and s.split()[1] != "root" and s.split()[1] != "0" for s in steps)
    health = json.loads(next(s for s in steps if s.startswith("HEALTHCHECK")).split("CMD", 1)[1])
    assert "/healthz" in health[-1]
    server.cli.build_parser().parse_args(cmd)  # options the collector's serve has


# ------------------------------------------------------------------ CI for the other OSes


def test_packages_workflow_builds_and_tests_every_os():
    import yaml

    wf = yaml.safe_load((REPO / ".github" / "workflows" / "packages.yml").read_text())
    jobs = wf["jobs"]
    runners = {name: job["runs-on"] for name, job in jobs.items()}
    assert "windows-latest" in runners.values() and "macos-latest" in runners.values()
    scripts = " ".join(step.get("run", "") for job in jobs.values() for step in job["steps"])
    for script in ("packaging/linux/build-deb.sh", "packaging/windows/build.ps1", "packaging/windows/build-msi.sh",
                   "packaging/windows/test-msi.ps1", "packaging/macos/build-pkg.sh", "packaging/macos/test-pkg.sh"):
        assert script in scripts, script
        assert (REPO / script).is_file(), script
    assert jobs["msi"]["needs"] == "windows-payload" and jobs["msi-install"]["needs"] == "msi"


def test_every_package_folder_is_in_the_distribution():
    """pyproject.toml lists packages by name (the shipped policies need a package-dir);
    a package folder left out works in an editable install and is missing from every
    built package (the probes' per-concern folders once were)."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(REPO).parts) for top in ("auditagent", "server")
               for p in (REPO / top).rglob("__init__.py")}
    assert folders - listed == set()
