"""Where a long unit or host name may break across lines, as markup for a page.

A heading that holds a 63-character host name or a long Danish unit name must wrap on
a phone. Browsers break text at spaces and after most hyphens, never at a name's other
separators (``.`` in ``laptop-7.kk.dk``, ``_``, ``/`` in a unit path), so without help
the browser's last resort (``overflow-wrap: anywhere``) cuts a name mid-word with
nothing showing the cut. :func:`breakable` marks a break opportunity (``<wbr>``, which
is neither copied nor read aloud) after each such separator, so a name breaks where it
is itself divided. Words are left whole: a browser with hyphenation dictionaries
hyphenates them (``hyphens: auto`` with the page's ``lang``, in the stylesheet); one
without them (Debian's Chromium has none) still cuts only a run that is wider than the
line on its own. Soft hyphens in the text would hyphenate everywhere, but they are
copied with the name (Chromium keeps U+00AD on the clipboard), and an officer pastes a
unit name into a filter or ``--unit``.
"""
from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup, escape

from auditagent.textsafe import neutralise

SEPARATORS = "-._/"
# One separator (or a run of them) followed by something other than a space, which is a
# break opportunity already.
_AFTER_SEPARATOR = re.compile(r"(?<=[-._/])(?=[^-._/\s])")
WBR = Markup("<wbr>")


def breakable(name: Any) -> Markup:
    """``name`` as escaped markup with ``<wbr>`` after each separator that is followed by
    more of the name. Invisible and direction-changing characters are made visible first,
    as for every other value a page prints (the result is markup, which the template's
    ``finalize`` leaves alone)."""
    text = neutralise("" if name is None else name)
    return WBR.join(escape(part) for part in _AFTER_SEPARATOR.split(text))
