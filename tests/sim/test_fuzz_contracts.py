"""Every message the contracts accept is processable by every service that consumes it, on
the real handlers and SQL: none may be stored by one consumer and refused by another (stock
reserved or a card charged for an order another service cannot record). What a consumer
could not process must be refused by the contract itself: poison for all alike."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventing.testing import SagaHarness
from shared_events.codec import PRODUCER_OF
from shared_events.common import LineItem
from shared_events.envelope import Event
from tests.sim.strategies import event_of, order_placed, recent, skus

pytestmark = pytest.mark.integration

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
STOCKED = {"FUZZ-A": 50, "FUZZ-B": 3}
# Lines of stocked SKUs (every path runs) and of SKUs nobody stocks (refused as unknown).
lines = st.builds(
    LineItem,
    sku=st.one_of(st.sampled_from(sorted(STOCKED)), skus),
    qty=st.integers(1, 10_000),
    unit_price_minor=st.integers(0, 10**7),
)


def fresh(h: SagaHarness) -> None:
    h.reset()
    for sku, qty in STOCKED.items():
        h.set_stock(sku, qty, price_minor=100)


@FUZZ
@given(order_placed(lines))
def test_any_accepted_order_placed_runs_its_saga_to_the_end(
    checkout: SagaHarness, event: Event
) -> None:
    h = checkout
    fresh(h)
    h.publish(event)
    h.settle()
    assert h.dead_letters() == []
    t = h.trace(event.order_id)
    assert t["status"] in ("COMPLETED", "CANCELLED"), t
    assert [e["event_type"] for e in t["events"]].count("OrderPlaced") == 1
    assert h.audit().violations == []


producers = st.sampled_from(["inventory", "payment", "fulfillment", "storefront", "order"])


@FUZZ
@given(
    st.sampled_from([m for m in PRODUCER_OF if m.TYPE != "OrderPlaced"]).flatmap(
        lambda m: event_of(m, occurred_at=recent, producers=producers)
    )
)
def test_any_accepted_event_is_handled_by_every_consumer_or_none(
    checkout: SagaHarness, event: Event
) -> None:
    h = checkout
    fresh(h)
    h.publish(event)
    h.settle()
    # Nobody failed on it (a consumer that produced it by its own account ignores it, as
    # the runtime never hands a service its own events; were it refused, e.g. as stale,
    # every consumer would refuse it alike).
    assert h.dead_letters() == []
    seen = h.rows("order", "SELECT event_type FROM saga_steps WHERE event_id = %s", event.event_id)
    assert seen == ([] if event.producer == "order" else [(event.event_type,)])


def test_a_nul_character_no_service_can_store_is_poison_for_every_consumer(
    h: SagaHarness,
) -> None:
    # Found by the fuzzing above when the contracts still accepted it: inventory reserved,
    # payment charged and fulfillment shipped an order whose OrderPlaced the order service
    # could not record (PostgreSQL text cannot hold NUL), so the saga had no record at all.
    h.set_stock("A-1", 5, price_minor=100)
    value = (
        b'{"event_id": "018f0000-0000-7000-8000-000000000001", "event_type": "OrderPlaced",'
        b' "schema_version": 1, "occurred_at": "2030-01-01T00:00:00Z",'
        b' "order_id": "018f0000-0000-7000-8000-0000000000aa", "causation_id": null,'
        b' "correlation_id": "018f0000-0000-7000-8000-0000000000aa", "producer": "storefront",'
        b' "traceparent": null, "payload": {"customer_id": "bob\\u0000", "items": [{"sku": "A-1",'
        b' "qty": 1, "unit_price_minor": 100}], "total_minor": 100, "currency": "USD",'
        b' "card_token": "tok_ok", "ship_to": {"country": "US"}}}'
    )
    h.publish(raw=("orders.events", b"018f0000-0000-7000-8000-0000000000aa", value, []))
    h.settle()
    dead = {(d["service"], d["error_kind"]) for d in h.dead_letters()}
    assert dead == {("order", "invalid"), ("inventory", "invalid")}
    assert all("NUL" in d["last_error"] for d in h.dead_letters())
    assert h.rows("inventory", "SELECT * FROM reservations") == []
    assert h.rows("payment", "SELECT * FROM gateway_ledger") == []
