"""Structured logging: JSON lines when not on a terminal, readable columns when on one.

Every log line inside message handling carries `order_id`, `event_id` and `event_type`,
bound through contextvars by the consumer loop (see `bound_event`).
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar, Token
from typing import Any

import structlog

__all__ = ["bound_event", "configure_logging", "for_event", "get_logger"]


def configure_logging(
    level: str = "INFO", fmt: str = "auto", service: str | None = None, instance: str = ""
) -> None:
    """Idempotent; `fmt` is json, console or auto (console on a terminal)."""
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"SAGA_LOG_LEVEL={level!r} is not a log level (DEBUG, INFO, WARNING...)")
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())

    def add_service(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
        if service:
            event.setdefault("service", service)  # contextvars do not reach other threads
        if instance:
            event.setdefault("instance", instance)
        return event

    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_event,
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


# The event being handled, for every log line inside: one ContextVar set per event is far
# cheaper than binding three structlog contextvars, and only log lines that are actually
# emitted pay for turning it into fields.
_Current = tuple[object, object, object, object]
_CURRENT: ContextVar[_Current | None] = ContextVar("saga_event", default=None)


def _add_event(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    current = _CURRENT.get()
    if current is not None:
        order_id, event_id, event_type, traceparent = current
        event_dict.setdefault("order_id", None if order_id is None else str(order_id))
        event_dict.setdefault("event_id", None if event_id is None else str(event_id))
        event_dict.setdefault("event_type", event_type)
        if isinstance(traceparent, str) and len(traceparent) == 55:
            event_dict.setdefault("trace_id", traceparent[3:35])
    return event_dict


class _Bound:
    __slots__ = ("_token", "_value")

    def __init__(self, value: _Current) -> None:
        self._value = value
        self._token: Token[_Current | None] | None = None

    def __enter__(self) -> None:
        self._token = _CURRENT.set(self._value)

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _CURRENT.reset(self._token)


def for_event(event: Any) -> _Bound:
    """Log lines inside carry the event's order_id, event_id, event_type and trace_id."""
    return _Bound((event.order_id, event.event_id, event.event_type, event.traceparent))


def bound_event(
    order_id: object, event_id: object, event_type: object, traceparent: object = None
) -> _Bound:
    return _Bound((order_id, event_id, event_type, traceparent))
