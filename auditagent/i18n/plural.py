"""Messages that carry a count: a catalogue holds two forms of each, ``KEY.one`` and
``KEY.other``, and the count picks one ("1 godkänd", "2 godkända"). A message carries a
count when its text has ``{count}`` or ``{n}`` (tests/test_plurals.py holds every
catalogue to that). Swedish, Danish and English agree on the rule: *one* for exactly 1,
*other* for everything else (0, 2, 1.5, a count that is not a number)."""
from __future__ import annotations

from typing import Any, Mapping

COUNT_ARGS = ("count", "n")
FORMS = ("one", "other")


def plural_form(count: Any) -> str:
    """'one' or 'other' for ``count``."""
    try:
        return "one" if float(count) == 1 else "other"
    except (TypeError, ValueError):
        return "other"


def plural_key(key: str, count: Any) -> str:
    """The catalogue key of ``key``'s form for ``count``: ``key.one`` or ``key.other``."""
    return f"{key}.{plural_form(count)}"


def count_in(args: Mapping[str, Any] | None) -> Any:
    """The count among a message's arguments (None if it has none)."""
    for name in COUNT_ARGS:
        if args and name in args:
            return args[name]
    return None
