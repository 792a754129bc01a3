"""The agent against a real collector over loopback (SQLite and PostgreSQL): enrol →
run → stored; the agent killed with SIGKILL mid-spool and mid-send, then restarted —
every report delivered exactly once; the collector down, then back — the spool
drains; eviction told in the next report; re-enrolment rotates the key; report --out,
run --dry-run, status, keys show; no secret in any log.

The agent runs as a separate process (``python -m auditagent.cli``) with its state in
a temporary AUDITAGENT_HOME, judging the replayed laptop tests/fixtures/hosts/linux-e2e
so every run gives the same facts.
"""
from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import collector_fixtures
from conftest import REPO

E2E = REPO / "tests" / "fixtures" / "hosts" / "linux-e2e"
HOST = E2E / "host.yaml"
POLICY = E2E / "policy.yaml"


class AgentHome:
    """One agent installation: its AUDITAGENT_HOME, its agent.yaml, every output it printed."""

    def __init__(self, home: Path, config: dict | None = None) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.outputs: list[str] = []
        self.write_config({"policy": str(POLICY), "send_attempts": 2, "send_timeout": 5, **(config or {})})

    def write_config(self, config: dict) -> None:
        import yaml

        (self.home / "agent.yaml").write_text(yaml.safe_dump(config))

    def env(self, extra: dict | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITAGENT_")}
        env.update({"AUDITAGENT_HOME": str(self.home), "PYTHONPATH": str(REPO), "LANG": "C.UTF-8",
                    "HOME": str(self.home.parent / "fake-home"), "XDG_STATE_HOME": str(self.home.parent / "xdg")})
        env.update(extra or {})
        return env

    def popen(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "auditagent.cli", *args, "--replay-host", str(HOST)],
                                env=self.env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def __call__(self, *args: str, env: dict | None = None, expect: int | tuple | None = 0,
                 replay: bool = True) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "auditagent.cli", *args] + (["--replay-host", str(HOST)] if replay else [])
        proc = subprocess.run(argv, env=self.env(env), capture_output=True, text=True, timeout=180)
        self.outputs.append(proc.stdout + proc.stderr)
        if expect is not None:
            codes = expect if isinstance(expect, tuple) else (expect,)
            assert proc.returncode in codes, (f"{args} exited {proc.returncode}, expected {codes}\n"
                                              f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    @property
    def enrollment(self) -> dict:
        return json.loads((self.home / "enrollment.json").read_text())

    @property
    def device_id(self) -> str:
        return self.enrollment["device_id"]

    def spool_ids(self) -> list[str]:
        return sorted(p.name[13:-5] for p in (self.home / "spool").glob("*.json") if p.name[0].isdigit())

    def enroll(self, collector, unit: str | None = None, *extra: str) -> subprocess.CompletedProcess:
        token = collector.token(unit or unique_unit(), uses=5)
        proc = self("enroll", "--server", collector.url, "--token", token, *extra)
        self.token = token
        return proc


def unique_unit() -> str:
    return f"Testförvaltningen/E2E/{uuid.uuid4().hex[:8]}"


def stored(collector, device_id: str) -> list[dict]:
    """The reports the collector stored for the device, oldest first (from its database)."""
    from sqlalchemy import select

    from server.db import reports
    from server.report_read import SIGNED_COLUMNS, envelope_of

    with collector.engine.connect() as conn:
        rows = conn.execute(select(reports.c.report_id, reports.c.sequence, *SIGNED_COLUMNS)
                            .where(reports.c.device_id == device_id).order_by(reports.c.sequence)).all()
        return [{"report_id": r.report_id, "sequence": r.sequence, "envelope": envelope_of(conn, r)} for r in rows]


def predicate_of(envelope_text: str) -> dict:
    envelope = json.loads(envelope_text)
    return json.loads(base64.b64decode(envelope["payload"]))["predicate"]


def assert_exactly_once(collector, agent: AgentHome) -> list[dict]:
    rows = stored(collector, agent.device_id)
    ids = [r["report_id"] for r in rows]
    seqs = [r["sequence"] for r in rows]
    assert len(ids) == len(set(ids)), "a report was stored twice"
    assert seqs == sorted(set(seqs)), "sequences are not strictly increasing"
    assert agent.spool_ids() == [], "reports left in the spool"
    assert not list((agent.home / "spool" / "rejected").glob("*.json")), "reports were refused"
    return rows


# ------------------------------------------------------------------ enrol → run → stored


def test_enrol_run_stored_status_keys(collector, tmp_path):
    agent = AgentHome(tmp_path / "home")
    out = agent.enroll(collector).stdout
    assert "enrolled: device" in out
    key = agent.home / "keys" / "device.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert oct((agent.home / "keys").stat().st_mode & 0o777) == "0o700"
    assert oct((agent.home / "enrollment.json").stat().st_mode & 0o777) == "0o600"

    run = agent("run")
    assert "report 1 (ready) spooled; sent 1; 0 waiting" in run.stdout
    rows = stored(collector, agent.device_id)
    assert [r["sequence"] for r in rows] == [1]
    pred = predicate_of(rows[0]["envelope"])
    assert pred["policy"]["id"] == "e2e-os" and pred["verdict"] == "ready"
    assert set(pred["facts"]) == {"collected_at", "platform", "os"}  # only what the policy reads
    assert pred["device"]["serial"] == "PF3E2E42" and pred["device"]["os"] == "Ubuntu 22.04.4 LTS"
    assert pred["spool"]["evicted"] == 0

    agent("run")
    assert [r["sequence"] for r in stored(collector, agent.device_id)] == [1, 2]

    status = agent("status").stdout
    assert f"device {agent.device_id}" in status and "enrolled:     yes" in status
    assert "last sent:    report 2" in status and "0 report(s) waiting" in status
    s = json.loads(agent("status", "--json").stdout)
    assert s["spool"]["depth"] == 0 and s["last_sent"]["sequence"] == 2 and s["enrollment"]["unit"]

    pem = agent("keys", "show").stdout
    assert pem.startswith("-----BEGIN PUBLIC KEY-----") and "PRIVATE" not in pem
    from auditagent import report as wire

    kid = wire.keyid(wire.load_public_key_pem(pem))
    assert kid == agent.enrollment["keyid"] == agent("keys", "show", "--keyid").stdout.strip()
    from sqlalchemy import text

    with collector.engine.connect() as conn:
        assert conn.execute(text("SELECT current_keyid FROM devices WHERE id = :d"),
                            {"d": agent.device_id}).scalar_one() == kid

    # Nothing secret in anything the agent printed or logged.
    everything = "\n".join(agent.outputs)
    assert agent.token not in everything
    assert "PRIVATE KEY" not in everything
    private_b64 = "".join(key.read_text().splitlines()[1:-1])
    assert private_b64 not in everything


def test_dry_run_and_report_out_send_nothing(collector, tmp_path):
    agent = AgentHome(tmp_path / "home")
    agent.enroll(collector)
    agent("run")
    dry = agent("run", "--dry-run")
    statement = json.loads(dry.stdout)
    assert statement["predicate"]["sequence"] == 2 and "not spooled or sent" in dry.stderr
    assert statement["predicate"]["facts"]["os"]["id"] == "ubuntu"
    assert agent.spool_ids() == []

    out = tmp_path / "handover" / "report.json"
    agent("report", "--out", str(out))
    envelope = json.loads(out.read_text())
    from auditagent import report as wire

    pub = wire.load_public_key_pem(agent("keys", "show").stdout)
    st = wire.verify_envelope(envelope, pub)
    assert st["predicate"]["sequence"] == 2  # the dry run did not use up a number
    assert st["subject"][0]["name"] == f"device:{agent.device_id}"
    assert [r["sequence"] for r in stored(collector, agent.device_id)] == [1]  # not sent
    assert agent.spool_ids() == []
    agent("run")  # the next report does not reuse the handed-over report's number
    assert [r["sequence"] for r in stored(collector, agent.device_id)] == [1, 3]


# ------------------------------------------------------------------ kill -9


@pytest.mark.parametrize("point", ["spool_write", "spool_write_partial", "after_spool", "before_send", "mid_send"])
def test_sigkill_at_each_point_then_restart_delivers_exactly_once(collector, tmp_path, point):
    agent = AgentHome(tmp_path / "home")
    agent.enroll(collector)
    agent("run")
    crashed = agent("run", env={"AUDITAGENT_TEST_CRASH_AT": point}, expect=None)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    spooled_before_restart = agent.spool_ids()
    agent("run")
    rows = assert_exactly_once(collector, agent)
    ids = {r["report_id"] for r in rows}
    assert set(spooled_before_restart) <= ids  # every report that reached the spool arrived
    expected = {"spool_write": 2, "spool_write_partial": 2, "after_spool": 3, "before_send": 3, "mid_send": 3}
    assert len(rows) == expected[point]
    if point == "mid_send":  # it was stored before the kill; the resend was a duplicate
        assert len(spooled_before_restart) == 1 and spooled_before_restart[0] in ids


def test_random_sigkill_from_outside_then_restart(collector, tmp_path):
    agent = AgentHome(tmp_path / "home")
    agent.enroll(collector)
    rng = random.Random(int(os.environ.get("AUDITAGENT_TEST_SEED", "7")))
    for _ in range(8):
        proc = agent.popen("run")
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    agent("run", expect=(0,))
    rows = assert_exactly_once(collector, agent)
    assert len(rows) >= 1


# ------------------------------------------------------------------ collector down, then back


def test_collector_down_spool_grows_then_drains(collector_db_url, tmp_path, monkeypatch):
    c = collector_fixtures.start_collector(collector_db_url, tmp_path / "c1")
    try:
        agent = AgentHome(tmp_path / "home", {"send_attempts": 2, "send_max_delay": 1})
        agent.enroll(c)
        agent("run")
        port = c.port
        c.stop()
        for n in range(3):
            r = agent("run", expect=1)
            assert f"{n + 1} waiting in the spool" in r.stdout
            assert "collector unavailable after 2 tries" in r.stderr
        assert len(agent.spool_ids()) == 3
        status = json.loads(agent("status", "--json").stdout)
        assert status["spool"]["depth"] == 3 and status["last_error"]["code"] == "connection"
        monkeypatch.setattr(collector_fixtures, "free_port", lambda: port)  # back on the same address
        c.start()
        r = agent("run")
        assert "sent 4; 0 waiting" in r.stdout
        rows = assert_exactly_once(c, agent)
        assert [r["sequence"] for r in rows] == [1, 2, 3, 4, 5][:len(rows)] and len(rows) == 5
    finally:
        c.stop()


def test_spool_bound_evicts_oldest_and_says_so(collector, tmp_path):
    agent = AgentHome(tmp_path / "home", {"spool_max_reports": 2})
    agent.enroll(collector)
    for _ in range(5):
        agent("run", "--no-send", expect=1)  # 5 reports into an outbox of 2: 1, 2, 3 evicted
    assert len(agent.spool_ids()) == 2
    status = json.loads(agent("status", "--json").stdout)
    assert status["spool"]["evicted_untold"] == 3
    agent("run")  # report 6 tells 1-3 (and evicts 4 to make room); 5 and 6 are delivered
    rows = stored(collector, agent.device_id)
    assert [r["sequence"] for r in rows] == [5, 6]
    told = predicate_of(rows[-1]["envelope"])["spool"]
    assert told["evicted"] == 3 and told["evicted_sequences"] == [1, 2, 3]
    assert json.loads(agent("status", "--json").stdout)["spool"]["evicted_untold"] == 1
    agent("run")  # report 7 tells the eviction of 4
    told = predicate_of(stored(collector, agent.device_id)[-1]["envelope"])["spool"]
    assert told["evicted_sequences"] == [4]
    assert json.loads(agent("status", "--json").stdout)["spool"]["evicted_untold"] == 0


# ------------------------------------------------------------------ reports set aside: status and resend


def test_a_report_set_aside_is_shown_and_can_be_resent(collector, tmp_path):
    from auditagent.spool import Spool

    agent = AgentHome(tmp_path / "home")
    agent.enroll(collector)
    agent("run")
    agent("run", "--no-send", expect=1)  # report 2 waits…
    spool = Spool(agent.home / "spool")
    held = spool.entries()[0]
    spool.reject(held, "undeliverable", "the collector failed on this report in 3 runs", 500)  # …and is set aside
    agent("run")  # report 3 is not held back by it
    status = agent("status").stdout
    assert f"set aside:  report 2 ({held.report_id}): 500 undeliverable" in status
    assert "auditagent resend" in status
    js = json.loads(agent("status", "--json").stdout)
    assert [r["report_id"] for r in js["spool"]["set_aside"]] == [held.report_id]
    out = agent("resend").stdout
    assert "resent 1 report(s): delivered 1, refused 0, 0 waiting" in out
    rows = assert_exactly_once(collector, agent)
    assert [r["sequence"] for r in rows] == [1, 2, 3]  # report 2 kept as history behind report 3
    assert "set aside" not in agent("status").stdout


# ------------------------------------------------------------------ re-enrolment


def test_reenrolment_rotates_key_and_resigns_waiting_reports(collector, tmp_path):
    agent = AgentHome(tmp_path / "home")
    agent.enroll(collector)
    device_id, old_kid = agent.device_id, agent.enrollment["keyid"]
    old_key = (agent.home / "keys" / "device.key").read_bytes()
    agent("run")
    agent("run", "--no-send", expect=1)  # waiting, signed with the old key
    agent("enroll", "--server", collector.url, "--token", agent.token)
    assert agent.device_id == device_id and agent.enrollment["keyid"] != old_kid
    assert (agent.home / "keys" / "device.key").read_bytes() != old_key
    agent("run")
    rows = assert_exactly_once(collector, agent)
    assert [r["sequence"] for r in rows] == [1, 2, 3]

    # The old key is no longer accepted.
    from cryptography.hazmat.primitives import serialization

    from auditagent import report as wire

    old = serialization.load_pem_private_key(old_key, None)
    pred = predicate_of(rows[-1]["envelope"])
    pred.update(report_id=str(uuid.uuid4()), sequence=99, generated_at=wire.now_iso())
    envelope = wire.sign_envelope(wire.build_statement(device_id=device_id, public_key=old.public_key(),
                                                       predicate=pred), old)
    with collector.client() as c:
        r = c.post("/v1/reports", content=wire.envelope_bytes(envelope))
    assert r.status_code == 403 and r.json()["error"]["code"] == "key_mismatch"


def test_enrolment_errors_are_clear(collector, tmp_path):
    agent = AgentHome(tmp_path / "home")
    r = agent("enroll", "--server", collector.url, "--token", "aaenr_not-a-real-token", expect=2)
    assert "refused the enrolment (401 invalid_token)" in r.stderr and "aaenr_not-a-real-token" not in r.stderr
    assert not (agent.home / "keys" / "device.key").exists()
    r = agent("run", expect=2)
    assert "not enrolled" in r.stderr
    r = agent("enroll", "--server", "http://10.255.255.1:9", "--token", "t", expect=2)
    assert "refusing plain http to 10.255.255.1" in r.stderr


# ------------------------------------------------------------------ config and home


def test_config_flag_and_home_isolation(collector, tmp_path):
    agent = AgentHome(tmp_path / "home")
    (agent.home / "agent.yaml").unlink()
    elsewhere = tmp_path / "etc" / "agent.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(f"policy: {POLICY}\nsend_attempts: 2\n")
    token = collector.token(unique_unit())
    agent("enroll", "--server", collector.url, "--token", token, "--config", str(elsewhere))
    r = agent("run", "--config", str(elsewhere))
    assert "report 1 (ready)" in r.stdout
    assert predicate_of(stored(collector, agent.device_id)[0]["envelope"])["policy"]["id"] == "e2e-os"
    # Everything stayed in AUDITAGENT_HOME: nothing under HOME or XDG_STATE_HOME.
    for other in (tmp_path / "fake-home", tmp_path / "xdg"):
        assert not other.exists() or not any(other.rglob("*"))
    assert {p.name for p in agent.home.iterdir()} >= {"keys", "spool", "enrollment.json", "sequence"}
    r = agent("run", "--config", str(tmp_path / "missing.yaml"), expect=2)
    assert f"{tmp_path / 'missing.yaml'}: no such config file" in r.stderr
    elsewhere.write_text("polcy: x\n")
    r = agent("status", "--config", str(elsewhere), expect=2)
    assert f"{elsewhere}:1: polcy: unknown key — did you mean 'policy'?" in r.stderr


# ------------------------------------------------------------------ the collector's size limit


def test_a_report_too_large_for_the_collector_is_kept_not_sent_and_the_next_says_so(collector, tmp_path):
    """A laptop whose facts make a report bigger than any collector takes (256 KiB, one
    definition: auditagent.report.MAX_REPORT_BYTES): the run keeps it set aside with the
    reason instead of spooling it, `status` shows it, `resend` does not send it, and the
    next report (facts back to normal) is stored and names the one kept back."""
    import yaml

    from auditagent.report import MAX_REPORT_BYTES

    manifest = yaml.safe_load(HOST.read_text())
    normal = yaml.safe_dump(manifest)
    os_release = manifest["files"]["/etc/os-release"]["text"]
    manifest["files"]["/etc/os-release"]["text"] = os_release.replace(
        'PRETTY_NAME="Ubuntu 22.04.4 LTS"', 'PRETTY_NAME="Ubuntu 22.04.4 LTS ' + "x" * MAX_REPORT_BYTES + '"')
    big_host, normal_host = tmp_path / "big-host.yaml", tmp_path / "host.yaml"
    big_host.write_text(yaml.safe_dump(manifest))
    normal_host.write_text(normal)
    agent = AgentHome(tmp_path / "home")
    agent.enroll(collector)
    run = agent("run", "--replay-host", str(big_host), replay=False, expect=1)
    assert "report 1 (ready) NOT spooled: too large" in run.stdout
    assert "more than the 262144 bytes (256 KiB) a collector accepts" in run.stderr
    assert stored(collector, agent.device_id) == [] and agent.spool_ids() == []
    kept = list((agent.home / "spool" / "rejected").glob("*.json"))
    assert len([p for p in kept if not p.name.endswith(".reason.json")]) == 1
    status = agent("status").stdout
    assert "set aside:  report 1 (" in status and "too_large" in status and "auditagent resend" not in status
    assert "last error:   too_large" in status

    out = agent("resend", expect=1).stdout  # would be refused every time: not sent
    assert "delivered 0, refused 1" in out and stored(collector, agent.device_id) == []

    agent("run", "--replay-host", str(normal_host), replay=False)
    rows = stored(collector, agent.device_id)
    assert [r["sequence"] for r in rows] == [2]
    note = predicate_of(rows[0]["envelope"])["spool"]["too_large"]
    assert [n["sequence"] for n in note] == [1] and note[0]["bytes"] > MAX_REPORT_BYTES
