"""Everything unknown says why, in the staff member's language: probes emit coded reasons
(auditagent/reasons.py) and every code is translated in sv, da and en."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import OWN_FIXTURES

from auditagent.audit import run_check
from auditagent.host import ReplayHost, load_replay_host
from auditagent.i18n import LANGS, catalog, reason_text
from auditagent.policy import default_policy_path, load_policy
from auditagent.probes import PROBES, ProbeContext, collect
from auditagent.reasons import CODES, parse, reason
from auditagent.view import render_text

REPO = Path(__file__).resolve().parents[1]
HOSTS = sorted((OWN_FIXTURES / "hosts").glob("*/host.yaml"))


@pytest.mark.parametrize("lang", LANGS)
def test_every_reason_code_is_translated(lang):
    for code in CODES:
        text = catalog(lang).get(f"reason.{code}")
        assert text, f"reason.{code} missing in {lang}.yaml"
        assert ("{subject}" in text) == ("{subject}" in catalog("en")[f"reason.{code}"]), (lang, code)
        if lang != "en":
            assert text != catalog("en")[f"reason.{code}"], f"reason.{code} in {lang} is the English text"


def _reason_args(node: ast.AST) -> list[ast.AST]:
    """Expressions that end up in a section's reasons."""
    out = []
    for n in ast.walk(node):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("append", "extend") \
                and ast.unparse(n.func.value).rstrip("'\"]").endswith("reasons"):
            out += n.args
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "unknown":
            out += n.args[:1]
        if isinstance(n, ast.Dict):
            for k, v in zip(n.keys, n.values):
                if isinstance(k, ast.Constant) and k.value == "reasons" and isinstance(v, ast.List):
                    out += v.elts
        if isinstance(n, ast.Return) and isinstance(n.value, ast.Tuple) and len(n.value.elts) == 2 \
                and (isinstance(n.value.elts[0], ast.Constant) and n.value.elts[0].value is None
                     or isinstance(n.value.elts[0], (ast.List, ast.Dict)) and not ast.unparse(n.value.elts[0])[1:-1]):
            out.append(n.value.elts[1])  # (nothing, why) helpers
    return out


def _is_prose(expr: ast.AST) -> bool:
    if isinstance(expr, ast.JoinedStr):
        return True
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return True
    if isinstance(expr, ast.BoolOp):
        return any(_is_prose(v) for v in expr.values)
    if isinstance(expr, ast.IfExp):
        return _is_prose(expr.body) or _is_prose(expr.orelse)
    return False


def test_no_probe_writes_a_reason_as_prose():
    offenders = []
    for path in sorted((REPO / "auditagent" / "probes").rglob("*.py")) + [REPO / "auditagent" / "host.py"]:
        for expr in _reason_args(ast.parse(path.read_text(encoding="utf-8"))):
            if _is_prose(expr):
                offenders.append(f"{path.relative_to(REPO)}:{expr.lineno}: {ast.unparse(expr)[:80]}")
    assert not offenders, "reasons must be reason(code, …):\n" + "\n".join(offenders)


def test_reason_format_round_trips_and_refuses_unknown_codes():
    text = reason("tool.failed", "manage-bde", "exit 1: Access is denied.")
    assert text == "tool.failed: manage-bde — exit 1: Access is denied."
    assert parse(text) == ("tool.failed", "manage-bde", "exit 1: Access is denied.")
    assert parse("fdesetup: not installed") is None
    with pytest.raises(KeyError):
        reason("made.up")


def _hosts() -> list[tuple[str, ReplayHost]]:
    """Every replay fixture, and each OS with nothing on it (every source missing)."""
    out = [(m.parent.name, load_replay_host(m)) for m in HOSTS]
    out += [(f"empty-{p}", ReplayHost(platform=p, homes=[])) for p in ("linux", "windows", "macos")]
    denied = ReplayHost(platform="macos")
    for argv in (["fdesetup", "status"], ["softwareupdate", "--list", "--no-scan"], ["sysctl", "-n", "kern.boottime"]):
        denied.add_command(argv, b"", returncode=None, error="permission")
    out.append(("denied-macos", denied))
    return out


@pytest.mark.parametrize("name,host", _hosts(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_reason_a_probe_gives_is_coded_and_shown_translated(name, host):
    facts = collect(ProbeContext(host))
    reasons = [r for s in PROBES if isinstance(facts.get(s), dict) for r in facts[s]["reasons"]]
    assert all(parse(r) for r in reasons), [r for r in reasons if not parse(r)]
    policy = load_policy(default_policy_path())
    _facts, evaluation = run_check(policy, load_replay_host_again(host))
    for lang in ("sv", "da"):
        page = render_text(policy, evaluation, lang)
        for r in reasons:
            code = parse(r)[0]
            assert r not in page and not re.search(rf"\b{re.escape(code)}\b", page), (lang, r)
            assert reason_text(r, lang) != r


def load_replay_host_again(host: ReplayHost) -> ReplayHost:
    """A fresh host with the same answers (a host's memo holds one run)."""
    import copy

    fresh = copy.copy(host)
    fresh._memo = {}
    return fresh
