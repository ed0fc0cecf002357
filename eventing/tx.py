"""What a handler gets: the open transaction and a way to emit events through the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import psycopg

from eventing import tracing
from eventing.outbox import OutboxRow, row_for_event
from eventing.settings import Settings
from shared_events.envelope import Contract, Event, utcnow
from shared_events.topics import events_topic

__all__ = ["Handler", "Tx"]

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
        # Events the inbox could not vouch for (outside its window): the handler's own
        # records must tell whether they were already applied.
        self.unguarded: frozenset[uuid.UUID] = frozenset()
        # The trace context of each event's handling (eventing.tracing): what the events it
        # causes carry, so that the saga's spans form one tree.
        self.traceparents: dict[uuid.UUID, str] = {}

    def emit(
        self,
        cls: type[E],
        payload: Contract,
        *,
        cause: Event | None = None,
        order_id: Any = None,
        trace: str | None = None,
    ) -> E:
        """Create an event caused by `cause` (by default the one being handled), queue it.

        `trace`: the saga's trace context for an event without a cause (a timer's)."""
        cause = cause or self.cause
        if order_id is None:
            if cause is None:
                raise ValueError("emit() without a cause needs an explicit order_id")
            order_id = cause.order_id
        traceparent = self.traceparents.get(cause.event_id) if cause is not None else None
        if traceparent is None:
            traceparent = tracing.child_of(cause.traceparent if cause is not None else trace)
        event = cls.create(
            order_id=order_id,
            producer=self.service,
            payload=payload,
            cause=cause,
            traceparent=traceparent,
        )
        self.rows.append(row_for_event(event, events_topic(self.service)))
        return event

    def set_aside(
        self, event: Event, kind: str, reason: str, action: str, message: str | None = None
    ) -> bool:
        """Dead-letter `event` as `kind` without applying it and without holding its order's
        later messages back (e.g. a conflict with what the service recorded). The event
        counts as consumed: a redrive acknowledges the entry. False if already set aside."""
        from eventing.kafka.clients import Record
        from eventing.parking import Parking
        from shared_events.codec import PRODUCER_OF, encode

        rec = encode(event)
        # The handler has no Kafka position to give: the entry names the event's topic and
        # keeps the event as the codec writes it.
        source = Record(
            events_topic(PRODUCER_OF[type(event)]), -1, -1, rec.key, rec.value, rec.headers, 0
        )
        return Parking(self.service).dead(
            self.conn,
            source,
            kind=kind,
            reason=reason,
            event=event,
            blocks=False,
            message=message or f"{kind} event dead-lettered",
            action=action,
        )


# A service handles a list of events, in consumption order, inside one transaction: a batch
# on the fast path, a list of one on the slow path and in retries. One function serves both,
# so the rules are written once and set-based SQL pays off when batches are large.
Handler = Callable[[Tx, list[Any]], None]
