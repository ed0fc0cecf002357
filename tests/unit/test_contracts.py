"""Event contracts: strict, immutable, integer money, and poison named for what it is."""

from __future__ import annotations

import json
import uuid

import pytest
from pydantic import ValidationError

from shared_events import (
    EVENT_MODELS,
    InvalidEvent,
    NotJson,
    OrderPlaced,
    UnknownEventType,
    decode,
    encode,
)
from shared_events.codec import PRODUCER_OF, header_value
from shared_events.common import Address, LineItem
from shared_events.envelope import validate_json
from shared_events.order import OrderPlacedPayload
from shared_events.topics import ALL_TOPICS, dlq_topic, events_topic


def placed(**overrides: object) -> OrderPlaced:
    payload = OrderPlacedPayload(
        customer_id="c1",
        items=(LineItem(sku="A-1", qty=2, unit_price_minor=250),),
        total_minor=500,
        card_token="tok_ok",
        ship_to=Address(country="US"),
    )
    return OrderPlaced.create(order_id=uuid.uuid4(), producer="order", payload=payload, **overrides)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field_and_sets_key_and_headers() -> None:
    event = placed(traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    rec = encode(event)
    assert rec.key == str(event.order_id).encode()
    assert header_value(rec.headers, "event_type") == "OrderPlaced"
    assert header_value(rec.headers, "event_id") == str(event.event_id)
    assert header_value(rec.headers, "traceparent") == event.traceparent
    assert decode(rec.value, rec.headers) == event


def test_envelope_fields_of_design() -> None:
    raw = json.loads(encode(placed()).value)
    assert set(raw) == {
        "event_id",
        "event_type",
        "schema_version",
        "occurred_at",
        "order_id",
        "causation_id",
        "correlation_id",
        "producer",
        "traceparent",
        "payload",
    }
    assert raw["occurred_at"].endswith("Z")


def test_events_are_frozen() -> None:
    event = placed()
    with pytest.raises(ValidationError):
        event.producer = "x"  # type: ignore[misc]


@pytest.mark.parametrize("bad_total", [500.0, "500", 499])
def test_money_is_exact_integer_minor_units(bad_total: object) -> None:
    raw = json.loads(encode(placed()).value)
    raw["payload"]["total_minor"] = bad_total
    with pytest.raises(InvalidEvent, match="total_minor"):
        decode(json.dumps(raw).encode())


def test_strict_types_refuse_coercion() -> None:
    raw = json.loads(encode(placed()).value)
    raw["payload"]["items"][0]["qty"] = "2"
    with pytest.raises(InvalidEvent, match="qty"):
        decode(json.dumps(raw).encode())


def test_unknown_fields_are_refused() -> None:
    raw = json.loads(encode(placed()).value)
    raw["payload"]["coupon"] = "FREE"
    with pytest.raises(InvalidEvent, match="coupon"):
        decode(json.dumps(raw).encode())


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (b"\x00\xff", NotJson),
        (b"{not json", NotJson),
        (None, NotJson),
        (b"[]", InvalidEvent),
        (b'{"event_type": "OrderPlaced", "schema_version": 2}', UnknownEventType),
        (b'{"event_type": "Refunded", "schema_version": 1}', UnknownEventType),
        (b'{"schema_version": 1}', UnknownEventType),
    ],
)
def test_poison_raises_its_own_error(value: bytes | None, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode(value)


def test_unknown_type_is_not_a_key_error() -> None:
    with pytest.raises(UnknownEventType) as info:
        decode(b'{"event_type": "OrderShipped", "schema_version": 1}')
    assert not isinstance(info.value, KeyError)
    assert "OrderShipped" in info.value.reason


def test_every_event_has_a_producer_and_topic() -> None:
    assert set(PRODUCER_OF) == set(EVENT_MODELS.values())
    for model, producer in PRODUCER_OF.items():
        assert events_topic(producer) in ALL_TOPICS, model
    assert dlq_topic("payment") == "payment.dlq"


def test_causation_and_correlation_follow_the_cause() -> None:
    first = placed()
    second = OrderPlaced.create(
        order_id=first.order_id, producer="order", payload=first.payload, cause=first
    )
    assert second.causation_id == first.event_id
    assert second.correlation_id == first.correlation_id == first.order_id


def test_a_nul_is_refused_however_the_model_is_made() -> None:
    """validate_json checks the bytes once for the escape; a model built in Python, or JSON
    that spells a backslash before `u0000`, still goes through the field-by-field check."""
    with pytest.raises(ValidationError, match="NUL character"):
        validate_json(Address, b'{"country": "US", "city": "Sprin\\u0000gfield"}')
    with pytest.raises(ValidationError, match="NUL character"):
        Address(country="US", city="Sprin\x00gfield")
    with pytest.raises(ValidationError, match="NUL character"):
        Address.model_validate({"country": "US", "city": "x\x00"})
    literal = validate_json(Address, b'{"country": "US", "city": "a\\\\u0000b"}')
    assert literal.city == "a\\u0000b"
    assert validate_json(Address, b'{"country": "US", "city": "ok"}') == Address(
        country="US", city="ok"
    )
