"""Key=value log lines for the harness, ``make dev`` and the toolchain command.

Owns: one ``logging.Formatter`` that renders a record's ``extra=`` fields after the message,
Kubernetes style (``Started process name=etcd pid=123``), and ``setup()`` to install it.
Must not: be called from library code; only entry points (``make dev``, the toolchain command)
call ``setup()``, while tests keep pytest's own log capture.
"""

from __future__ import annotations

import logging
import sys
from typing import ClassVar, TextIO

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def _quote(value: object) -> str:
    text = str(value)
    return f'"{text}"' if (not text or any(c in text for c in ' ="')) else text


class KeyValueFormatter(logging.Formatter):
    """``HH:MM:SS LEVEL logger: Message key=value ...``."""

    default_time_format: ClassVar[str] = "%H:%M:%S"  # type: ignore[misc]

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The standard line, then every ``extra=`` field as ``key=value``."""
        line = super().format(record)
        extras = " ".join(
            f"{key}={_quote(value)}"
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        )
        return f"{line} {extras}" if extras else line


def setup(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Send logs to ``stream`` (stderr) as key=value lines; idempotent. For entry points only."""
    logger = logging.getLogger()
    logger.setLevel(level)
    if any(isinstance(h.formatter, KeyValueFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    logger.addHandler(handler)
