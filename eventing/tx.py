"""What a handler gets: the open transaction and a way to emit events through the outbox."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import psycopg

from eventing.outbox import OutboxRow, row_for_event
from eventing.settings import Settings
from shared_events.envelope import Contract, Event, utcnow
from shared_events.topics import events_topic

__all__ = ["Handler", "Handlers", "Tx"]

E = TypeVar("E", bound=Event)


class Tx:
    """One local transaction: the handler's effect and its outbox rows commit together."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        service: str,
        settings: Settings,
        cause: Event | None = None,
    ) -> None:
        self.conn = conn
        self.service = service
        self.settings = settings
        self.cause = cause
        self.now: datetime = utcnow()
        self.rows: list[OutboxRow] = []

    def emit(self, cls: type[E], payload: Contract, order_id: Any = None) -> E:
        """Create an event caused by the one being handled, and queue it for the outbox."""
        if order_id is None:
            if self.cause is None:
                raise ValueError("emit() outside a handler needs an explicit order_id")
            order_id = self.cause.order_id
        event = cls.create(
            order_id=order_id, producer=self.service, payload=payload, cause=self.cause
        )
        self.rows.append(row_for_event(event, events_topic(self.service)))
        return event

    def emit_event(self, event: Event) -> None:
        self.rows.append(row_for_event(event, events_topic(self.service)))


Handler = Callable[[Tx, Any], None]
Handlers = Mapping[type[Event], Handler]
