"""Duplicates and crashes change nothing: every effect happens exactly once."""

from __future__ import annotations

import signal
import uuid
from typing import Any

import pytest

from eventing.outbox import decode_headers
from eventing.settings import SERVICES, Settings
from eventing.spec import input_topics
from saga_cli.services import spec_for
from tests.e2e.harness import (
    Services,
    connect,
    event_types,
    new_sku,
    place,
    stock_of,
    wait_for,
    wait_terminal,
)
from tests.e2e.kafka_tools import produce_raw, wait_caught_up

pytestmark = pytest.mark.e2e

GROUPS = {f"{s}-svc": input_topics(spec_for(s)) for s in SERVICES}


def effects(settings: Settings, order_id: uuid.UUID, sku: str) -> dict[str, Any]:
    """Everything the saga of `order_id` changed, across the four databases."""
    snap: dict[str, Any] = {"stock": stock_of(settings, sku)}
    queries = {
        "order": [
            "SELECT status, cancel_reason FROM orders WHERE order_id = %(o)s",
            "SELECT count(*) FROM saga_steps WHERE order_id = %(o)s",
        ],
        "inventory": ["SELECT status FROM reservations WHERE order_id = %(o)s"],
        "payment": [
            "SELECT kind, outcome, amount_minor FROM gateway_ledger WHERE order_id = %(o)s"
            " ORDER BY id",
            "SELECT status FROM payments WHERE order_id = %(o)s",
            "SELECT count(*) FROM refunds WHERE order_id = %(o)s",
        ],
        "fulfillment": ["SELECT status, count(*) OVER () FROM shipments WHERE order_id = %(o)s"],
    }
    for service, sqls in queries.items():
        with connect(settings, service) as conn:
            for i, sql in enumerate(sqls):
                snap[f"{service}.{i}"] = conn.execute(sql, {"o": order_id}).fetchall()
            snap[f"{service}.outbox"] = conn.execute(
                "SELECT count(*) FROM outbox WHERE order_id = %(o)s", {"o": order_id}
            ).fetchall()
    return snap


def sent_messages(
    settings: Settings, order_id: uuid.UUID
) -> list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]]:
    out = []
    for service in SERVICES:
        with connect(settings, service) as conn:
            rows = conn.execute(
                "SELECT topic, key, value, headers FROM outbox WHERE order_id = %s AND sent_at"
                " IS NOT NULL ORDER BY id",
                (order_id,),
            ).fetchall()
        out += [(t, bytes(k) if k else None, bytes(v), decode_headers(h)) for t, k, v, h in rows]
    return out


@pytest.mark.parametrize(
    ("card", "country"), [("tok_ok", "US"), ("tok_ok", "ZZ"), ("tok_declined", "US")]
)
def test_replaying_a_finished_saga_changes_nothing(
    settings: Settings, services: Services, card: str, country: str
) -> None:
    sku = new_sku(settings, qty=5)
    order_id = place(settings, items={sku: 2}, card=card, country=country)
    t = wait_terminal(settings, order_id)
    # compensations and the stock commit may land just after the order turns terminal
    wait_caught_up(settings.kafka_bootstrap_servers, GROUPS)
    before = effects(settings, order_id, sku)
    messages = sent_messages(settings, order_id)
    assert len(messages) == len(t["events"])

    produce_raw(settings.kafka_bootstrap_servers, messages)
    wait_caught_up(settings.kafka_bootstrap_servers, GROUPS)

    assert effects(settings, order_id, sku) == before
    assert event_types(wait_terminal(settings, order_id)) == event_types(t)


@pytest.mark.parametrize(
    ("service", "point", "event_type"),
    [
        ("payment", "before_commit", "InventoryReserved"),  # after the gateway charged
        ("payment", "after_commit", "InventoryReserved"),  # committed, offset not stored
        ("inventory", "before_commit", "OrderPlaced"),
        ("inventory", "after_commit", "ShipmentScheduled"),
        ("fulfillment", "after_commit", "PaymentCharged"),
        ("order", "before_commit", "ShipmentScheduled"),
    ],
)
def test_sigkill_between_consume_and_commit(
    settings: Settings, running: Services, service: str, point: str, event_type: str
) -> None:
    victim = running[service]
    victim.stop()
    victim.start(extra_env={"SAGA_CRASH_POINT": f"{point}:{event_type}"})
    sku = new_sku(settings, qty=3, price_minor=700)
    order_id = place(settings, items={sku: 1})
    code = victim.wait_exit(timeout=60)
    assert code == -signal.SIGKILL, victim.tail()
    victim.start()

    t = wait_terminal(settings, order_id)
    assert t["status"] == "COMPLETED"
    assert event_types(t) == [
        "OrderPlaced",
        "InventoryReserved",
        "PaymentCharged",
        "ShipmentScheduled",
    ]
    wait_for("stock committed", lambda: stock_of(settings, sku)["shipped"] == 1)
    snap = effects(settings, order_id, sku)
    assert snap["stock"] == {"on_hand": 2, "reserved": 0, "shipped": 1}
    assert snap["payment.0"] == [("charge", "approved", 700)]  # charged exactly once
    assert snap["fulfillment.0"] == [("scheduled", 1)]
    assert snap["order.1"] == [(4,)]
