"""The agent's log: structlog, ``key=value`` lines on stderr for people (JSON with
``AUDITAGENT_LOG_FORMAT=json`` for log shippers).

Never a secret: values of keys that name one (token, private key, password …) are
replaced before rendering, and so is anything that looks like PEM private-key text,
whatever key it came under.
"""
from __future__ import annotations

import os
import re
import sys
from typing import Any

import structlog

SECRET_KEYS = re.compile(r"(token|secret|password|passwd|private|authorization|cookie|api_key|credential)", re.I)
PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S)
REDACTED = "[redacted]"
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def _redact_value(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str) and "PRIVATE KEY" in value:
        return PEM_PRIVATE.sub(REDACTED, value)
    return value


def redact(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if SECRET_KEYS.search(key):
            event[key] = REDACTED
        else:
            event[key] = _redact_value(event[key])
    return event


class StderrLogger:
    """Writes each line to ``sys.stderr`` as it is *at that moment*: a logger made while a
    test harness (or a daemon's redirect) had replaced stderr never writes to a closed file."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def stderr_logger_factory(*_args: Any) -> StderrLogger:
    return StderrLogger()


def configure(level: str | None = None, fmt: str | None = None, stream: Any = None) -> None:
    level = (level or os.environ.get("AUDITAGENT_LOG_LEVEL") or "info").lower()
    fmt = (fmt or os.environ.get("AUDITAGENT_LOG_FORMAT") or "keyvalue").lower()
    renderer: Any = structlog.processors.JSONRenderer() if fmt == "json" else \
        structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"], drop_missing=True)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level, 20)),
        logger_factory=structlog.PrintLoggerFactory(file=stream) if stream is not None else stderr_logger_factory,
        cache_logger_on_first_use=False,
    )


def get_logger(**context: Any) -> Any:
    return structlog.get_logger("auditagent").bind(**context)
