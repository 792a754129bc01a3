"""Messages that carry a count ({count} or {n}) exist in both forms, ``KEY.one`` and
``KEY.other``, in every catalogue (the agent's sv/da/en and the dashboard's, digests
included), and the count picks the form: "1 godkänd", "2 godkända"."""
from __future__ import annotations

import re

import pytest

from auditagent.i18n import LANGS, catalog, translate
from auditagent.i18n.plural import COUNT_ARGS, FORMS, plural_form, plural_key
from server.i18n_web import MESSAGES, Translator

COUNTED = re.compile(r"\{(?:%s)\}" % "|".join(COUNT_ARGS))


def catalogues() -> dict[str, dict[str, str]]:
    found = {f"agent/{lang}": {k: v for k, v in catalog(lang).items() if isinstance(v, str)} for lang in LANGS}
    found |= {f"dashboard/{lang}": MESSAGES[lang] for lang in MESSAGES}
    return found


def plural_problems(messages: dict[str, str]) -> list[str]:
    """What is wrong with a catalogue's count messages (empty: nothing)."""
    problems = []
    for key, text in messages.items():
        stem, _, form = key.rpartition(".")
        if COUNTED.search(text) and form not in FORMS:
            problems.append(f"{key}: carries a count but has no one/other forms: {text!r}")
        if form in FORMS:
            missing = [f for f in FORMS if f"{stem}.{f}" not in messages]
            if missing:
                problems.append(f"{key}: lacks {stem}.{missing[0]}")
            if stem in messages:
                problems.append(f"{stem}: both a plain message and one/other forms")
    return problems


@pytest.mark.parametrize("name", sorted(catalogues()))
def test_every_count_message_has_both_forms(name: str) -> None:
    problems = plural_problems(catalogues()[name])
    assert not problems, "\n".join(problems)


def test_the_check_fails_on_a_count_message_without_both_forms() -> None:
    assert plural_problems({"x": "{count} godkända"})
    assert plural_problems({"x.other": "{n} dagar"})
    assert not plural_problems({"x.one": "{n} dag", "x.other": "{n} dagar", "y": "{days} dagar"})


def test_the_rule() -> None:
    assert [plural_form(n) for n in (1, 1.0, "1")] == ["one"] * 3
    assert [plural_form(n) for n in (0, 2, 21, 1.5, None, "x")] == ["other"] * 6
    assert plural_key("summary.passed", 1) == "summary.passed.one"


@pytest.mark.parametrize("lang, one, other", [
    ("sv", "1 säkerhetsuppdatering väntar", "3 säkerhetsuppdateringar väntar"),
    ("da", "1 sikkerhedsopdatering venter", "3 sikkerhedsopdateringer venter"),
    ("en", "1 security update is waiting", "3 security updates are waiting")])
def test_agent_messages_agree_with_their_count(lang: str, one: str, other: str) -> None:
    assert translate("patches.pending_security", {"count": 1, "max": 0}, lang).startswith(one)
    assert translate("patches.pending_security", {"count": 3, "max": 0}, lang).startswith(other)


def test_self_check_summary_line() -> None:
    from types import SimpleNamespace

    from auditagent.view import summary_line

    ev = SimpleNamespace(counts={"pass": 1, "fail": 2, "unknown": 1, "not_applicable": 1})
    assert summary_line(ev, "sv") == "1 godkänd, 2 behöver åtgärdas, 1 kunde inte kontrolleras, 1 gäller inte"
    ev.counts["pass"] = 5
    assert summary_line(ev, "sv").startswith("5 godkända,")
    assert summary_line(ev, "da").endswith("1 er ikke relevant")


def test_dashboard_and_digest_counts() -> None:
    from server.notify.messages import render_text

    assert [Translator(lang)("devices.count", count=1) for lang in ("sv", "da", "en")] == \
        ["1 dator", "1 computer", "1 device"]
    assert Translator("sv")("devices.count", count=2) == "2 datorer"
    digest = {"lang": "sv", "unit": "IFO", "day": "2030-06-15", "ready_pct": 50.0, "events": {
        "not_ready": {"count": 1, "devices": [{"hostname": "eb1", "unit": "IFO", "state": "not_ready"}]},
        "silent": {"count": 3, "devices": [{"hostname": "eb2", "unit": "IFO", "state": "stale"}]}}}
    _, body = render_text(digest)
    assert "1 dator är inte längre redo:" in body and "  - eb1 (IFO): inte redo" in body
    assert "3 datorer har slutat rapportera:" in body and "… och 2 till." in body
    _, body = render_text(dict(digest, lang="da"))
    assert "1 computer er ikke længere klar:" in body and "3 computere er holdt op med at rapportere:" in body
