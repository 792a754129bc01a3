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
    same = [k for k in en if other.get(k) == en[k]]
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
