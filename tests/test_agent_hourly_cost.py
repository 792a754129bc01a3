"""The agent's hourly run stays cheap: the package-manager query runs again only when
its inputs changed (apt lists, dpkg status, sources; through the Host seam), and a
command imports only its own command module."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from auditagent import package_inputs
from auditagent.host import ReplayHost
from auditagent.probes import Cache, ProbeContext
from auditagent.probes.patches.linux import probe as linux

REPO = Path(__file__).resolve().parents[1]
APT_SIM = ["apt-get", "-s", "-o", "Debug::NoLocking=1", "dist-upgrade"]
APT_OUT = ("Inst openssl [3.0.2-0ubuntu1.8] (3.0.2-0ubuntu1.10 Ubuntu:22.04/jammy-updates, "
           "Ubuntu:22.04/jammy-security [amd64])\n")


def apt_tree(root: Path) -> Path:
    lists = root / "var/lib/apt/lists"
    (lists / "partial").mkdir(parents=True)
    (lists / "lock").write_text("")
    (lists / "deb.debian.org_debian_dists_bookworm_InRelease").write_text("Origin: Debian\n")
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("Package: openssl\nStatus: install ok installed\n")
    return root


def apt_host(root: Path) -> ReplayHost:
    host = ReplayHost(root=root).add_command(APT_SIM, APT_OUT)
    host.add_file("/usr/bin/apt-get", "")
    return host


def queries(host: ReplayHost) -> int:
    return sum(1 for c in host.calls if c[:1] == ("apt-get",))


def bump(path: Path, seconds: float) -> None:
    st = path.stat()
    os.utime(path, (st.st_atime + seconds, st.st_mtime + seconds))


def test_apt_query_reruns_only_when_its_inputs_change(tmp_path):
    root = apt_tree(tmp_path / "root")
    cache = Cache(tmp_path / "cache")
    host = apt_host(root)
    host.which = lambda name: "/usr/bin/apt-get" if name == "apt-get" else None  # type: ignore[method-assign]
    first = linux(ProbeContext(host, cache=cache))
    assert first["pending"] == 1 and queries(host) == 1
    for _ in range(3):  # hours pass, nothing changed: the answer is reused
        assert linux(ProbeContext(host, cache=cache))["pending"] == 1
    assert queries(host) == 1
    bump(root / "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease", 3600)  # `apt update`
    linux(ProbeContext(host, cache=cache))
    assert queries(host) == 2
    bump(root / "var/lib/dpkg/status", 7200)  # a package installed
    linux(ProbeContext(host, cache=cache))
    assert queries(host) == 3
    (root / "var/lib/apt/lists/security.debian.org_dists_bookworm-security_InRelease").write_text("x")  # new source
    linux(ProbeContext(host, cache=cache))
    linux(ProbeContext(host, cache=cache))
    assert queries(host) == 4
    partial = root / "var/lib/apt/lists/partial"  # `apt update` that found every list unchanged ("Hit")
    (partial / "deb.debian.org_debian_dists_bookworm_InRelease").write_text("x")
    (partial / "deb.debian.org_debian_dists_bookworm_InRelease").unlink()
    linux(ProbeContext(host, cache=cache))
    assert queries(host) == 4
    (root / "etc/apt").mkdir(parents=True)
    (root / "etc/apt/apt.conf").write_text('APT::Default-Release "bookworm-backports";\n')  # candidates change
    linux(ProbeContext(host, cache=cache))
    assert queries(host) == 5


def test_dpkg_log_is_read_again_only_when_it_or_the_zone_changes(tmp_path, monkeypatch):
    """last_update comes from dpkg.log (hundreds of KB on a laptop): parsed again only when a
    log, dpkg's status or the machine's zone changed."""
    import auditagent.probes.patches.linux as apt_probe

    root = apt_tree(tmp_path / "root")
    log = root / "var/log/dpkg.log"
    log.parent.mkdir(parents=True)
    log.write_text("2024-04-30 09:00:05 status installed openssl:amd64 3.0.11-1~deb12u2\n")
    (root / "etc").mkdir()
    (root / "etc/timezone").write_text("Europe/Stockholm\n")
    parsed = []
    real = apt_probe.parse_dpkg_log_last
    monkeypatch.setattr(apt_probe, "parse_dpkg_log_last", lambda text: parsed.append(1) or real(text))
    cache = Cache(tmp_path / "cache")
    host = apt_host(root)
    host.which = lambda name: "/usr/bin/apt-get" if name == "apt-get" else None  # type: ignore[method-assign]

    def last_update() -> str:
        return linux(ProbeContext(host, cache=cache))["last_update"]

    assert last_update() == "2024-04-30T07:00:05+00:00" and len(parsed) == 1  # CEST
    assert last_update() == "2024-04-30T07:00:05+00:00" and len(parsed) == 1  # unchanged: kept
    with log.open("a") as fh:
        fh.write("2024-05-02 10:00:00 upgrade curl:amd64 7.88.1-10 7.88.1-10+deb12u5\n")
    bump(log, 60)
    assert last_update() == "2024-05-02T08:00:00+00:00" and len(parsed) == 2
    (root / "etc/timezone").write_text("Europe/London\n")  # the zone the log is read in
    assert last_update() == "2024-05-02T09:00:00+00:00" and len(parsed) == 3
    assert last_update() == "2024-05-02T09:00:00+00:00" and len(parsed) == 3


def test_fingerprint_none_without_inputs_falls_back_to_ttl(tmp_path):
    assert package_inputs.fingerprint(ReplayHost(root=tmp_path), "apt") is None
    cache = Cache(tmp_path / "cache")
    calls = []
    for _ in range(2):
        cache.get_or_compute("k", 3600, lambda: calls.append(1) or len(calls), inputs=None)
    assert calls == [1]  # within the TTL, reused
    cache.get_or_compute("k", 3600, lambda: calls.append(1) or len(calls), inputs="a")
    cache.get_or_compute("k", 3600, lambda: calls.append(1) or len(calls), inputs="a")
    cache.get_or_compute("k", 3600, lambda: calls.append(1) or len(calls), inputs="b")
    assert len(calls) == 3  # the digest changed twice (None → a → b), reused in between


def loaded_modules(*args: str) -> set[str]:
    code = ("import sys\nfrom auditagent.cli import build_parser\n"
            f"build_parser({list(args)!r})\nprint('\\n'.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    return set(out.split())


def test_a_command_loads_only_its_own_module():
    check = loaded_modules("check", "--json")
    assert "auditagent.commands.check" in check
    assert not {"auditagent.commands.delivery", "auditagent.commands.policy_cmd"} & check
    run = loaded_modules("run")
    assert "auditagent.commands.delivery" in run and "auditagent.commands.policy_cmd" not in run
    everything = loaded_modules("--help")
    assert {"auditagent.commands.check", "auditagent.commands.delivery", "auditagent.commands.policy_cmd"} <= everything


def imported_by(*modules: str) -> set[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    return set(out.split())


def test_the_hourly_run_loads_neither_the_test_host_nor_yaml():
    # What `auditagent run` imports: the replaying Host is for tests and --replay-host, YAML
    # only for a changed agent.yaml or policy; each costs CPU every hour on every laptop.
    run = imported_by("auditagent.commands.delivery", "auditagent.audit", "auditagent.delivery", "auditagent.send",
                      "auditagent.policy_cache", "auditagent.access_cert", "auditagent.probes.patches.linux")
    assert "auditagent.host" in run
    assert not {"auditagent.host_replay", "yaml"} & run
    from auditagent.host import ReplayHost, load_replay_host  # still offered by name
    from auditagent import host_replay
    assert (ReplayHost, load_replay_host) == (host_replay.ReplayHost, host_replay.load_replay_host)


def test_every_agent_dataclass_has_its_own_docstring():
    # Without one, Python 3.11's dataclass() builds a signature with inspect for the docstring of
    # every class at import: measurable CPU on each hourly run for text nobody reads.
    import dataclasses
    import importlib
    import pkgutil

    import auditagent

    missing = []
    for info in pkgutil.walk_packages(auditagent.__path__, "auditagent."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == info.name:
                if "__doc__" not in value.__dict__ or value.__doc__ is None or value.__doc__.startswith(
                        value.__name__ + "("):
                    missing.append(f"{info.name}.{value.__name__}")
    assert missing == []


def _policy_check(check_id: str, kind: str, parameters: str | None) -> str:
    text = f"  - id: {check_id}\n    kind: {kind}\n    severity: required\n"
    text += "".join(f"    {k}: {{sv: a, da: b, en: c}}\n" for k in ("title", "rationale"))
    text += f"    parameters: {parameters}\n" if parameters else ""
    return text + "    remediation: {any: {sv: [a], da: [b], en: [c]}}\n"


GOLDEN_POLICY = ('id: golden\nversion: "1"\ntitle: {sv: a, da: b, en: c}\ndescription: {sv: a, da: b, en: c}\n'
                 "checks:\n" + "".join(_policy_check(*c) for c in (
                     ("disk", "disk_encryption", "{system: true}"),
                     ("updates", "os_patches", "{max_days_since_update: 14}"),
                     ("wall", "firewall", None),
                     ("lock", "screen_lock", "{max_idle_seconds: 300}"))))
# sha256 of the signed report's bytes for the facts of the captured machine below, as main
# built them before the hourly run's import and caching changes (868bbed): cheaper imports
# and caches must not change one byte of what is signed and sent.
GOLDEN_REPORT_SHA256 = "699b35bafe86e3575819030b6e659419f3c512d542c904424880cd2f0fdc13ed"


def test_same_facts_same_signed_report_bytes(tmp_path, monkeypatch):
    import socket

    import auditagent
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from auditagent import report
    from auditagent.audit import run_check
    from auditagent.delivery import build_report
    from auditagent.enrollment import Enrollment
    from auditagent.host import load_replay_host
    from auditagent.policy import load_policy

    monkeypatch.setattr(socket, "gethostname", lambda: "laptop-0042")
    monkeypatch.setattr(auditagent, "__version__", "0.0.0-golden")
    monkeypatch.setattr(report, "new_report_id", lambda: "3f0c1a52-9d7e-4b8e-a1c4-6f2d9e8b7a10")
    monkeypatch.setattr(report, "now_iso", lambda: "2026-11-01T12:00:05Z")
    (tmp_path / "golden.yaml").write_text(GOLDEN_POLICY)
    policy = load_policy(tmp_path / "golden.yaml")
    host = load_replay_host(REPO / "tests/fixtures/hosts/linux-e2e/host.yaml")
    facts, evaluation = run_check(policy, host, None)
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    enrollment = Enrollment(device_id="5b1f6f4e-2d1c-4c8e-9a3b-7e6d5c4b3a21", server="https://collector.example",
                            keyid="-", enrolled_at="2026-10-01T08:00:00Z", platform="linux")
    built = build_report(policy=policy, facts=facts, evaluation=evaluation, enrollment=enrollment, private_key=key,
                         sequence=7, spool_note={"pending": 0}, integrity=None)
    assert hashlib.sha256(built.data).hexdigest() == GOLDEN_REPORT_SHA256


def _leave_in_child(body: str) -> subprocess.CompletedProcess:
    code = "import atexit, sys, threading, time\nfrom auditagent.cli import leave\n" + body
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_leave_skips_teardown_but_not_what_it_would_finish():
    # buffered output and exit handlers are finished; the exit code is kept
    r = _leave_in_child("atexit.register(lambda: print('handler ran'))\nprint('x' * 100000)\n"
                        "sys.stderr.write('to stderr')\nleave(3)\n")
    assert r.returncode == 3
    assert r.stdout == "x" * 100000 + "\nhandler ran\n" and r.stderr == "to stderr"
    # another thread still working: the ordinary exit waits for it, as before
    r = _leave_in_child("threading.Thread(target=lambda: (time.sleep(0.5), print('thread done'))).start()\n"
                        "leave(1)\n")
    assert (r.returncode, r.stdout) == (1, "thread done\n")
    # a Python without CPython's private atexit._run_exitfuncs: the ordinary exit, handlers run once
    r = _leave_in_child("del atexit._run_exitfuncs\natexit.register(lambda: print('handler ran'))\n"
                        "print('x' * 100000)\nleave(4)\n")
    assert (r.returncode, r.stdout) == (4, "x" * 100000 + "\nhandler ran\n")


def test_the_agent_command_ends_through_leave_with_its_output_whole(tmp_path):
    # `python -m auditagent.cli` (and the installed `auditagent`) end through leave(): a long
    # JSON answer arrives whole, with the command's exit code.
    manifest = REPO / "tests/fixtures/hosts/linux-e2e/host.yaml"
    r = subprocess.run([sys.executable, "-m", "auditagent.cli", "check", "--json", "--replay-host", str(manifest)],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO), "AUDITAGENT_HOME": str(tmp_path)})
    import json

    assert r.returncode in (0, 1), r.stderr
    assert json.loads(r.stdout)["verdict"] in ("ready", "not_ready")
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [\n")
    r = subprocess.run([sys.executable, "-m", "auditagent.cli", "policy", "validate", str(bad)], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 1 and str(bad) in (r.stdout + r.stderr)
