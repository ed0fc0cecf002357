"""Hypothesis strategies for the event contracts: values each field's constraints allow, and
a little beyond (any unicode, any time zone, any date), so that what the contracts accept is
explored, not only what our producers happen to send."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from shared_events.common import Address, LineItem, StockLine
from shared_events.envelope import Event
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

__all__ = [
    "addresses",
    "aware_datetimes",
    "event_of",
    "events",
    "line_items",
    "order_placed",
    "placed_payloads",
    "skus",
    "stock_lines",
    "texts",
]


def texts(min_size: int = 0, max_size: int | None = None) -> st.SearchStrategy[str]:
    """Text as anyone may send it: any code point the contracts accept (not NUL, which no
    service can store, nor a lone surrogate, which JSON cannot carry)."""
    return st.text(
        st.characters(exclude_characters="\x00", exclude_categories=["Cs"]),
        min_size=min_size,
        max_size=max_size,
    )


skus = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z")
currencies = st.one_of(st.just("USD"), st.from_regex(r"\A[A-Z]{3}\Z"))
countries = st.one_of(st.sampled_from(["US", "CA", "GB", "ZZ"]), st.from_regex(r"\A[A-Z]{2}\Z"))
tokens = st.one_of(st.sampled_from(["tok_ok", "tok_declined"]), texts(min_size=1, max_size=100))
zones = st.builds(
    timezone,
    st.timedeltas(
        min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
    ),
)
# Any aware datetime, the edges of the calendar included.
aware_datetimes = st.datetimes(timezones=st.one_of(st.just(UTC), zones))
# Around the time the tests run (fixed once per session so that examples replay): not
# stale, which every consumer refuses alike.
_NOW = datetime.now(UTC).replace(tzinfo=None)
recent = st.datetimes(
    min_value=_NOW - timedelta(hours=1), max_value=_NOW + timedelta(hours=1), timezones=st.just(UTC)
)


def _maybe(s: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), s)


addresses = st.builds(
    Address,
    country=countries,
    name=_maybe(texts(max_size=200)),
    line1=_maybe(texts(max_size=200)),
    city=_maybe(texts(max_size=100)),
    postal_code=_maybe(texts(max_size=20)),
)
stock_lines = st.builds(StockLine, sku=skus, qty=st.integers(1, 10_000))
line_items = st.builds(
    LineItem, sku=skus, qty=st.integers(1, 10_000), unit_price_minor=st.integers(0, 10**7)
)


@st.composite
def placed_payloads(
    draw: st.DrawFn, items: st.SearchStrategy[LineItem] = line_items
) -> OrderPlacedPayload:
    lines = draw(st.lists(items, min_size=1, max_size=5, unique_by=lambda li: li.sku))
    return OrderPlacedPayload(
        customer_id=draw(texts(min_size=1, max_size=100)),
        items=tuple(lines),
        total_minor=sum(li.qty * li.unit_price_minor for li in lines),
        currency=draw(currencies),
        card_token=draw(tokens),
        ship_to=draw(addresses),
    )


def _lines() -> st.SearchStrategy[tuple[StockLine, ...]]:
    return st.lists(stock_lines, min_size=1, max_size=5, unique_by=lambda li: li.sku).map(tuple)


money = st.integers(0, 10**12)
_PAYLOADS: dict[type[Event], st.SearchStrategy[Any]] = {
    OrderPlaced: placed_payloads(),
    InventoryReserved: st.builds(
        InventoryReservedPayload,
        reservation_id=st.uuids(),
        items=_lines(),
        expires_at=aware_datetimes,
        amount_minor=money,
        currency=currencies,
        card_token=tokens,
        customer_id=texts(min_size=1, max_size=100),
        ship_to=addresses,
    ),
    InventoryRejected: st.builds(
        InventoryRejectedPayload,
        reason=st.sampled_from(["out_of_stock", "unknown_sku"]),
        skus=st.lists(skus, min_size=1, max_size=5).map(tuple),
    ),
    InventoryReleased: st.builds(
        InventoryReleasedPayload,
        reservation_id=st.uuids(),
        items=_lines(),
        reason=st.sampled_from(["payment_failed", "fulfillment_failed", "expired"]),
    ),
    PaymentCharged: st.builds(
        PaymentChargedPayload,
        payment_id=st.uuids(),
        amount_minor=money,
        currency=currencies,
        items=_lines(),
        ship_to=addresses,
    ),
    PaymentFailed: st.builds(
        PaymentFailedPayload,
        reason=st.sampled_from(["declined", "reservation_expired"]),
        detail=texts(max_size=500),
    ),
    PaymentRefunded: st.builds(
        PaymentRefundedPayload,
        payment_id=st.uuids(),
        refund_id=st.uuids(),
        amount_minor=money,
        currency=currencies,
        reason=st.just("fulfillment_failed"),
    ),
    ShipmentScheduled: st.builds(
        ShipmentScheduledPayload,
        shipment_id=st.uuids(),
        carrier=texts(min_size=1, max_size=50),
        country=countries,
        items=_lines(),
        estimated_delivery=st.dates(min_value=date(1, 1, 1)),
    ),
    FulfillmentFailed: st.builds(
        FulfillmentFailedPayload,
        reason=st.just("unserviceable_destination"),
        detail=texts(max_size=500),
    ),
}
traceparents = st.from_regex(r"\A[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}\Z")


_PRODUCERS = texts(min_size=1, max_size=64)


def event_of(
    model: type[Event],
    *,
    occurred_at: st.SearchStrategy[datetime] = aware_datetimes,
    order_ids: st.SearchStrategy[uuid.UUID] | None = None,
    producers: st.SearchStrategy[str] = _PRODUCERS,
    payloads: st.SearchStrategy[Any] | None = None,
) -> st.SearchStrategy[Event]:
    """Any event of `model` its contract accepts."""
    return st.builds(
        model,
        event_id=st.uuids(),
        occurred_at=occurred_at,
        order_id=order_ids if order_ids is not None else st.uuids(),
        causation_id=_maybe(st.uuids()),
        correlation_id=st.uuids(),
        producer=producers,
        traceparent=_maybe(traceparents),
        payload=payloads if payloads is not None else _PAYLOADS[model],
    )


events = st.one_of(*(event_of(m) for m in _PAYLOADS))


def order_placed(
    items: st.SearchStrategy[LineItem] = line_items,
) -> st.SearchStrategy[Event]:
    """An OrderPlaced as another system may publish it, dated now-ish (not stale)."""
    return event_of(
        OrderPlaced,
        occurred_at=recent,
        order_ids=st.uuids(),
        producers=st.sampled_from(["storefront", "partner-shop"]),
        payloads=placed_payloads(items),
    )
