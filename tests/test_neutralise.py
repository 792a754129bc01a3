"""neutralise (auditagent/textsafe.py) shows every control, bidi and invisible character
as <U+XXXX>, and takes its fast paths (a printable text as it is; the rest through a
translate table) without changing a single character's outcome: checked against the
definition, character by character, over every code point."""
from __future__ import annotations

from auditagent import textsafe
from auditagent.textsafe import neutralise


def by_definition(s: str) -> str:
    return "".join(f"<U+{ord(ch):04X}>" if textsafe._unsafe(ch) else ch for ch in s)


EVERY = "".join(chr(o) for o in range(0x110000))


def test_a_printable_text_holds_nothing_to_show() -> None:
    # The fast path's premise: no character the definition marks is printable.
    assert [hex(ord(ch)) for ch in EVERY if ch.isprintable() and textsafe._unsafe(ch)] == []


def test_every_code_point_is_shown_as_the_definition_says() -> None:
    assert neutralise(EVERY) == by_definition(EVERY)
    # Alone too, and again once the table knows it (the astral planes are never kept).
    for o in (0x09, 0x0A, 0x1B, 0x7F, 0x85, 0xA0, 0xAD, 0x061C, 0x200B, 0x200D, 0x202E, 0x2066, 0xD800, 0xFEFF,
              0xE0001, 0x1D173, 0x1F600, 0x10FFFF):
        assert neutralise(chr(o)) == by_definition(chr(o)) == neutralise(chr(o))
    assert max(textsafe._SHOWN) < 0x10000


def test_values_of_every_kind() -> None:
    for value, shown in [("87,5\u00a0%", "87,5\u00a0%"), ("a\tb\nc", "a\tb\nc"), ("pc-\u202egpj.exe", "pc-<U+202E>gpj.exe"),
                         ("\ud800x", "<U+D800>x"), ("", ""), ("Socialförvaltningen", "Socialförvaltningen"),
                         (12, "12"), (None, "None"), ("\x1b[2J", "<U+001B>[2J")]:
        assert neutralise(value) == shown
