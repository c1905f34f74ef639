"""Structured logs to stderr; quiet by default."""

from __future__ import annotations

import logging

import structlog


def configure(level: str = "info") -> None:
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=numeric, format="%(message)s")
    # Plain tracebacks without locals: the rich formatter took seconds of event-loop CPU per
    # error under load, and locals would put API keys into the log.
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper("iso"),
                    structlog.dev.ConsoleRenderer(
                        colors=False, exception_formatter=structlog.dev.plain_traceback)],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
    )
