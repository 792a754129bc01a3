"""The events a subscription can ask for."""
from __future__ import annotations

NOT_READY = "not_ready"  # a device became not ready (or due, where grace periods exist)
SILENT = "silent"  # a device stopped reporting (became stale)
EXCEPTION_EXPIRING = "exception_expiring"  # an active exception ends within N days
BELOW_TARGET = "below_target"  # the unit's readiness fell below its target %
EVENTS = (NOT_READY, SILENT, EXCEPTION_EXPIRING, BELOW_TARGET)
CHANNELS = ("email", "webhook")
