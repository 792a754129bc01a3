"""The staff self-check shows a laptop's facts as text, never as terminal or page
control: an OS name carrying a right-to-left override and escape sequences (what a
tampered os-release, a hostile account name or a registry value could hold) reaches the
terminal, the HTML pages and the JSON neutralised, the same way the collector shows it."""
from __future__ import annotations

import json

from hostile_hosts import LINUX_E2E, TERMINAL_ATTACK, linux_with_os_name
from test_cli_check import agent

POLICY = LINUX_E2E / "policy.yaml"
RAW = ("\u202e", "\x1b", "\x07")


def test_terminal_verdict_neutralises_facts(tmp_path):
    host = linux_with_os_name(tmp_path, f"Ubuntu {TERMINAL_ATTACK} 22.04")
    r = agent("check", "--lang", "en", "--replay-host", str(host), "--policy", str(POLICY), home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    assert not any(bad in r.stdout for bad in RAW), r.stdout
    assert "Ubuntu <U+202E>gpj.exe<U+001B>[2J<U+001B>]0;pwned<U+0007> 22.04 still receives" in r.stdout


def test_colour_codes_stay_ours(tmp_path):
    """With colour on, the only escapes are the colour codes the view adds."""
    from auditagent.audit import run_check
    from auditagent.host import load_replay_host
    from auditagent.policy import load_policy
    from auditagent.view import render_text

    host = linux_with_os_name(tmp_path, f"Ubuntu {TERMINAL_ATTACK} 22.04")
    policy = load_policy(POLICY)
    _, evaluation = run_check(policy, load_replay_host(host), None)
    text = render_text(policy, evaluation, "en", colour=True)
    assert "\u202e" not in text and "\x07" not in text
    assert {text[i:i + 2] for i in range(len(text)) if text[i] == "\x1b"} == {"\x1b["}
    assert "\x1b[2J" not in text and "<U+001B>[2J" in text


def test_html_pages_escape_and_neutralise_facts(tmp_path):
    host = linux_with_os_name(tmp_path, f"Ubuntu <script>alert(1)</script>{TERMINAL_ATTACK} 22.04")
    out = tmp_path / "pages"
    r = agent("check", "--html", str(out), "--no-open", "--lang", "en", "--replay-host", str(host),
              "--policy", str(POLICY), home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    for lang in ("sv", "da", "en"):
        page = (out / f"selfcheck.{lang}.html").read_text(encoding="utf-8")
        assert not any(bad in page for bad in RAW), lang
        assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "&lt;U+202E&gt;gpj.exe&lt;U+001B&gt;" in page  # the reason line
        assert "\\u202egpj.exe\\u001b[2J" in page  # the report JSON: escaped, still the same value


def test_json_output_is_the_same_value_with_nothing_raw(tmp_path):
    name = f"Ubuntu {TERMINAL_ATTACK} 22.04"
    host = linux_with_os_name(tmp_path, name)
    r = agent("check", "--json", "--replay-host", str(host), "--policy", str(POLICY), home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    assert not any(bad in r.stdout for bad in RAW)
    assert json.loads(r.stdout)["facts"]["os"]["name"] == name  # the exact fact, for machines


def test_verify_shows_what_a_device_signed_without_obeying_it(tmp_path):
    """An auditor verifying a report from a hostile laptop: its host name is shown, not run."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from auditagent import report as wire
    from collector_fixtures import EnrolledDevice

    key = Ed25519PrivateKey.generate()
    device = EnrolledDevice(id="dev-hostile-1", key=key, unit="U", keyid=wire.keyid(key.public_key()),
                            hostname=f"pc-{TERMINAL_ATTACK}")
    (tmp_path / "report.json").write_text(json.dumps(device.sign(1)))
    (tmp_path / "device.pem").write_text(wire.public_key_pem(key.public_key()))
    for extra in ((), ("--json",)):
        r = agent("verify", str(tmp_path / "report.json"), "--key", str(tmp_path / "device.pem"), *extra,
                  home=tmp_path / "home")
        assert r.returncode == 0, r.stderr
        assert not any(bad in r.stdout for bad in RAW), r.stdout
    assert json.loads(r.stdout)["predicate"]["device"]["hostname"] == f"pc-{TERMINAL_ATTACK}"
