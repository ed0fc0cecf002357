"""The AsyncAPI 3.0 document of the events, generated from the contract models.

Generated, never written by hand: the pydantic models are what every service validates
with, so the document says what is enforced, and a test fails when the committed copy
(docs/asyncapi.json, `saga schema --out docs/asyncapi.json`) no longer matches them.

Who consumes what is passed in by the caller (`saga schema` reads each service's spec):
shared_events holds contracts only and imports no service.

What JSON Schema cannot say (a total that must equal its lines, a SKU listed once, what a
service skips) is said in descriptions, so that another system can publish OrderPlaced
from this document alone.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import version as package_version
from typing import Any

from pydantic.json_schema import models_json_schema

from shared_events.codec import EVENT_MODELS, PRODUCER_OF, encode
from shared_events.common import Address, LineItem, StockLine
from shared_events.envelope import Contract, Event
from shared_events.fulfillment import (
    FulfillmentFailed,
    FulfillmentFailedPayload,
    ShipmentScheduled,
    ShipmentScheduledPayload,
)
from shared_events.inventory import (
    InventoryRejected,
    InventoryRejectedPayload,
    InventoryReleased,
    InventoryReleasedPayload,
    InventoryReserved,
    InventoryReservedPayload,
)
from shared_events.order import OrderPlaced, OrderPlacedPayload
from shared_events.payment import (
    PaymentCharged,
    PaymentChargedPayload,
    PaymentFailed,
    PaymentFailedPayload,
    PaymentRefunded,
    PaymentRefundedPayload,
)
from shared_events.topics import EVENT_TOPICS, dlq_topic

__all__ = [
    "ASYNCAPI_VERSION",
    "DLQ_HEADERS",
    "asyncapi_document",
    "event_examples",
    "message_id",
]

ASYNCAPI_VERSION = "3.0.0"
_KAFKA_BINDING = "0.5.0"
_SCHEMAS = "#/components/schemas/"

# The headers eventing/parking.py adds to the copy of a dead message on <service>.dlq.
DLQ_HEADERS: dict[str, str] = {
    "dlq.error_kind": (
        "Why it died: not_json, unknown_type, invalid (the value broke its contract: never "
        "retried), stale (too old to apply), conflict (contradicts a fact the saga record "
        "already holds), permanent (the handler refused it), transient (retries ran out)."
    ),
    "dlq.error": "The error, in words.",
    "dlq.attempts": "How many times it was tried (decimal text).",
    "dlq.source": (
        "Where the original was read: topic/partition/offset (-1/-1 when a handler set it "
        "aside and has no Kafka position to give)."
    ),
}

_INTRO = """\
Every event of the checkout saga, as it travels on Kafka. One topic per producing service;
the value is one JSON envelope (UTF-8) whose `payload` is the event's own; the key is the
`order_id`, so one order's events stay in order within a topic.

**Publishing an event yourself** (another system may publish `OrderPlaced` on
`orders.events` to start a saga; the order service then creates its record from the event):

- Key: the `order_id` as text (`str(uuid)`: lowercase, hyphenated), UTF-8.
- Value: exactly the envelope schema of the message. The models are strict: no coercion
  (`"2"` is not `2`, `500.0` is not `500`) and no unknown field at any level.
- Headers: `event_type`, `schema_version` (decimal text), `event_id`, `producer` and, when
  the envelope has one, `traceparent`, equal to the envelope's fields. Consumers route on
  them before reading the value: a header naming a type a service does not consume, or a
  `producer` equal to the consumer's own name, makes it skip the message unread.
- `producer`: your system's name, never one of ours (SERVICES): a service skips what it
  produced itself, so an `OrderPlaced` that calls itself `order` starts no saga record.
- UUIDs as text. Ours are UUIDv7 (time-ordered); any version is accepted, v7 order ids
  spare the order service a look into its archive.
- `event_id` is unique per event: a repeat is a duplicate and does nothing. A new saga
  needs a new `order_id`; the order service dead-letters a second `OrderPlaced` with other
  content for the same `order_id` as a conflict, and the first one stands.
- `occurred_at`: RFC 3339 with an offset (`Z` preferred; a time without one is refused),
  kept to the microsecond in UTC. An event older than SAGA_ARCHIVE_AFTER_S +
  SAGA_ARCHIVE_RETENTION_S (about a day by default) is dead-lettered as stale, not applied.
- A saga's first event has `causation_id` null and `correlation_id` = `order_id`; every
  later event names its cause's `event_id` and copies its `correlation_id`.
- Money: integer minor units of `currency` (cents for USD), 0 to 10^12; currency is an
  ISO 4217 code. Never a float.
- A message that is not JSON, names an unknown type or version, or breaks its schema is
  dead-lettered at once (`<service>.dlq`, and `saga dlq list`), never retried.
""".replace("SERVICES", ", ".join(EVENT_TOPICS))

# Said on the envelope's fields when the model gives no description of its own.
_ENVELOPE_FIELDS: dict[str, str] = {
    "event_id": "Unique id of this event; consumers deduplicate by it. Equals the header.",
    "event_type": "The event's name (a literal per message). Equals the header.",
    "schema_version": "The version of this event's schema, an integer. Equals the header.",
    "occurred_at": "When it happened: RFC 3339 date-time with an offset, read as UTC.",
    "order_id": "The saga's id; also the Kafka key, as text.",
    "causation_id": "event_id of the event that caused this one; null for a saga's first.",
    "correlation_id": "Copied from the cause; the first event of a saga sets its order_id.",
    "producer": "The producing system's name; a service skips events with its own name.",
    "traceparent": "W3C Trace Context of the span that produced the event, when traced.",
    "payload": "The event's facts.",
}

# What the models check in code (model validators), beyond what JSON Schema can express.
_RULES: dict[type[Contract], str] = {
    OrderPlacedPayload: (
        "Also enforced (model validator, not expressible here): total_minor equals the sum "
        "of qty x unit_price_minor over items, and a sku appears at most once in items "
        "(give it once with the total qty). total_minor is what payment charges; a sku "
        "inventory does not know rejects the order (InventoryRejected unknown_sku)."
    ),
}


def message_id(model: type[Event]) -> str:
    """The message's key in the document: its type and version (versions may coexist)."""
    return f"{model.TYPE}.v{model.VERSION}"


def asyncapi_document(consumers: Mapping[str, Iterable[type[Event]]]) -> dict[str, Any]:
    """The whole document. `consumers`: service name -> the event models it consumes."""
    models = sorted(EVENT_MODELS.values(), key=message_id)
    consumed = {service: frozenset(types) for service, types in consumers.items()}
    examples = event_examples()
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "checkout-saga events",
            "version": package_version("checkout-saga"),
            "description": _INTRO,
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:19092",
                "protocol": "kafka",
                "description": "`saga stack up`; elsewhere SAGA_KAFKA_BOOTSTRAP_SERVERS.",
            }
        },
        "channels": _channels(models),
        "operations": _operations(models, consumed),
        "components": {
            "schemas": _schemas(models),
            "messages": {
                **{message_id(m): _message(m, examples.get(m, [])) for m in models},
                "DeadLetter": _dead_letter(),
            },
        },
    }


# -- channels and operations --------------------------------------------------------------


def _topic_binding(topic: str) -> dict[str, Any]:
    return {"kafka": {"topic": topic, "bindingVersion": _KAFKA_BINDING}}


def _of(service: str, models: list[type[Event]]) -> list[type[Event]]:
    return [m for m in models if PRODUCER_OF[m] == service]


def _channels(models: list[type[Event]]) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    for service, topic in EVENT_TOPICS.items():
        channels[topic] = {
            "address": topic,
            "title": f"{service} events",
            "description": (
                f"Every event the {service} service produces, published from its outbox in "
                "order per order_id. Partitions: SAGA_TOPIC_PARTITIONS."
            ),
            "messages": {
                message_id(m): {"$ref": f"#/components/messages/{message_id(m)}"}
                for m in _of(service, models)
            },
            "bindings": _topic_binding(topic),
        }
    for service in EVENT_TOPICS:
        topic = dlq_topic(service)
        channels[topic] = {
            "address": topic,
            "title": f"{service} dead letters",
            "description": (
                f"A copy of every message the {service} service dead-lettered, untouched, "
                "with why in dlq.* headers. The entry itself (and redrive) is in the "
                "service's database: `saga dlq list`, `saga dlq redrive`."
            ),
            "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
            "bindings": _topic_binding(topic),
        }
    return channels


def _refs(topic: str, models: Iterable[type[Event]]) -> list[dict[str, str]]:
    return [{"$ref": f"#/channels/{topic}/messages/{message_id(m)}"} for m in models]


def _operations(
    models: list[type[Event]], consumed: Mapping[str, frozenset[type[Event]]]
) -> dict[str, Any]:
    ops: dict[str, Any] = {}
    for producer, topic in EVENT_TOPICS.items():
        ops[f"{producer}.send.{topic}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{topic}"},
            "summary": f"The {producer} service publishes its events (transactional outbox).",
            "messages": _refs(topic, _of(producer, models)),
        }
        for consumer in sorted(consumed):
            wanted = [m for m in _of(producer, models) if m in consumed[consumer]]
            if not wanted:
                continue
            own = " (only those another system published)" if consumer == producer else ""
            ops[f"{consumer}.receive.{topic}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{topic}"},
                "summary": f"The {consumer} service consumes these{own}.",
                "description": (
                    "Other types on the topic are skipped unread, as are messages whose "
                    "producer is this service."
                ),
                "messages": _refs(topic, wanted),
            }
    for service in EVENT_TOPICS:
        topic = dlq_topic(service)
        ops[f"{service}.send.{topic}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{topic}"},
            "summary": f"The {service} service copies what it dead-letters here.",
            "messages": [{"$ref": f"#/channels/{topic}/messages/DeadLetter"}],
        }
    return ops


# -- messages ----------------------------------------------------------------------------


def _envelope_property(model: type[Event], name: str) -> dict[str, Any]:
    """A field's schema as the model gives it; for a nullable one, its non-null branch."""
    schema = model.model_json_schema()["properties"][name]
    branches = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
    return {k: v for k, v in branches[0].items() if k not in ("title", "default")}


def _event_headers(model: type[Event]) -> dict[str, Any]:
    return {
        "type": "object",
        "description": (
            "Kafka headers, as shared_events.codec.encode writes them: UTF-8 text equal to "
            "the envelope's fields. Consumers route on them before reading the value."
        ),
        "properties": {
            "event_type": {"type": "string", "const": model.TYPE},
            "schema_version": {"type": "string", "const": str(model.VERSION)},
            "event_id": _envelope_property(model, "event_id"),
            "producer": _envelope_property(model, "producer"),
            "traceparent": {
                **_envelope_property(model, "traceparent"),
                "description": "Only when the envelope has a traceparent.",
            },
        },
        "required": ["event_type", "schema_version", "event_id", "producer"],
    }


def _key() -> dict[str, Any]:
    return {
        "kafka": {
            "key": {
                "type": "string",
                "format": "uuid",
                "description": "The order_id as text (UTF-8): one order's events, in order.",
            },
            "bindingVersion": _KAFKA_BINDING,
        }
    }


def _message(model: type[Event], examples: list[tuple[str, str, Event]]) -> dict[str, Any]:
    payload_model = model.model_fields["payload"].annotation
    doc = (model.__doc__ or "").strip()
    message: dict[str, Any] = {
        "name": model.TYPE,
        "title": f"{model.TYPE} v{model.VERSION}",
        "summary": doc or f"{model.TYPE}, published by the {PRODUCER_OF[model]} service.",
        "contentType": "application/json",
        "headers": _event_headers(model),
        "payload": {"$ref": f"{_SCHEMAS}{model.__name__}"},
        "bindings": _key(),
    }
    if isinstance(payload_model, type) and payload_model.__doc__:
        message["description"] = payload_model.__doc__.strip()
    if examples:
        message["examples"] = [
            {
                "name": name,
                "summary": summary,
                "headers": {k: v.decode() for k, v in encode(event).headers},
                "payload": event.model_dump(mode="json"),
            }
            for name, summary, event in examples
        ]
    return message


def _dead_letter() -> dict[str, Any]:
    return {
        "name": "DeadLetter",
        "title": "Dead letter",
        "summary": "A dead-lettered message, byte for byte, and why it died.",
        "description": (
            "Key, value and headers are the original's, untouched: usually one of the "
            "event envelopes, but a poison message may not be JSON at all."
        ),
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "description": "The original's headers (if any), plus the dlq.* ones.",
            "properties": {
                name: {"type": "string", "description": d} for name, d in DLQ_HEADERS.items()
            },
            "required": sorted(DLQ_HEADERS),
        },
        "payload": {"description": "The original value, as it was read."},
    }


# -- schemas -----------------------------------------------------------------------------


def _schemas(models: list[type[Event]]) -> dict[str, Any]:
    """Every model's JSON Schema, their shared parts named once in components/schemas."""
    _, top = models_json_schema(
        [(m, "validation") for m in models], ref_template=_SCHEMAS + "{model}"
    )
    schemas: dict[str, Any] = copy.deepcopy(top.get("$defs", {}))
    for model in models:
        event = schemas[model.__name__]
        # What we write and what a consumer without our headers needs: the body names its
        # type. (The model defaults them only because each class fixes them.)
        fields = list(event["properties"])
        needed = {*event.get("required", ()), "event_type", "schema_version"}
        event["required"] = [f for f in fields if f in needed]
        for name, text in _ENVELOPE_FIELDS.items():
            event["properties"].get(name, {}).setdefault("description", text)
    for contract, rules in _RULES.items():
        schema = schemas.get(contract.__name__)
        if schema is not None:
            schema["description"] = " ".join(filter(None, [schema.get("description"), rules]))
    for schema in schemas.values():
        _describe_money(schema)
    return schemas


def _describe_money(schema: dict[str, Any]) -> None:
    # Money and Currency are Annotated aliases without descriptions of their own; the
    # contracts name money fields *_minor, so the convention is what finds them.
    for name, prop in schema.get("properties", {}).items():
        if name.endswith("_minor"):
            prop.setdefault(
                "description", "Integer minor units of currency (cents for USD), never a float."
            )
        elif name == "currency":
            prop.setdefault("description", "ISO 4217 code, upper case.")


# -- examples ----------------------------------------------------------------------------

_T0 = datetime(2025, 3, 14, 15, 9, 26, tzinfo=UTC)
_TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _id(n: int, at: datetime = _T0) -> uuid.UUID:
    """A fixed UUIDv7 made at `at` (serial `n`): stable examples whose ids read as ours."""
    ms = int(at.timestamp() * 1000)
    return uuid.UUID(int=ms << 80 | 0x7 << 76 | n << 64 | 0b10 << 62 | n)


_ORDER = _id(1)
_STOCK = (StockLine(sku="GADGET-2", qty=1),)
_SHIP_TO = Address(country="US", name="Ada Lovelace", line1="1 Analytical Way", city="Boston")
_RESERVATION = _id(103)


def _event(cls: type[Event], n: int, payload: Contract, cause: Event | None) -> Event:
    """Event `n` of the example saga, caused by `cause` (as Event.create links them)."""
    at = _T0 + timedelta(milliseconds=40 * n)
    return cls(
        event_id=_id(n, at),
        event_type=cls.TYPE,
        schema_version=cls.VERSION,
        occurred_at=at,
        order_id=_ORDER,
        causation_id=cause.event_id if cause else None,
        correlation_id=cause.correlation_id if cause else _ORDER,
        producer=PRODUCER_OF[cls],
        traceparent=_TRACE,
        payload=payload,
    )


def event_examples() -> dict[type[Event], list[tuple[str, str, Event]]]:
    """One saga's events, built with the models (valid by construction): model ->
    [(name, summary, event)]. Every path's events are here, so some exclude others."""
    placed = _event(
        OrderPlaced,
        2,
        OrderPlacedPayload(
            customer_id="c-42",
            items=(LineItem(sku="GADGET-2", qty=1, unit_price_minor=4999),),
            total_minor=4999,
            currency="USD",
            card_token="tok_ok",
            ship_to=_SHIP_TO,
        ),
        None,
    )
    reserved = _event(
        InventoryReserved,
        3,
        InventoryReservedPayload(
            reservation_id=_RESERVATION,
            items=_STOCK,
            amount_minor=4999,
            currency="USD",
            expires_at=_T0 + timedelta(minutes=10),
            card_token="tok_ok",
            customer_id="c-42",
            ship_to=_SHIP_TO,
        ),
        placed,
    )
    charged = _event(
        PaymentCharged,
        5,
        PaymentChargedPayload(
            payment_id=_id(105), amount_minor=4999, currency="USD", items=_STOCK, ship_to=_SHIP_TO
        ),
        reserved,
    )
    undeliverable = _event(
        FulfillmentFailed,
        7,
        FulfillmentFailedPayload(
            reason="unserviceable_destination", detail="no carrier serves destination country ZZ"
        ),
        charged,
    )
    shipment = ShipmentScheduledPayload(
        shipment_id=_id(106),
        carrier="ExampleCarrier",
        country="US",
        items=_STOCK,
        estimated_delivery=date(2025, 3, 17),
    )
    compensation = "Compensation after FulfillmentFailed"
    return {
        OrderPlaced: [
            ("placed", "As the order service writes it", placed),
            (
                "external",
                "Published by another system: its own producer name",
                placed.model_copy(update={"producer": "storefront", "traceparent": None}),
            ),
        ],
        InventoryReserved: [("reserved", "Stock held for ten minutes", reserved)],
        InventoryRejected: [
            (
                "out_of_stock",
                "Not enough stock",
                _event(
                    InventoryRejected,
                    3,
                    InventoryRejectedPayload(reason="out_of_stock", skus=("GADGET-2",)),
                    placed,
                ),
            )
        ],
        PaymentCharged: [("charged", "Money taken", charged)],
        PaymentFailed: [
            (
                "declined",
                "Card declined",
                _event(
                    PaymentFailed,
                    5,
                    PaymentFailedPayload(reason="declined", detail="card declined"),
                    reserved,
                ),
            )
        ],
        ShipmentScheduled: [
            ("scheduled", "Shipped", _event(ShipmentScheduled, 6, shipment, charged))
        ],
        FulfillmentFailed: [("unserviceable", "Cannot deliver to ZZ", undeliverable)],
        InventoryReleased: [
            (
                "released",
                compensation,
                _event(
                    InventoryReleased,
                    8,
                    InventoryReleasedPayload(
                        reservation_id=_RESERVATION, items=_STOCK, reason="fulfillment_failed"
                    ),
                    undeliverable,
                ),
            )
        ],
        PaymentRefunded: [
            (
                "refunded",
                compensation,
                _event(
                    PaymentRefunded,
                    9,
                    PaymentRefundedPayload(
                        payment_id=_id(105),
                        refund_id=_id(109),
                        amount_minor=4999,
                        currency="USD",
                        reason="fulfillment_failed",
                    ),
                    undeliverable,
                ),
            )
        ],
    }
