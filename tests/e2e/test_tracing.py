"""One saga is one trace: the API continues the caller's trace context, every handled event is
a span whose parent is the span that produced the event, across four services and their
processes, exported over OTLP; the trace id is in the saga's log lines and in `saga trace`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from eventing.settings import Settings
from tests.e2e.harness import Services, new_sku, trace, wait_for, wait_terminal
from tests.e2e.otlp_receiver import ReceivedSpan, Receiver, otlp_receiver

pytestmark = pytest.mark.e2e

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def traced(
    services: Services, settings: Settings, tmp_path: Path
) -> Iterator[tuple[Services, Receiver]]:
    """The four services exporting spans to a receiver of ours (the session's restored after)."""
    with otlp_receiver() as (endpoint, receiver):
        services.stop_all()
        fleet = Services(
            settings,
            tmp_path,
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"},
        )
        try:
            fleet.start_all()
            yield fleet, receiver
        finally:
            fleet.stop_all()
            services.start_all()


def test_a_compensated_saga_is_one_tree_of_spans(
    settings: Settings, traced: tuple[Services, Receiver]
) -> None:
    fleet, receiver = traced
    sku = new_sku(settings, qty=5)
    base = f"http://127.0.0.1:{fleet.http_port}"
    with httpx.Client(base_url=base, timeout=30) as client:
        wait_for("the API", lambda: _up(client), timeout=60)
        reply = client.post(
            "/orders",
            json={
                "customer_id": "traced",
                "items": [{"sku": sku, "qty": 1}],
                "card_token": "tok_ok",
                "ship_to": {"country": "ZZ"},  # undeliverable: refund and release
            },
            headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
        )
    assert reply.status_code == 202, reply.text
    order_id = reply.json()["order_id"]
    t = wait_terminal(settings, order_id)
    assert (t["status"], t["cancel_reason"]) == ("CANCELLED", "fulfillment_failed")
    assert t["trace_id"] == CALLER_TRACE

    # Every event of the saga handled by each service that consumes it, plus the request.
    expected = 1 + sum(_CONSUMERS[e["event_type"]] for e in t["events"])

    def all_spans() -> list[ReceivedSpan] | None:
        found = receiver.of_trace(CALLER_TRACE)
        return found if len(found) >= expected else None

    spans = wait_for(f"{expected} spans of the saga", all_spans, timeout=30)
    by_id = {s.span_id: s for s in spans}
    roots = [s for s in spans if s.parent_span_id == CALLER_SPAN]
    assert [(r.service, r.name) for r in roots] == [("saga-order", "POST /orders")]
    for s in spans:
        if s is roots[0] or s.name.startswith(("parked", "dead-lettered", "retry")):
            continue
        parent = by_id.get(s.parent_span_id)
        assert parent is not None, f"{s.service} {s.name}: parent {s.parent_span_id} not in trace"
        # The parent is the span in which the handled event was produced.
        producer = s.attributes["saga.producer"]
        if producer == "order":
            assert parent.name == "POST /orders", (s, parent)
        else:
            assert parent.service == f"saga-{producer}", (s, parent)
    handled = {(s.service, s.attributes.get("saga.event_type")) for s in spans}
    assert ("saga-payment", "FulfillmentFailed") in handled  # the compensation is in the tree
    assert ("saga-order", "PaymentRefunded") in handled

    # The trace id is in the saga's log lines too.
    lines = [json.loads(x) for x in fleet["payment"].log_text().splitlines() if x.startswith("{")]
    mine = [x for x in lines if x.get("order_id") == order_id]
    assert mine and all(x.get("trace_id") == CALLER_TRACE for x in mine if "event_id" in x)
    assert trace(settings, order_id)["trace_id"] == CALLER_TRACE


_CONSUMERS = {
    "OrderPlaced": 1,  # inventory (the order service recorded it when placing)
    "InventoryReserved": 2,  # payment, order
    "InventoryRejected": 1,
    "InventoryReleased": 2,  # payment, order
    "PaymentCharged": 3,  # fulfillment, inventory, order
    "PaymentFailed": 2,
    "PaymentRefunded": 1,
    "ShipmentScheduled": 3,  # inventory, payment, order
    "FulfillmentFailed": 3,  # payment, inventory, order
}


def _up(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False
