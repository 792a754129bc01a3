"""Grace periods in the policy and on the laptop: ``grace_hours`` validated with file:line,
carried in each result like the severity, and the staff self-check names the deadline
("åtgärda senast 3 december") in the local date — the same deadline the collector keeps."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from auditagent.evaluate import Result
from auditagent.grace import RUNS_FILE, deadlines, next_runs
from auditagent.policy import PolicyError, load_policy
from conftest import OWN_FIXTURES
from test_cli_check import agent

GRACE_POLICY = """\
id: casework-grace
version: 2.0.0
extends: casework-confidential
title: {sv: Med respittid, da: Med frist, en: With grace}
description: {sv: a, da: b, en: c}
checks:
  - id: disk-encryption-full
    grace_hours: GRACE
"""


def _policy(tmp_path, grace="72", name="grace.yaml"):
    p = tmp_path / name
    p.write_text(GRACE_POLICY.replace("GRACE", grace), encoding="utf-8")
    return p


def test_grace_hours_is_read_and_sent_with_each_result(tmp_path):
    policy = load_policy(_policy(tmp_path))
    check = next(c for c in policy.checks if c.id == "disk-encryption-full")
    assert check.grace_hours == 72 and check.to_dict()["grace_hours"] == 72
    others = [c for c in policy.checks if c.id != "disk-encryption-full"]
    assert all(c.grace_hours is None and "grace_hours" not in c.to_dict() for c in others)


@pytest.mark.parametrize("bad, says", [("0", "from 1 to 8760"), ("8761", "from 1 to 8760"), ("-3", "from 1 to"),
                                       ("72h", "expected a whole number of hours"),
                                       ("true", "got a boolean"), ("1.5", "expected a whole number")])
def test_a_bad_grace_hours_names_file_line_and_field(tmp_path, bad, says):
    path = _policy(tmp_path, bad)
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    text = "\n".join(map(str, exc.value.problems))
    assert f"{path.name}:8" in text and "checks[0] (disk-encryption-full).grace_hours" in text and says in text, text


def test_only_a_required_check_may_have_grace(tmp_path):
    path = tmp_path / "rec.yaml"
    path.write_text(GRACE_POLICY.replace("GRACE", "24").replace(
        "  - id: disk-encryption-full\n", "  - id: my-lock\n    kind: screen_lock\n    severity: recommended\n"
        "    title: {sv: a, da: b, en: c}\n    rationale: {sv: a, da: b, en: c}\n"
        "    parameters: {max_idle_seconds: 300}\n    remediation: {any: {sv: [a], da: [b], en: [c]}}\n"),
        encoding="utf-8")
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    assert "grace_hours" in str(exc.value.problems[0]) and "only a required check" in str(exc.value.problems[0])


def _r(cid, status, grace=None):
    return Result(cid, "k", "required", status, (), {}, {}, grace_hours=grace)


def test_the_laptops_rule_keeps_a_run_and_never_grants_grace_afterwards():
    t0 = dt.datetime(2026, 11, 30, 10, tzinfo=dt.timezone.utc)
    runs = next_runs({}, [_r("a", "fail", 72), _r("b", "fail"), _r("c", "pass", 24)], t0)
    assert runs == {"a": {"since": "2026-11-30T10:00:00Z", "due": "2026-12-03T10:00:00Z"},
                    "b": {"since": "2026-11-30T10:00:00Z", "due": None}}
    later = next_runs(runs, [_r("a", "unknown", 200), _r("b", "fail", 48), _r("c", "fail", 24)], t0 + dt.timedelta(hours=5))
    assert later["a"] == runs["a"] and later["b"] == runs["b"]  # the deadline shown stays; no grace afterwards
    assert later["c"] == {"since": "2026-11-30T15:00:00Z", "due": "2026-12-01T15:00:00Z"}
    assert deadlines(later) == {"a": dt.datetime(2026, 12, 3, 10, tzinfo=dt.timezone.utc),
                                "c": dt.datetime(2026, 12, 1, 15, tzinfo=dt.timezone.utc)}
    assert next_runs(later, [_r("a", "pass", 72)], t0 + dt.timedelta(hours=6)) == {}


HOST = OWN_FIXTURES / "hosts" / "windows-bitlocker-suspended-private-cloud" / "host.yaml"


@pytest.mark.parametrize("lang, want", [("sv", "åtgärda senast 3 december"), ("da", "udbedres senest 3. december"),
                                        ("en", "fix by 3 December")])
def test_the_self_check_shows_the_deadline_in_the_local_date(tmp_path, lang, want):
    # A run reported at 23:30 UTC on 2 December: Stockholm's local date is already 3 December.
    (tmp_path / RUNS_FILE).write_text(json.dumps({"disk-encryption-full": {"since": "2026-11-29T23:30:00Z",
                                                                      "due": "2026-12-02T23:30:00Z"}}))
    r = agent("check", "--lang", lang, "--policy", str(_policy(tmp_path)), "--replay-host", str(HOST),
              home=tmp_path, env={"TZ": "Europe/Stockholm"})
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    at = next(i for i, ln in enumerate(lines) if want in ln)
    assert lines[at - 1].startswith(" ✘"), r.stdout  # right under the failing check it belongs to
    assert r.stdout.count(want.split(" 3")[0]) == 1  # only the check with grace has a deadline
    data = json.loads(agent("check", "--json", "--policy", str(_policy(tmp_path)), "--replay-host", str(HOST),
                            home=tmp_path).stdout)
    disk = next(x for x in data["results"] if x["check_id"] == "disk-encryption-full")
    assert disk["grace_hours"] == 72 and disk["due_until"] == "2026-12-02T23:30:00Z"
    assert all("due_until" not in x for x in data["results"] if x["check_id"] != "disk-encryption-full")


def test_a_run_not_reported_yet_is_due_from_now(tmp_path):
    before = dt.datetime.now(dt.timezone.utc)
    data = json.loads(agent("check", "--json", "--policy", str(_policy(tmp_path)), "--replay-host", str(HOST),
                            home=tmp_path).stdout)
    disk = next(x for x in data["results"] if x["check_id"] == "disk-encryption-full")
    due = dt.datetime.fromisoformat(disk["due_until"].replace("Z", "+00:00"))
    assert before + dt.timedelta(hours=72) <= due <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=72)
