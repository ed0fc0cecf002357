"""The envelope every message carries, and the base class of every event.

An event *is* its envelope: each event class fixes `event_type` and `schema_version` with
literals and types `payload`, so one pydantic model validates the whole message.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from shared_events.ids import new_id

__all__ = ["Contract", "Event", "UtcDatetime", "new_event_id", "utcnow", "validate_json"]


def _no_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    return isinstance(value, tuple) and any(isinstance(v, str) and "\x00" in v for v in value)


class Contract(BaseModel):
    """Base of every contract model: immutable, strict types, unknown fields refused."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    @model_validator(mode="after")
    def _storable(self, info: ValidationInfo) -> Self:
        if info.context is _NUL_FREE:
            return self
        # PostgreSQL stores no NUL character, in text or in jsonb: a message carrying one
        # would be handled by a consumer that does not store that field (inventory reserves
        # the stock) and refused by one that does (the order service records every payload).
        # Refused here, it is poison for every consumer alike, and a 422 at the API.
        for name, value in self.__dict__.items():
            if _no_nul(value):
                raise ValueError(
                    f"{name} contains a NUL character (\\u0000), which cannot be stored"
                )
        return self


# The context of a validation from JSON text that holds no NUL (see validate_json).
_NUL_FREE: dict[str, bool] = {"nul_free": True}
_NUL_ESCAPE = b"\\u0000"

ContractT = TypeVar("ContractT", bound=Contract)


def validate_json(model: type[ContractT], data: bytes) -> ContractT:
    """`model.model_validate_json(data)`, with the NUL check of every model in it done once
    on the bytes. JSON can carry a NUL only as the escape \\u0000 (a raw control character
    is not JSON), so bytes without it hold none; checking every field of every model was
    3-10 % of a service's time holding the GIL."""
    return model.model_validate_json(data, context=None if _NUL_ESCAPE in data else _NUL_FREE)


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: before year 1 in UTC
        raise ValueError(f"{value.isoformat()} is out of range once converted to UTC") from None


# Every time in a contract is held in UTC. The wire format writes offsets to the minute, so
# one of seconds (which Python allows) would come back shifted, and the conversion of a date
# at the edge of the calendar must fail as a validation error, not as an OverflowError that
# escapes the decoder.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_in_utc)]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_event_id() -> uuid.UUID:
    return new_id()


class Event(Contract):
    event_id: uuid.UUID
    event_type: str
    schema_version: int
    occurred_at: UtcDatetime
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
            # The emitter's own span context when it gives one (eventing.tracing), else the
            # cause's: never a made-up one.
            traceparent=traceparent or (cause.traceparent if cause else None),
            payload=payload,
        )
