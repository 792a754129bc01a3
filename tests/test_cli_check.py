"""``auditagent check`` and ``auditagent policy validate`` end to end, as separate processes on this machine."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

BAD_POLICY = """\
id: broken
version: 1
title: {sv: a, da: b, en: c}
description: {sv: a, da: b, en: c}
checks:
  - id: lock
    kind: screen_lock
    severity: required
    title: {sv: a, da: b, en: c}
    rationale: {sv: a, da: b, en: c}
    parameters: {max_idle_secnds: 300}
    remediation: {any: {sv: [a], da: [b], en: [c]}}
"""


def agent(*args: str, home: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    full_env.update({"AUDITAGENT_HOME": str(home), "PYTHONPATH": str(REPO), "LANG": "C.UTF-8"})
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "auditagent.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=120)


def test_check_text_verdict_first(tmp_path):
    r = agent("check", "--lang", "en", home=tmp_path)
    assert r.returncode in (0, 1), r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("READY" if r.returncode == 0 else "NOT READY")
    assert "Traceback" not in r.stderr
    # One line per check of the shipped policy, each with a status symbol.
    from auditagent.policy import default_policy_path, load_policy

    policy = load_policy(default_policy_path())
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith((" ✔", " ✘", " ?", " –"))]
    assert len(lines) == len(policy.checks)


def test_check_json_on_this_machine(tmp_path):
    r = agent("check", "--json", home=tmp_path)
    assert r.returncode in (0, 1), r.stderr
    data = json.loads(r.stdout)
    assert data["verdict"] == ("ready" if r.returncode == 0 else "not_ready")
    assert data["platform"] == "linux"
    assert data["policy"]["id"] == "casework-confidential" and len(data["policy"]["sha256"]) == 64
    assert {"os", "disk", "patches", "firewall", "screen_lock", "cloud"} <= set(data["facts"])
    for res in data["results"]:
        assert res["status"] in ("pass", "fail", "unknown", "not_applicable")
        assert res["reason"]
    # This machine's root file system (/dev/vda, plain ext4) is not encrypted: must not pass.
    disk = next(r for r in data["results"] if r["kind"] == "disk_encryption")
    assert disk["status"] in ("fail", "unknown")
    assert data["verdict"] == "not_ready"


def test_check_language_from_locale_and_flag(tmp_path):
    sv = agent("check", home=tmp_path, env={"LANG": "sv_SE.UTF-8"})
    da = agent("check", "--lang", "da", home=tmp_path)
    en = agent("check", "--lang", "en", home=tmp_path)
    assert sv.stdout.splitlines()[0].startswith("INTE REDO")
    assert da.stdout.splitlines()[0].startswith("IKKE KLAR")
    assert en.stdout.splitlines()[0].startswith("NOT READY")


def test_check_html_writes_a_page_per_language_and_says_so(tmp_path):
    out = tmp_path / "pages"
    r = agent("check", "--html", str(out), "--no-open", "--lang", "sv", home=tmp_path)
    assert r.returncode in (0, 1), r.stderr
    assert r.stdout.strip() == (f"Självkontrollen skrevs på svenska, danska och engelska till {out}. "
                                f"Öppna {out / 'selfcheck.sv.html'} i en webbläsare för att läsa den.")
    for lang in ("sv", "da", "en"):
        page = (out / f"selfcheck.{lang}.html").read_text(encoding="utf-8")
        assert page.startswith("<!doctype html>") and f'<html lang="{lang}">' in page
        assert 'id="verdict"' in page and "<script" not in page
        # Each page links to the others, each language named in itself.
        for other, name in (("sv", "svenska"), ("da", "dansk"), ("en", "English")):
            assert f'href="selfcheck.{other}.html" hreflang="{other}" lang="{other}"' in page and f">{name}</a>" in page
        assert f'aria-current="page">' in page
    # An installer passing FILE.html gets the pages beside it.
    r = agent("check", "--html", str(tmp_path / "x" / "selfcheck.html"), "--no-open", "--lang", "en", home=tmp_path)
    assert (tmp_path / "x" / "selfcheck.en.html").is_file() and "Wrote the self-check in Swedish, Danish and English" \
        in r.stdout


def test_bad_policy_exit_2_with_file_line_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_POLICY, encoding="utf-8")
    r = agent("check", "--policy", str(bad), home=tmp_path)
    assert r.returncode == 2
    assert f"{bad}:11: checks[0] (lock).parameters.max_idle_secnds: unknown key — did you mean 'max_idle_seconds'?" \
        in r.stderr
    assert "Traceback" not in r.stderr
    v = agent("policy", "validate", str(bad), str(REPO / "policies" / "baseline.yaml"), home=tmp_path)
    assert v.returncode == 1 and "✔" in v.stdout and "✘" in v.stderr
    ok = agent("policy", "validate", str(REPO / "policies" / "baseline.yaml"),
               str(REPO / "policies" / "casework-confidential.yaml"), home=tmp_path)
    assert ok.returncode == 0, ok.stderr


def test_missing_policy_file_is_a_clear_error(tmp_path):
    r = agent("check", "--policy", str(tmp_path / "nope.yaml"), home=tmp_path)
    assert r.returncode == 2 and "no such policy file" in r.stderr and "Traceback" not in r.stderr


def test_internal_error_is_exit_2_without_traceback(tmp_path):
    manifest = tmp_path / "broken-host.yaml"
    manifest.write_text("platform: linux\nclock: not-a-date\n", encoding="utf-8")
    r = agent("check", "--replay-host", str(manifest), home=tmp_path)
    assert r.returncode == 2
    assert "internal error" in r.stderr and "Traceback" not in r.stderr


def test_html_escapes_agent_values():
    from auditagent.evaluate import evaluate
    from auditagent.policy import default_policy_path, load_policy
    from auditagent.view import render_html

    policy = load_policy(default_policy_path())
    facts = {"collected_at": "2026-11-01T12:00:00+00:00", "platform": "linux",
             "cloud": {"status": "ok", "reasons": [], "clients": [
                 {"name": "<script>alert(1)</script>", "installed": True, "running": True, "accounts": []}]}}
    page = render_html(policy, facts, evaluate(policy, facts), "en")
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.parametrize("var,value,expected", [
    ("LANG", "sv_SE.UTF-8", "sv"), ("LANG", "da_DK.UTF-8", "da"), ("LC_ALL", "en_GB.UTF-8", "en"),
    ("LANGUAGE", "da:en", "da"), ("LANG", "de_DE.UTF-8", "en"), ("LANG", "nb_NO.UTF-8", "da"),
])
def test_detect_language(var, value, expected):
    from auditagent.i18n import detect_language

    assert detect_language({var: value}) == expected


def test_html_page_goes_to_the_persons_cache_when_state_is_not_theirs(tmp_path, monkeypatch):
    from auditagent.commands.check import selfcheck_page_path
    from auditagent.paths import AgentPaths

    locked = tmp_path / "machine-state"
    locked.mkdir()
    mine = AgentPaths(config=tmp_path / "agent.yaml", state=tmp_path / "mine")
    assert selfcheck_page_path(mine) == tmp_path / "mine" / "selfcheck.html"
    monkeypatch.setattr("os.access", lambda path, mode: Path(path) != locked)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    theirs = AgentPaths(config=tmp_path / "agent.yaml", state=locked)
    assert selfcheck_page_path(theirs) == tmp_path / "cache" / "auditagent" / "selfcheck.html"
