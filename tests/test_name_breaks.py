"""Break opportunities in a long name (server/name_breaks.py) and sentences with a name in
them (Translator.markup): after each of the name's own separators, nowhere else, and
every name escaped, whatever a device or an administrator put in it. The browser side
(where the rendered heading breaks) is in test_dashboard_phone_fit.py."""
from __future__ import annotations

import pytest
from markupsafe import Markup

from server.i18n_web import Translator
from server.name_breaks import breakable
from server.web import make_env


@pytest.mark.parametrize("name, shown", [
    ("laptop-0042.kk.dk", "laptop-<wbr>0042.<wbr>kk.<wbr>dk"),
    ("Socialförvaltningen/IFO/Barn_och_unga", "Socialförvaltningen/<wbr>IFO/<wbr>Barn_<wbr>och_<wbr>unga"),
    ("Børne- og Ungdomsrådgivningscenter", "Børne- og Ungdomsrådgivningscenter"),  # a space breaks already
    ("a--b", "a--<wbr>b"),  # a run of separators is one place to break
    ("end.", "end."), ("-lead", "-<wbr>lead"), ("", ""),
    ("SOCIALFORVALTNINGENBOERNEOGUNGDOMSRAADGIVNINGENFAMILIELAPTOP01", "SOCIALFORVALTNINGENBOERNEOGUNGDOMSRAADGIVNINGENFAMILIELAPTOP01"),
])
def test_a_break_after_each_separator(name: str, shown: str) -> None:
    out = breakable(name)
    assert isinstance(out, Markup) and str(out) == shown
    assert out.replace("<wbr>", "") == name  # nothing else added or lost


def test_a_name_with_markup_stays_text() -> None:
    out = breakable('<img src=x onerror="alert(1)">/a&b')
    assert str(out) == "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;/<wbr>a&amp;b"


def test_invisible_characters_are_shown_as_everywhere_else() -> None:
    # A right-to-left override would make "pc-gpj.exe" read otherwise; the page shows it.
    assert str(breakable("pc-\u202egpj.exe")) == "pc-<wbr>&lt;U+202E&gt;gpj.<wbr>exe"


def test_the_template_filter_is_the_same_function() -> None:
    page = make_env().from_string("<h1>{{ name|breakable }}</h1>").render(name="<b>x</b>.y")
    assert page == "<h1>&lt;b&gt;x&lt;/<wbr>b&gt;.<wbr>y</h1>"


@pytest.mark.parametrize("lang, start", [("sv", "Beredskap"), ("da", "Parathed"), ("en", "Remote")])
def test_a_sentence_with_a_name_in_it(lang: str, start: str) -> None:
    t = Translator(lang)
    evil = '<script>alert("x")</script>/IFO.Barn'
    title = t.markup("report.title", unit=breakable(evil))
    assert isinstance(title, Markup) and title.startswith(start)
    assert "<script>" not in title and "&lt;script&gt;" in title and "/<wbr>IFO.<wbr>Barn" in title
    # The same sentence as the plain text a title bar shows, once the markers are gone.
    assert Markup(title.replace("<wbr>", "")).unescape() == t("report.title", unit=evil)
    # A plain value is escaped and made visible too, and an unknown key is text.
    assert "&lt;U+202E&gt;" in t.markup("report.title", unit="x\u202ey")
    assert str(t.markup("no.such.<key>")) == "no.such.&lt;key&gt;"
