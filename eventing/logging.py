"""Structured logging: JSON lines when not on a terminal, readable columns when on one.

Every log line inside message handling carries `order_id`, `event_id` and `event_type`,
bound through contextvars by the consumer loop (see `bound_event`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

__all__ = ["bound_event", "configure_logging", "for_event", "get_logger"]


def configure_logging(level: str = "INFO", fmt: str = "auto", service: str | None = None) -> None:
    """Idempotent; `fmt` is json, console or auto (console on a terminal)."""
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"SAGA_LOG_LEVEL={level!r} is not a log level (DEBUG, INFO, WARNING...)")
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())

    def add_service(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
        if service:
            event.setdefault("service", service)  # contextvars do not reach other threads
        return event

    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_service,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    if use_json:
        processors.append(structlog.processors.JSONRenderer())
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name) if name else structlog.get_logger()


def for_event(event: Any) -> Any:
    """`bound_event` for an Event: log lines inside carry its order_id, event_id and type."""
    return bound_event(event.order_id, event.event_id, event.event_type)


@contextmanager
def bound_event(order_id: object, event_id: object, event_type: object) -> Iterator[None]:
    with structlog.contextvars.bound_contextvars(
        order_id=str(order_id) if order_id is not None else None,
        event_id=str(event_id) if event_id is not None else None,
        event_type=event_type,
    ):
        yield
