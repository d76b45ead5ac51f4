"""Structured logs: one event per line, console by default, JSON on request.

Never log a secret or a message body: log ids, channels, statuses, counts.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import structlog

MESSAGES = "postline.messages"


def message_log() -> Any:
    """The logger of state changes: one line per change, key=value or JSON."""
    return structlog.stdlib.get_logger(MESSAGES)


def message_log_enabled() -> bool:
    """Checked before a hot loop logs: at WARNING it costs one comparison."""
    return logging.getLogger(MESSAGES).isEnabledFor(logging.INFO)


def configure(*, level: str = "INFO", fmt: str = "console", file: Path | None = None) -> None:
    """Routes stdlib logging and structlog through one renderer.

    `file`, when given, gets the same lines (never coloured) besides stderr.
    """
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        # Level first: a disabled line costs one comparison, not a render.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

    def formatter(colors: bool) -> logging.Formatter:
        renderer: structlog.types.Processor = (
            structlog.processors.JSONRenderer()
            if fmt == "json"
            else structlog.dev.ConsoleRenderer(colors=colors)
        )
        return structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )

    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(formatter(colors=sys.stderr.isatty()))
    handlers: list[logging.Handler] = [stderr]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(file)
        to_file.setFormatter(formatter(colors=False))
        handlers.append(to_file)
    root = logging.getLogger()
    root.handlers.clear()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
