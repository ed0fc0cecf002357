"""The envelope every message carries, and the base class of every event.

An event *is* its envelope: each event class fixes `event_type` and `schema_version` with
literals and types `payload`, so one pydantic model validates the whole message.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shared_events.ids import new_id

__all__ = ["Contract", "Event", "new_event_id", "utcnow"]


class Contract(BaseModel):
    """Base of every contract model: immutable, strict types, unknown fields refused."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_event_id() -> uuid.UUID:
    return new_id()


class Event(Contract):
    event_id: uuid.UUID
    event_type: str
    schema_version: int
    occurred_at: AwareDatetime
    order_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    correlation_id: uuid.UUID
    producer: str = Field(min_length=1, max_length=64)
    traceparent: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
    )
    payload: Contract

    TYPE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 0

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @classmethod
    def create(
        cls,
        *,
        order_id: uuid.UUID,
        producer: str,
        payload: Any,
        cause: Event | None = None,
        traceparent: str | None = None,
    ) -> Self:
        """A new event; `cause` gives causation, correlation and trace context."""
        return cls(
            event_id=new_event_id(),
            event_type=cls.TYPE,
            schema_version=cls.VERSION,
            occurred_at=utcnow(),
            order_id=order_id,
            causation_id=cause.event_id if cause else None,
            correlation_id=cause.correlation_id if cause else order_id,
            producer=producer,
            traceparent=cause.traceparent if cause else traceparent,
            payload=payload,
        )
