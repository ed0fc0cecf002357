"""One registry from (event_type, schema_version) to model, and the Kafka encode/decode pair.

Decoding never raises anything but a `PoisonMessage` subclass, so the consumer can set a
bad message aside with its reason instead of crashing or blocking the partition.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from pydantic import ValidationError

from shared_events.envelope import Event, validate_json
from shared_events.fulfillment import FulfillmentFailed, ShipmentScheduled
from shared_events.inventory import InventoryRejected, InventoryReleased, InventoryReserved
from shared_events.order import OrderPlaced
from shared_events.payment import PaymentCharged, PaymentFailed, PaymentRefunded

__all__ = [
    "EVENT_MODELS",
    "InvalidEvent",
    "KafkaRecord",
    "NotJson",
    "PoisonMessage",
    "UnknownEventType",
    "decode",
    "encode",
    "header_value",
    "model_from_headers",
]

Headers = list[tuple[str, bytes]]

EVENT_MODELS: dict[tuple[str, int], type[Event]] = {
    (m.TYPE, m.VERSION): m
    for m in (
        OrderPlaced,
        InventoryReserved,
        InventoryRejected,
        InventoryReleased,
        PaymentCharged,
        PaymentFailed,
        PaymentRefunded,
        ShipmentScheduled,
        FulfillmentFailed,
    )
}


class PoisonMessage(Exception):
    """A message that can never be processed as it is; `reason` says why."""

    kind = "poison"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotJson(PoisonMessage):
    kind = "not_json"


class UnknownEventType(PoisonMessage):
    kind = "unknown_type"

    def __init__(self, event_type: object, version: object) -> None:
        known = ", ".join(f"{t} v{v}" for t, v in sorted(EVENT_MODELS))
        super().__init__(f"unknown event type {event_type!r} version {version!r}; known: {known}")
        self.event_type = event_type
        self.version = version


class InvalidEvent(PoisonMessage):
    kind = "invalid"


class KafkaRecord:
    """What goes on the wire for one event."""

    __slots__ = ("headers", "key", "value")

    def __init__(self, key: bytes, value: bytes, headers: Headers) -> None:
        self.key = key
        self.value = value
        self.headers = headers


def encode(event: Event) -> KafkaRecord:
    headers: Headers = [
        ("event_type", event.event_type.encode()),
        ("schema_version", str(event.schema_version).encode()),
        ("event_id", str(event.event_id).encode()),
        ("producer", event.producer.encode()),
    ]
    if event.traceparent:
        headers.append(("traceparent", event.traceparent.encode()))
    return KafkaRecord(
        key=str(event.order_id).encode(),
        value=event.model_dump_json().encode(),
        headers=headers,
    )


def header_value(headers: Iterable[tuple[str, bytes | None]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name and value is not None:
            return value.decode("utf-8", "replace")
    return None


def _validation_summary(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        parts.append(f"{loc}: {e['msg']}")
    more = f" (+{err.error_count() - 5} more)" if err.error_count() > 5 else ""
    return "; ".join(parts) + more


def model_from_headers(headers: Sequence[tuple[str, bytes | None]] | None) -> type[Event] | None:
    """The model our headers name (event_type, schema_version), if they name a known one."""
    event_type = header_value(headers, "event_type")
    version = header_value(headers, "schema_version")
    if event_type is None or version is None or not version.isdigit():
        return None
    return EVENT_MODELS.get((event_type, int(version)))


def decode(
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] | None = None,
    model: type[Event] | None = None,
) -> Event:
    """Decode a Kafka message value into its event model, or raise a PoisonMessage.

    `model` is what the headers name, when the caller has looked already."""
    if value is None:
        raise NotJson("message has no value (tombstone)")
    model = model or model_from_headers(headers)
    if model is not None:
        # The headers name the model: one parse. The body's own event_type and
        # schema_version are literals of that model, so a header that lies fails validation.
        try:
            return validate_json(model, value)
        except ValidationError:
            pass  # fall through for the precise reason (not JSON, other type...)
    try:
        raw = json.loads(value.decode("utf-8"))  # the contract is UTF-8: never guess
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotJson(f"value is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidEvent(f"value is JSON {type(raw).__name__}, expected an object")
    event_type, version = raw.get("event_type"), raw.get("schema_version")
    if not isinstance(event_type, str) or not isinstance(version, int):
        raise UnknownEventType(event_type, version)
    model = EVENT_MODELS.get((event_type, version))
    if model is None:
        raise UnknownEventType(event_type, version)
    try:
        return validate_json(model, value)
    except ValidationError as exc:
        raise InvalidEvent(
            f"{event_type} v{version} failed validation: {_validation_summary(exc)}"
        ) from None


# Which service produces each event: its topic is that service's events topic.
PRODUCER_OF: dict[type[Event], str] = {
    OrderPlaced: "order",
    InventoryReserved: "inventory",
    InventoryRejected: "inventory",
    InventoryReleased: "inventory",
    PaymentCharged: "payment",
    PaymentFailed: "payment",
    PaymentRefunded: "payment",
    ShipmentScheduled: "fulfillment",
    FulfillmentFailed: "fulfillment",
}
__all__ += ["PRODUCER_OF"]
