"""Dates as PowerShell's serialisers write them (pure).

Windows PowerShell 5.1's ``ConvertTo-Json`` writes a DateTime as ``"/Date(<ms since 1970 UTC>)/"``
(``"\\/Date(…)\\/"`` in the raw JSON text, an offset suffix on some values); PowerShell 7 and
our snapshot write ISO 8601. Localised display text is never read here.
"""
from __future__ import annotations

import datetime as _dt
import re

from auditagent.isotime import parse_iso_moment

MS_DATE = re.compile(r"/?\\?/Date\((-?\d+)(?:[+-]\d{4})?\)\\?/?")


def parse_moment(value: object) -> _dt.datetime | None:
    """A UTC moment from ``/Date(ms)/`` or ISO 8601 (no offset: UTC), else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if m := MS_DATE.fullmatch(text):
        try:
            return _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(milliseconds=int(m.group(1)))
        except OverflowError:
            return None
    return parse_iso_moment(text)
