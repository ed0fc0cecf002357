"""The dead-letter queue in one process: poison input, a refund that runs out of retries and
is redriven by two operators at once, through the same functions `saga dlq` runs."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from structlog.testing import capture_logs

from eventing.testing import SagaHarness
from saga_cli.dlq import DlqId, Redrive, list_entries, redrive_one, show_entry

pytestmark = pytest.mark.integration


def test_poison_input_is_dead_lettered_with_its_reason_and_orders_still_flow(
    h: SagaHarness,
) -> None:
    not_json, unknown, invalid = (uuid.uuid4() for _ in range(3))
    envelope = {
        "event_id": str(uuid.uuid4()),
        "schema_version": 1,
        "occurred_at": "2024-01-01T00:00:00Z",
        "correlation_id": str(invalid),
        "producer": "storefront",
        "payload": {"items": "not a list"},
    }
    for key, value, headers in (
        (not_json, b"\xff\x00 not json {", []),
        (
            unknown,
            json.dumps({**envelope, "event_type": "OrderTeleported"}).encode(),
            [("event_type", b"OrderTeleported")],
        ),
        (
            invalid,
            json.dumps(
                {**envelope, "event_type": "OrderPlaced", "order_id": str(invalid)}
            ).encode(),
            [("event_type", b"OrderPlaced"), ("bin", b"\xff\xfe")],
        ),
    ):
        h.publish(raw=("orders.events", str(key).encode(), value, headers))
    h.set_stock("A-1", 3)
    with capture_logs() as logs:
        order_id = h.place({"A-1": 1})  # behind the poison on the same partition
        h.settle()
    assert h.trace(order_id)["status"] == "COMPLETED"

    entries, errors = list_entries(h.settings)
    assert errors == {}
    kinds = {
        not_json: ("not_json", "not JSON"),
        unknown: ("unknown_type", "unknown event type 'OrderTeleported'"),
        invalid: ("invalid", "OrderPlaced v1 failed validation"),
    }
    for service in ("order", "inventory"):  # orders.events has two consumers: both refuse it
        mine = {e["order_id"]: e for e in entries if e["service"] == service}
        for key, (kind, words) in kinds.items():
            e = mine[str(key)]
            assert (e["state"], e["error_kind"], e["poison"]) == ("dead", kind, True)
            assert words in e["error"] and e["attempts"] == 1
            assert e["source_topic"] == "orders.events" and e["source_offset"] >= 0
    errors_logged = [e for e in logs if e["log_level"] == "error"]
    assert len(errors_logged) == 6, errors_logged  # one ERROR line per dead letter
    assert all("dead-lettered" in e["event"] for e in errors_logged)

    [bad] = [e for e in entries if e["service"] == "inventory" and e["order_id"] == str(not_json)]
    shown = show_entry(h.settings, DlqId.parse(bad["id"]))
    assert shown["message"]["value_encoding"] == "base64"
    assert shown["message"]["value"] == "/wAgbm90IGpzb24gew=="
    [inv] = [e for e in entries if e["service"] == "inventory" and e["order_id"] == str(invalid)]
    shown = show_entry(h.settings, DlqId.parse(inv["id"]))
    assert json.loads(shown["message"]["value"])["payload"] == {"items": "not a list"}
    assert {"key": "bin", "value": "//4=", "encoding": "base64"} in shown["message"]["headers"]

    # Redriving poison decodes the same bytes again: it dies again, with the same reason.
    [unk] = [e for e in entries if e["service"] == "inventory" and e["order_id"] == str(unknown)]
    assert redrive_one(h.settings, DlqId.parse(unk["id"])).poison
    h.settle()
    [again] = [e for e in list_entries(h.settings)[0] if e["id"] == unk["id"]]
    assert (again["state"], again["redriven_count"]) == ("dead", 1)
    assert "unknown event type" in again["error"]
    assert h.audit().violations == []


def test_a_refund_dead_lettered_in_an_outage_is_redriven_once_and_refunds_once(
    h: SagaHarness,
) -> None:
    h.set_stock("A-1", 3, price_minor=1500)
    order_id = h.place({"A-1": 1}, country="ZZ")
    for _ in range(3):  # up to the charge; fulfillment has not read anything yet
        h.relay()
        for name in ("order", "inventory", "payment"):
            while h.deliver(name):
                pass
    assert "PaymentCharged" in [e["event_type"] for e in h.trace(order_id)["events"]]
    h.gateway("down")
    with capture_logs() as logs:
        h.settle()  # FulfillmentFailed: the refund fails until its budget is spent
    [entry] = [e for e in list_entries(h.settings)[0] if e["order_id"] == str(order_id)]
    assert (entry["service"], entry["event_type"], entry["error_kind"]) == (
        "payment",
        "FulfillmentFailed",
        "transient",
    )
    assert "GatewayUnavailable" in entry["error"]
    assert entry["attempts"] == h.compensation.max_attempts
    dead_lines = [e for e in logs if e["log_level"] == "error"]
    assert len(dead_lines) == 1 and "dead-lettered" in dead_lines[0]["event"]

    t = h.trace(order_id)
    assert (t["status"], t["cancel_reason"]) == ("CANCELLING", "fulfillment_failed")
    assert [b["dlq_id"] for b in t["blocked_on"] if b["state"] == "dead"] == [entry["id"]]
    assert "payment: refund the charge (PaymentRefunded)" in t["waiting_for"]
    report = h.audit()
    assert report.violations == []
    [stuck] = report.stuck
    assert entry["id"] in stuck.verdict

    h.gateway("up")
    # Two operators redrive at once: one puts it back, the other finds nothing to do.
    outcomes: list[Redrive] = []
    start = threading.Barrier(2)

    def redrive() -> None:
        start.wait()
        outcomes.append(redrive_one(h.settings, DlqId.parse(entry["id"])))

    threads = [threading.Thread(target=redrive) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=30)
    assert sorted(o.outcome for o in outcomes) == ["not_dead", "redriven"]
    h.settle()
    t = h.trace(order_id)
    assert (t["status"], t["cancel_reason"]) == ("CANCELLED", "fulfillment_failed")
    assert redrive_one(h.settings, DlqId.parse(entry["id"])).outcome == "gone"
    assert sorted(h.rows("payment", "SELECT kind, outcome, amount_minor FROM gateway_ledger")) == [
        ("charge", "approved", 1500),
        ("refund", "approved", 1500),
    ]
    assert h.rows("payment", "SELECT count(*) FROM refunds") == [(1,)]
    assert [e["event_type"] for e in t["events"]].count("PaymentRefunded") == 1
    assert h.audit().violations == []


def test_an_order_placed_published_elsewhere_runs_the_saga(h: SagaHarness) -> None:
    from shared_events.common import Address, LineItem
    from shared_events.order import OrderPlaced, OrderPlacedPayload

    h.set_stock("A-1", 3, price_minor=1500)
    order_id = uuid.uuid4()  # another system's ids need not be ours (UUIDv7)
    h.publish(
        OrderPlaced.create(
            order_id=order_id,
            producer="storefront",
            payload=OrderPlacedPayload(
                customer_id="ext-42",
                items=(LineItem(sku="A-1", qty=2, unit_price_minor=1500),),
                total_minor=3000,
                card_token="tok_ok",
                ship_to=Address(country="CA"),
            ),
        )
    )
    h.settle()
    t = h.trace(order_id)
    assert t["status"] == "COMPLETED"
    assert [e["event_type"] for e in t["events"]] == [
        "OrderPlaced",
        "InventoryReserved",
        "PaymentCharged",
        "ShipmentScheduled",
    ]
    assert t["events"][0]["producer"] == "storefront"
    assert (t["customer_id"], t["total_minor"]) == ("ext-42", 3000)
    assert h.rows("order", "SELECT origin FROM orders") == [("event",)]
