"""Every language is complete: the message catalogs carry the same keys and
placeholders, and the shipped policies speak sv, da and en everywhere."""
from __future__ import annotations

import string
from pathlib import Path

import pytest
import yaml

from auditagent.i18n import translate
from auditagent.kinds import PLATFORMS
from auditagent.policy import LANGS, Policy, load_policy

REPO = Path(__file__).resolve().parents[1]
CATALOGS = REPO / "auditagent" / "i18n"
SHIPPED = ("baseline.yaml", "casework-confidential.yaml")
SYMBOLS = ("✘", "✔", "?")


def _catalog(lang: str) -> dict[str, str]:
    data = yaml.safe_load((CATALOGS / f"{lang}.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{lang}.yaml is not a mapping"
    return data


def _placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


# ------------------------------------------------------------------ message catalogs


@pytest.mark.parametrize("lang", ["sv", "da"])
def test_catalog_has_exactly_the_english_keys(lang: str) -> None:
    en, other = _catalog("en"), _catalog(lang)
    assert sorted(set(en) - set(other)) == [], f"missing in {lang}.yaml"
    assert sorted(set(other) - set(en)) == [], f"not in en.yaml but in {lang}.yaml"


@pytest.mark.parametrize("lang", ["sv", "da"])
def test_catalog_keeps_placeholders_and_symbols(lang: str) -> None:
    en, other = _catalog("en"), _catalog(lang)
    for key, template in en.items():
        text = other.get(key)
        assert isinstance(text, str) and text.strip(), f"{lang}.yaml: {key} is empty"
        assert _placeholders(text) == _placeholders(template), f"{lang}.yaml: {key} placeholders differ"
        for symbol in SYMBOLS:
            if symbol in template:
                assert symbol in text, f"{lang}.yaml: {key} lost {symbol!r}"


@pytest.mark.parametrize("lang", ["sv", "da"])
def test_catalog_is_translated(lang: str) -> None:
    """Not a copy of English: most messages differ (a few, like "OK", may not)."""
    en, other = _catalog("en"), _catalog(lang)
    # proper names read the same everywhere; date patterns may too ("{day} {month}")
    names = ("product.", "firewall_product.", "platform.", "date.")
    same = [k for k in en if other.get(k) == en[k] and not k.startswith(names)]
    assert len(same) <= 5, f"{lang}.yaml: untranslated {same}"


@pytest.mark.parametrize("lang", ["sv", "da"])
def test_translate_fills_every_message(lang: str) -> None:
    for key, template in _catalog("en").items():
        args = {name: "x" for name in _placeholders(template)}
        if "how" in args:
            args["how"] = "running"
        text = translate(key, args, lang)
        assert "{" not in text, f"{lang}: {key} left a placeholder unfilled: {text}"


# ------------------------------------------------------------------ shipped policies


@pytest.fixture(params=SHIPPED)
def policy(request: pytest.FixtureRequest) -> Policy:
    return load_policy(REPO / "policies" / request.param)


def _assert_text(text: dict[str, str], where: str) -> None:
    assert set(text) == set(LANGS), f"{where}: languages {sorted(text)}"
    for lang in LANGS:
        assert isinstance(text[lang], str) and text[lang].strip(), f"{where}.{lang} is empty"


def test_policy_texts_in_every_language(policy: Policy) -> None:
    _assert_text(policy.title, f"{policy.id}: title")
    _assert_text(policy.description, f"{policy.id}: description")
    assert policy.checks
    for check in policy.checks:
        _assert_text(check.title, f"{policy.id}/{check.id}: title")
        _assert_text(check.rationale, f"{policy.id}/{check.id}: rationale")


def test_policy_remediation_for_every_platform_and_language(policy: Policy) -> None:
    """Steps for Linux, Windows and macOS in sv, da and en — for every platform the
    check applies to (a check limited by ``platforms`` is not applicable elsewhere,
    so nobody would ever see steps for those)."""
    for check in policy.checks:
        applies = check.platforms or PLATFORMS
        for platform in applies:
            steps = check.remediation_for(platform)
            where = f"{policy.id}/{check.id}: remediation.{platform}"
            assert set(steps) == set(LANGS), f"{where}: languages {sorted(steps)}"
            for lang in LANGS:
                assert steps[lang], f"{where}.{lang} has no steps"
                assert all(isinstance(s, str) and s.strip() for s in steps[lang]), f"{where}.{lang}: empty step"
            # A translation has the same steps: sv and da say what en says.
            counts = {lang: len(steps[lang]) for lang in LANGS}
            assert len(set(counts.values())) == 1, f"{where}: step counts differ {counts}"


def test_shipped_policies_name_each_platform(policy: Policy) -> None:
    """Shipped policies spell out linux, windows and macos steps (no catch-all 'any'):
    the menus and commands differ on each."""
    for check in policy.checks:
        for platform in check.platforms or PLATFORMS:
            assert platform in check.remediation, f"{policy.id}/{check.id}: no remediation.{platform}"


# ------------------------------------------------------------------ what staff read


HOSTS = sorted((REPO / "tests" / "fixtures" / "hosts").glob("*/host.yaml"))


def _selfcheck_texts(manifest: Path):
    """The terminal text and the page's visible text of a replayed machine, per language."""
    import html as html_mod
    import re

    from auditagent.audit import run_check
    from auditagent.host import load_replay_host
    from auditagent.policy import default_policy_path
    from auditagent.view import render_html, render_text

    policy = load_policy(default_policy_path())
    facts, evaluation = run_check(policy, load_replay_host(manifest), None)
    for lang in LANGS:
        page = render_html(policy, facts, evaluation, lang)
        page = page.split('<details id="report">')[0]  # the report itself is data, shown as sent
        visible = html_mod.unescape(re.sub(r"<style>.*?</style>|<[^>]+>", " ", page, flags=re.S))
        yield lang, facts, render_text(policy, evaluation, lang), visible


def _probe_reasons(facts) -> set[str]:
    return {r for section in facts.values() if isinstance(section, dict)
            for r in section.get("reasons") or [] if isinstance(r, str)}


@pytest.mark.parametrize("manifest", HOSTS, ids=lambda p: p.parent.name)
def test_the_selfcheck_reads_as_written_for_a_case_worker(manifest: Path) -> None:
    """No untranslated probe reason, no internal id, no raw timestamp, durations as people say them."""
    import re

    internal = {"google_drive", "onedrive", "icloud", "macos_alf", "nftables_", "not_applicable", "not_ready",
                "screen_lock", "antimalware", "_"}
    for lang, facts, text, visible in _selfcheck_texts(manifest):
        for shown in (text, visible):
            for raw in _probe_reasons(facts):
                assert raw not in shown, f"{lang}: untranslated probe reason shown: {raw!r}"
            assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", shown), f"{lang}: raw ISO timestamp"
            assert not re.search(r"\b0 (dagar|dage|days)\b", shown) and not re.search(r"\b1 (dagar|dage|days)\b", shown)
            for n in re.findall(r"\b(\d+) (?:sekunder|seconds)\b", shown):
                assert int(n) < 60, f"{lang}: {n} seconds instead of minutes"
            words = set(re.findall(r"\b[a-z]+_[a-z_]+\b", shown))
            assert not words, f"{lang}: internal ids shown: {words}"
            assert "{" not in shown
            os_name = (facts.get("os") or {}).get("name")
            version = str((facts.get("os") or {}).get("version") or "")
            if os_name and version and version in os_name:
                assert f"{os_name} {version}" not in shown, f"{lang}: the OS version twice"
        if lang != "en":
            for english in ("Does not apply", "Could not", "installed", "running", "signed in"):
                assert english not in text, f"{lang}: English {english!r} in: {text}"


def test_durations_and_days_in_words() -> None:
    assert translate("screen.ok", {"seconds": 300}, "sv") == "Skärmen låses efter 5 minuter utan aktivitet."
    assert translate("screen.too_long", {"seconds": 305, "max": 300}, "en") == \
        "The screen locks only after 5 min 5 s; at most 5 minutes is allowed."
    assert translate("screen.ok", {"seconds": 7200}, "da") == "Skærmen låses efter 2 timer uden aktivitet."
    assert translate("screen.ok", {"seconds": 45}, "sv") == "Skärmen låses efter 45 sekunder utan aktivitet."
    assert translate("screen.ok", {"seconds": 3600}, "sv") == "Skärmen låses efter 1 timme utan aktivitet."
    assert translate("screen.ok", {"seconds": 5400}, "en") == "The screen locks after 90 minutes without use."
    assert translate("patches.last_update_ok", {"days": 0}, "sv").endswith("senast i dag.")
    assert translate("patches.last_update_ok", {"days": 1}, "da").endswith("sidst installeret i går.")
    assert translate("patches.last_update_ok", {"days": 4}, "en") == "OS updates were last installed 4 days ago."
    assert translate("patches.last_update_old", {"days": 40, "max": 30}, "sv").endswith(
        "för 40 dagar sedan; högst 30 dagar är tillåtet.")
    assert translate("os.supported", {"name": "Debian GNU/Linux 12 (bookworm)", "version": "12", "minimum": 12},
                     "sv").startswith("Debian GNU/Linux 12 (bookworm) får")
    assert translate("os.supported", {"name": "macOS", "version": "14.4", "minimum": 13}, "en").startswith(
        "macOS 14.4 still")
    assert translate("cloud.unapproved_client", {"client": "google_drive", "how": "running"}, "sv") == \
        "Google Drive är igång och är inte godkänt för ärendefiler."
    assert translate("firewall.on", {"backend": "macos_alf"}, "da") == "Firewallen er slået til (macOS-firewallen)."


@pytest.mark.parametrize("os_facts,updates,firewall", [
    ({"id": "ubuntu", "id_like": ["debian"], "version": "24.04"}, "linux.debian", "linux.ubuntu"),
    ({"id": "linuxmint", "id_like": ["ubuntu", "debian"], "version": "21.3"}, "linux.debian", "linux.ubuntu"),
    ({"id": "debian", "version": "12"}, "linux.debian", "linux.debian"),
    ({"id": "rocky", "id_like": ["rhel", "centos", "fedora"], "version": "9.3"}, "linux.fedora", "linux.fedora"),
    ({"id": "opensuse-leap", "id_like": ["suse", "opensuse"], "version": "15.5"}, "linux.suse", "linux.suse"),
    ({"id": "arch"}, "linux", "linux"),
])
def test_fix_steps_for_the_detected_distribution_others_folded(os_facts, updates, firewall) -> None:
    policy = load_policy(REPO / "policies" / "baseline.yaml")
    checks = {c.kind: c for c in policy.checks}
    for kind, expected in (("os_patches", updates), ("firewall", firewall)):
        key, steps, others = checks[kind].remediation_choice("linux", os_facts)
        assert key == expected and steps == checks[kind].remediation[expected]
        assert expected not in others and others and all(k == "linux" or k.startswith("linux.") for k in others)
    # Windows and macOS have one entry each: nothing to fold.
    assert checks["firewall"].remediation_choice("windows", {"id": "windows"})[2] == {}


def test_the_page_folds_the_other_systems_steps() -> None:
    from auditagent.evaluate import evaluate
    from auditagent.view import render_html, render_text

    policy = load_policy(REPO / "policies" / "baseline.yaml")
    facts = {"collected_at": "2026-11-01T12:00:00+00:00", "platform": "linux",
             "os": {"status": "ok", "reasons": [], "id": "debian", "version": "12", "name": "Debian GNU/Linux 12"},
             "firewall": {"status": "ok", "reasons": [], "enabled": False, "backend": "nftables"}}
    evaluation = evaluate(policy, facts)
    page = render_html(policy, facts, evaluation, "sv")
    fw = page.split('id="check-firewall"')[1].split("</li>\n")[0].split('<li class=')[0]
    mine, folded = fw.split('<details class="others">')
    assert "<code>sudo apt install ufw</code>" in mine and "firewalld" not in mine
    assert "<summary>Andra system</summary>" in folded and "Fedora, RHEL, Rocky Linux, AlmaLinux" in folded
    assert "<h3>Andra Linux-system</h3>" in folded and "<code>sudo systemctl enable --now firewalld</code>" in folded
    assert "<h3>Ubuntu, Linux Mint, Pop!_OS</h3>" in folded  # the derivatives with steps of their own
    ubuntu = evaluate(policy, {**facts, "os": {**facts["os"], "id": "ubuntu", "id_like": ["debian"]}})
    folded = render_html(policy, facts, ubuntu, "en").split('id="check-firewall"')[1].split("<li class=")[0]
    assert "<h3>Debian</h3>" in folded and "<h3>Debian, Ubuntu" not in folded
    text = render_text(policy, evaluation, "sv")
    assert "sudo apt install ufw" in text and "firewalld" not in text and "auditagent check --html" in text


def test_a_remediation_key_that_is_not_a_platform_is_an_error(tmp_path) -> None:
    from auditagent.policy import PolicyError

    text = (REPO / "policies" / "baseline.yaml").read_text(encoding="utf-8").replace("      linux.suse:", "      linx.suse:", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as exc:
        load_policy(bad)
    assert any("linx.suse" in str(p) and "unknown platform" in str(p) for p in exc.value.problems)
