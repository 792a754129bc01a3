"""JSON logs for the collector (structlog). Events carry ids and codes only: never a
token, key material or a report's facts."""
from __future__ import annotations

import logging
import sys

import structlog

from auditagent.log import stderr_logger_factory


def configure_logging(level: str = "warning") -> None:
    lvl = getattr(logging, level.upper(), logging.WARNING)
    logging.basicConfig(level=lvl, stream=sys.stderr, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=stderr_logger_factory,
        cache_logger_on_first_use=True,
    )
