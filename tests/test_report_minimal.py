"""What leaves the machine is exactly what is shown, and only what the policy needs.

* The self-check page shows the Statement `auditagent run --dry-run` prints — the same
  builder and the same rendering, identity fields included; only the report id and the
  time it is generated differ between two runs (each report gets its own).
* A report carries facts only of the sections the policy's checks read: a policy
  without a cloud-storage check sends no cloud facts (account names, servers), one
  without a disk check no volumes."""
from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys

import pytest

from collector_fixtures import REPO

HOST = REPO / "tests" / "fixtures" / "hosts" / "macos-filevault-google-drive" / "host.yaml"

SCREEN_ONLY = """
id: screen-only
version: 1.0.0
title: {sv: Skärmlås, da: Skærmlås, en: Screen lock}
description: {sv: Bara skärmlås, da: Kun skærmlås, en: Screen lock only}
checks:
  - id: screen-lock
    kind: screen_lock
    severity: required
    parameters: {max_idle_seconds: 300}
    title: {sv: Skärmen låses, da: Skærmen låses, en: The screen locks}
    rationale: {sv: Skydd, da: Beskyttelse, en: Protection}
    remediation:
      windows: {sv: [Steg], da: [Trin], en: [Step]}
      macos: {sv: [Steg], da: [Trin], en: [Step]}
      linux: {sv: [Steg], da: [Trin], en: [Step]}
"""


def agent(*args: str, home, check=True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITAGENT_")}
    env.update(PYTHONPATH=str(REPO), AUDITAGENT_HOME=str(home))
    p = subprocess.run([sys.executable, "-m", "auditagent.cli", *args], env=env, capture_output=True, text=True,
                       timeout=300)
    assert not check or p.returncode in (0, 1), p.stderr
    return p


def page_statement(folder, lang="en") -> dict:
    page = (folder / f"selfcheck.{lang}.html").read_text(encoding="utf-8")
    m = re.search(r'<pre id="report-json">(.*?)</pre>', page, re.S)
    assert m, page[-2000:]
    return json.loads(html.unescape(m.group(1)))


def test_the_page_shows_what_run_would_send(collector, tmp_path):
    home = tmp_path / "home"
    token = collector.token()
    agent("enroll", "--server", collector.url, "--token", token, "--replay-host", str(HOST), home=home)
    dry = agent("run", "--dry-run", "--replay-host", str(HOST), home=home)
    sent = json.loads(dry.stdout)
    agent("check", "--html", str(tmp_path / "pages"), "--no-open", "--replay-host", str(HOST), home=home)
    for lang in ("sv", "da", "en"):
        shown, sent = page_statement(tmp_path / "pages", lang), json.loads(dry.stdout)
        # Identity fields, subject, policy, facts, results, sequence: all the same.
        assert shown["subject"] == sent["subject"] and shown["predicate"]["device"] == sent["predicate"]["device"]
        assert shown["predicate"]["device"]["id"] and shown["predicate"]["device"]["hostname"]
        for statement in (shown, sent):  # new for every report, and when the probe ran
            pred = statement["predicate"]
            pred.pop("report_id"), pred.pop("generated_at")
            pred["facts"]["patches"].pop("cached_at", None)
            for r in pred["results"]:
                r.get("evidence", {}).pop("patches.cached_at", None)
        diff = {k for k in set(shown["predicate"]) | set(sent["predicate"])
                if shown["predicate"].get(k) != sent["predicate"].get(k)}
        assert not diff, list(_debug_diff(shown["predicate"], sent["predicate"]))[:8]
        assert shown == sent
    # The same text, too: both go through one renderer.
    from auditagent.view import report_text

    assert report_text(json.loads(dry.stdout)) == dry.stdout.rstrip("\n")


def test_a_not_enrolled_computer_says_it_sends_nothing(tmp_path):
    agent("check", "--html", str(tmp_path / "pages"), "--no-open", "--lang", "en", "--replay-host", str(HOST),
          home=tmp_path / "home")
    page = (tmp_path / "pages" / "selfcheck.en.html").read_text(encoding="utf-8")
    assert "not enrolled yet, so it sends nothing" in page


@pytest.mark.parametrize("policy_text,absent,present", [
    (SCREEN_ONLY, {"cloud", "disk", "patches", "os", "firewall", "antimalware"}, {"screen_lock"}),
])
def test_a_policy_without_a_check_on_x_sends_no_facts_of_x(policy_text, absent, present, tmp_path):
    from auditagent.audit import run_check
    from auditagent.delivery import report_statement
    from auditagent.enrollment import Enrollment
    from auditagent.host import load_replay_host
    from auditagent.policy import default_policy_path, load_policy

    enrollment = Enrollment(device_id="dev-min-1", server="https://audit.example.org", keyid="ab" * 32,
                            enrolled_at="2026-11-01T00:00:00Z", serial="SN-1", os="macOS", platform="macos")
    # With the full policy the host's cloud accounts are in the report …
    full = load_policy(default_policy_path())
    facts, evaluation = run_check(full, load_replay_host(HOST), None)
    statement = report_statement(policy=full, facts=facts, evaluation=evaluation, enrollment=enrollment,
                                 public_key=enrollment.keyid, sequence=1)
    assert {"cloud", "disk"} <= set(statement["predicate"]["facts"])
    # … with a policy that checks only the screen lock, nothing of them: not the section, not a value.
    path = tmp_path / "screen-only.yaml"
    path.write_text(policy_text, encoding="utf-8")
    policy = load_policy(path)
    facts, evaluation = run_check(policy, load_replay_host(HOST), None)
    statement = report_statement(policy=policy, facts=facts, evaluation=evaluation, enrollment=enrollment,
                                 public_key=enrollment.keyid, sequence=1)
    sent = statement["predicate"]["facts"]
    assert present <= set(sent) and not (absent & set(sent)), sorted(sent)
    text = json.dumps(statement)
    full_facts = run_check(full, load_replay_host(HOST), None)[0]
    for client in full_facts["cloud"].get("clients") or []:
        for account in client.get("accounts") or []:
            for value in account.values():
                if isinstance(value, str) and len(value) > 3:
                    assert value not in text, f"cloud account detail {value!r} sent without a cloud check"
    for volume in full_facts["disk"].get("volumes") or []:
        for key in ("device", "uuid"):
            if volume.get(key):
                assert str(volume[key]) not in text


def _debug_diff(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in set(a) | set(b):
            yield from _debug_diff(a.get(k), b.get(k), f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from _debug_diff(x, y, f"{path}[{i}]")
    elif a != b:
        yield path, a, b
