"""Warnings that libraries log while reading a file: kept for the error message, never printed."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(" ".join(record.getMessage().split()))


@contextlib.contextmanager
def captured(*loggers: str) -> Iterator[list[str]]:
    """Collect (and silence) what the named loggers say at WARNING and above, as one-line messages."""
    collector = _Collector()
    saved = []
    for name in loggers:
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate))
        logger.addHandler(collector)
        logger.propagate = False
    try:
        yield collector.messages
    finally:
        for logger, propagate in saved:
            logger.removeHandler(collector)
            logger.propagate = propagate


def said(messages: list[str], library: str, chars: int = 200) -> str:
    """``; tifffile said: ...`` for an error message, or nothing."""
    text = " | ".join(messages)
    return f"; {library} said: {text[:chars]}" if text else ""
