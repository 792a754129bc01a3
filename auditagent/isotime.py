"""ISO 8601 moments as the agent writes and reads them (pure, one definition)."""
from __future__ import annotations

import datetime as dt
from typing import Any


def parse_iso_moment(value: Any) -> dt.datetime | None:
    """An ISO 8601 text (``Z`` or an offset; none means UTC) → an aware datetime, else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        t = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)
