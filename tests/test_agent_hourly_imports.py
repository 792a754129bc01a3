"""What the hourly run really imports: the scheduled entry (what the systemd timer, the
scheduled task and launchd start) run on this machine's real Host against a real collector
on 127.0.0.1, judged by the shipped policy signed by the organisation, exactly as an
installed agent runs every hour. The modules left in ``sys.modules`` when it ends are
what it paid for; a heavy library or another command's code creeping back onto that path
fails here (the static import tests in test_agent_hourly_cost.py cover single modules).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import collector_fixtures
from auditagent.delivery import load_delivery_state
from conftest import REPO
from test_e2e_delivery import AgentHome, stored, unique_unit
from test_e2e_policy_tls import org_keys, sign

SCHEDULED = REPO / "packaging" / "common" / "auditagent_setup.py"
SHIPPED = REPO / "policies" / "casework-confidential.yaml"

# Never on the hourly path: the agent's declared runtime libraries it need not import when
# nothing changed (YAML: agent.yaml and the policy are read from their validated caches;
# psutil: /proc is read directly on Linux), the collector's libraries, the test Host, the
# other commands' code, and standard modules it has no use for every hour.
NEVER = frozenset({
    "yaml", "psutil", "structlog", "requests", "urllib3", "certifi", "idna",
    "sqlalchemy", "fastapi", "jinja2", "nacl",
    "auditagent.host_replay", "auditagent.capture", "auditagent.view",
    "auditagent.commands.check", "auditagent.commands.policy_cmd", "auditagent.commands.policy_sign",
    "auditagent.commands.capture", "auditagent.commands.verify",
    "cryptography.x509", "cryptography.hazmat.primitives.serialization",
    "cryptography.hazmat.primitives.asymmetric.ec",
    "importlib.metadata", "pkg_resources", "importlib.resources",
    "asyncio", "concurrent.futures", "multiprocessing", "logging", "sqlite3", "tempfile", "uuid",
    "zoneinfo", "difflib", "xml.etree.ElementTree", "email.mime", "urllib.request", "gzip", "zipfile",
    "tarfile", "unittest", "pydoc", "pprint", "decimal", "fractions", "statistics", "csv",
})

# The wrapper ends through the agent's own exit (cli.leave runs the exit handlers), so the
# list is taken when everything the run did is done; for a module that should not be there
# it also keeps where it was first imported from, for the failure message.
WRAPPER = """
import atexit, runpy, sys, traceback
never, first_import = set(sys.argv[3].split(",")), {}
class _Watch:
    def find_spec(self, name, path=None, target=None):
        if name in never and name not in first_import:
            first_import[name] = "".join(traceback.format_stack(limit=8)[:-1])
        return None
sys.meta_path.insert(0, _Watch())
def _dump(out=sys.argv[1]):
    with open(out, "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
    with open(out + ".where", "w") as f:
        f.write("\\n".join(f"{name} imported from:\\n{stack}" for name, stack in first_import.items()))
atexit.register(_dump)
sys.argv = [sys.argv[2], "scheduled"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def sqlite_collector(tmp_path_factory):
    """What the agent imports does not depend on the collector's database: SQLite only."""
    work = tmp_path_factory.mktemp("collector")
    c = collector_fixtures.start_collector(f"sqlite:///{work / 'collector.db'}", work)
    try:
        yield c
    finally:
        c.stop()


def scheduled_modules(agent: AgentHome, out: Path) -> tuple[set[str], subprocess.CompletedProcess]:
    proc = subprocess.run([sys.executable, "-c", WRAPPER, str(out), str(SCHEDULED), ",".join(sorted(NEVER))],
                          env=agent.env(), capture_output=True, text=True, timeout=600)
    return set(out.read_text().split()), proc


def where(out: Path) -> str:
    return Path(str(out) + ".where").read_text()


def test_the_scheduled_hourly_run_leaves_no_heavy_module_loaded(sqlite_collector, tmp_path):
    collector = sqlite_collector
    agent = AgentHome(tmp_path / "home")
    priv, pub = org_keys(agent, tmp_path)
    agent.write_config({"policy_public_key": str(pub), "send_attempts": 2, "send_timeout": 5})
    unit = unique_unit()
    collector.cli("unit", "add", unit)
    collector.cli("policy", "set", "--unit", unit, str(sign(agent, priv, SHIPPED, tmp_path / "shipped.signed.json")),
                  "--public-key", str(pub))
    agent.enroll(collector, unit)
    # The first run fetches and verifies the policy, validates agent.yaml and runs the
    # package-manager query; what it keeps lets the next hours skip all of that.
    first, proc = scheduled_modules(agent, tmp_path / "first.txt")
    assert proc.returncode in (0, 1), proc.stderr
    assert "yaml" in first  # the first run does parse: the check below is not vacuous

    hourly, proc = scheduled_modules(agent, tmp_path / "hourly.txt")
    assert proc.returncode in (0, 1), proc.stderr
    assert "304" in proc.stderr  # the policy was unchanged, as most hours
    assert len(stored(collector, agent.device_id)) == 2  # both runs signed, sent and stored a report
    # It did the whole hourly job: probes (several sections), signing, the spool, sending.
    assert {"auditagent.probes.patches.linux", "auditagent.probes.disk_encryption.linux", "auditagent.report",
            "auditagent.spool", "auditagent.send", "http.client"} <= hourly
    assert sorted(NEVER & hourly) == [], where(tmp_path / "hourly.txt")
    assert load_delivery_state(agent.home)["last_report"]["sequence"] == 2
