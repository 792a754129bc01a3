"""Text that came from a device, made safe to show — one definition for the agent's
self-check, the dashboard, the exports and anything else that shows such text.

* :func:`fill` puts values into one of *our* message templates. Only plain ``{name}``
  fields are replaced, in one pass: no format specs, no attribute or index access, and
  a value is never read as a template itself. A device's text is data, never a format
  string (``str.format`` on ``{a:>300000000}`` builds a 300 MB string; on
  ``{a.__class__}`` it reads object internals).
* :func:`neutralise` makes invisible and direction-changing characters visible as
  ``<U+202E>``: C0/C1 controls (but tab and newline), the Unicode bidi embeddings,
  overrides and isolates, zero-width and other invisible formatting characters, and
  lone surrogates. A hostname like ``"pc-\\u202egpj.exe"`` can then not pass itself off
  as another on a page, in a terminal or in a spreadsheet. :func:`json_shown` does the
  same for JSON text, as escapes, so what is shown still parses to the exact value.

Standard library only: this module ships on laptops.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any, Mapping

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Bidi controls (embeddings, overrides, isolates, marks) and invisible characters that
# change how text looks without showing themselves.
_BIDI_AND_INVISIBLE = frozenset(
    [0x061C, 0x200B, 0x200E, 0x200F, 0x2028, 0x2029, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0xFEFF]
    + list(range(0x202A, 0x202F)) + list(range(0x2066, 0x206A)) + list(range(0x206A, 0x2070)))
_KEEP = frozenset("\t\n")


def fill(template: str, values: Mapping[str, Any] | None = None) -> str:
    """``template`` with each ``{name}`` that ``values`` has replaced by ``str(value)``;
    any other brace text stays as it is."""
    if not values:
        return template
    return _FIELD.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template)


def _unsafe(ch: str) -> bool:
    if ch in _KEEP:
        return False
    o = ord(ch)
    if o < 0x20 or 0x7F <= o < 0xA0 or o in _BIDI_AND_INVISIBLE or 0xD800 <= o <= 0xDFFF:
        return True
    return unicodedata.category(ch) == "Cf" and o not in (0x200C, 0x200D, 0x00AD)  # ZWNJ/ZWJ/soft hyphen shape words


class _Shown(dict):  # type: ignore[type-arg]
    """``str.translate``'s table for :func:`neutralise`: each code point to itself or to
    ``<U+XXXX>``, worked out by :func:`_unsafe` the first time it is met (the Basic
    Multilingual Plane only is kept, so the table stays small whatever a device sends)."""

    def __missing__(self, o: int) -> str:
        shown = f"<U+{o:04X}>" if _unsafe(chr(o)) else chr(o)
        if o < 0x10000:
            self[o] = shown
        return shown


_SHOWN = _Shown()


def neutralise(text: Any) -> str:
    """``str(text)`` with every control, bidi and invisible formatting character shown as
    ``<U+XXXX>`` (tab and newline are kept)."""
    s = text if isinstance(text, str) else str(text)
    # Every character _unsafe marks is one str.isprintable refuses (Unicode's "Other" and
    # line/paragraph separators), so a printable text, ASCII or not, is shown as it is.
    if s.isprintable():
        return s
    return s.translate(_SHOWN)  # one pass in C (a name with a no-break space, a tab …)


def _json_escape(ch: str) -> str:
    o = ord(ch)
    if o > 0xFFFF:  # JSON writes these as a surrogate pair
        o -= 0x10000
        return f"\\u{0xD800 + (o >> 10):04x}\\u{0xDC00 + (o & 0x3FF):04x}"
    return f"\\u{o:04x}"


def json_shown(json_text: str) -> str:
    """JSON text with each character :func:`neutralise` would mark written as a ``\\uXXXX``
    escape instead: the very same JSON value, safe on a terminal or a page. (Outside
    strings JSON text is plain ASCII, so every such character is inside a string.)"""
    if json_text.isascii():
        return json_text  # json.dumps already escaped every control character in it
    return "".join(_json_escape(ch) if _unsafe(ch) else ch for ch in json_text)


def is_clean(text: str) -> bool:
    """True if :func:`neutralise` would leave ``text`` unchanged."""
    return neutralise(text) == text


__all__ = ["fill", "neutralise", "json_shown", "is_clean"]
