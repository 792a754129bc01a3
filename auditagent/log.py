"""The agent's log: ``key=value`` lines on stderr for people (JSON with
``AUDITAGENT_LOG_FORMAT=json`` for log shippers), structlog's line formats.

A few lines of our own rather than structlog itself: importing structlog (it pulls in
asyncio) cost about a quarter of the hourly run's CPU, and the agent needs only bound
context, a level filter and two renderers. The collector keeps structlog (server/logs.py).

Never a secret: values of keys that name one (token, private key, password …) are
replaced before rendering, and so is anything that looks like PEM private-key text,
whatever key it came under.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import sys
from typing import Any

SECRET_KEYS = re.compile(r"(token|secret|password|passwd|private|authorization|cookie|api_key|credential)", re.I)
PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S)
REDACTED = "[redacted]"
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
KEY_ORDER = ("timestamp", "level", "event")


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


def render_keyvalue(event: dict[str, Any]) -> str:
    """structlog's KeyValueRenderer(key_order=timestamp, level, event; drop_missing)."""
    keys = [k for k in KEY_ORDER if k in event] + [k for k in event if k not in KEY_ORDER]
    return " ".join(f"{k}={event[k]!r}" for k in keys)


def render_json(event: dict[str, Any]) -> str:
    import json

    return json.dumps(event, default=repr)


class StderrLogger:
    """Writes each line to ``sys.stderr`` as it is *at that moment*: a logger made while a
    test harness (or a daemon's redirect) had replaced stderr never writes to a closed file."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def stderr_logger_factory(*_args: Any) -> StderrLogger:
    return StderrLogger()


class _Settings:
    level = 20
    render = staticmethod(render_keyvalue)
    stream: Any = None


_settings = _Settings()


def configure(level: str | None = None, fmt: str | None = None, stream: Any = None) -> None:
    level = (level or os.environ.get("AUDITAGENT_LOG_LEVEL") or "info").lower()
    fmt = (fmt or os.environ.get("AUDITAGENT_LOG_FORMAT") or "keyvalue").lower()
    _settings.level = LEVELS.get(level, 20)
    _settings.render = render_json if fmt == "json" else render_keyvalue
    _settings.stream = stream


class Logger:
    """A bound logger: ``log.bind(k=v).info("event", k2=v2)``; settings read at each line."""

    def __init__(self, context: dict[str, Any]) -> None:
        self._context = context

    def bind(self, **context: Any) -> "Logger":
        return Logger({**self._context, **context})

    def _emit(self, level: str, event: str, fields: dict[str, Any]) -> None:
        if LEVELS[level] < _settings.level:
            return
        entry = {**self._context, **fields, "event": event, "level": level,
                 "timestamp": dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")}
        line = _settings.render(redact(None, level, entry))
        print(line, file=_settings.stream or sys.stderr, flush=True)

    def debug(self, event: str, **fields: Any) -> None:
        self._emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, fields)


def get_logger(**context: Any) -> Logger:
    return Logger(dict(context))
