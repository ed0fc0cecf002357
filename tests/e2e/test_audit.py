"""`saga audit`: clean after every path of the checkout, and loud about a corrupted row.

Corruption is done on this test's own SKU and order and repaired in a `finally`, so the
shared databases stay consistent for every other test.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from eventing.settings import Settings
from tests.conftest import SagaRunner
from tests.e2e.harness import Services, connect, new_sku, place, stock_of, wait_for, wait_terminal

pytestmark = pytest.mark.e2e


def audit(run_saga: SagaRunner, *args: str) -> tuple[int, dict[str, Any]]:
    done = run_saga("audit", "--json", *args)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_audit_is_clean_after_every_path(
    settings: Settings, services: Services, run_saga: SagaRunner
) -> None:
    plenty, scarce = new_sku(settings, qty=10), new_sku(settings, qty=1)
    orders = [
        place(settings, items={plenty: 2}),
        place(settings, items={scarce: 2}),
        place(settings, items={plenty: 1}, card="tok_declined"),
        place(settings, items={plenty: 1}, country="ZZ"),
    ]
    outcomes = [
        (t["status"], t["cancel_reason"]) for t in (wait_terminal(settings, o) for o in orders)
    ]
    assert outcomes == [
        ("COMPLETED", None),
        ("CANCELLED", "out_of_stock"),
        ("CANCELLED", "payment_declined"),
        ("CANCELLED", "fulfillment_failed"),
    ]

    # This test's own orders and SKUs: what earlier tests left behind is theirs to judge.
    own = [a for o in orders for a in ("--order", str(o))] + ["--sku", plenty, "--sku", scarce]
    rc, report = audit(run_saga, *own)
    assert (rc, report["violations"]) == (0, []), report
    assert (report["orders_checked"], report["skus_checked"]) == (4, 2)
    text = run_saga("audit", *own)
    assert text.returncode == 0 and "all invariants hold" in text.stdout


def test_audit_names_corrupted_rows_and_exits_1(
    settings: Settings, services: Services, run_saga: SagaRunner
) -> None:
    sku = new_sku(settings, qty=5, price_minor=700)
    order_id = place(settings, items={sku: 1})
    assert wait_terminal(settings, order_id)["status"] == "COMPLETED"
    wait_for("stock committed", lambda: stock_of(settings, sku)["shipped"] == 1)
    ghost = uuid.uuid4()
    inventory, payment = connect(settings, "inventory"), connect(settings, "payment")
    fulfillment = connect(settings, "fulfillment")
    try:
        # A unit shipped from nowhere; a refund nobody asked for; a shipment for no order.
        inventory.execute("UPDATE stock SET shipped = shipped + 1 WHERE sku = %s", (sku,))
        payment.execute(
            "INSERT INTO gateway_ledger (kind, order_id, idempotency_key, amount_minor, "
            "currency, outcome) VALUES ('refund', %s, %s, 700, 'USD', 'approved')",
            (order_id, f"audit-test:{order_id}"),
        )
        fulfillment.execute(
            "INSERT INTO shipments (order_id, shipment_id, status, country, items) "
            "VALUES (%s, %s, 'scheduled', 'US', '[]')",
            (ghost, uuid.uuid4()),
        )
        rc, report = audit(run_saga, "--settle", "500ms")
        assert rc == 1
        named = {(v["invariant"], v.get("sku") or v.get("order_id")) for v in report["violations"]}
        assert ("no_oversell", sku) in named
        assert ("money", str(order_id)) in named
        assert ("unknown_order", str(ghost)) in named
        [money] = [v for v in report["violations"] if v.get("order_id") == str(order_id)]
        assert "COMPLETED with total 7.00 but charged 7.00, refunded 7.00" in money["detail"]
        text = run_saga("audit", "--settle", "0s")
        assert text.returncode == 1
        assert f"[no_oversell] sku {sku}" in text.stdout and "[money]" in text.stdout
    finally:
        inventory.execute("UPDATE stock SET shipped = shipped - 1 WHERE sku = %s", (sku,))
        payment.execute(
            "DELETE FROM gateway_ledger WHERE idempotency_key = %s", (f"audit-test:{order_id}",)
        )
        fulfillment.execute("DELETE FROM shipments WHERE order_id = %s", (ghost,))
        for conn in (inventory, payment, fulfillment):
            conn.close()
    _, report = audit(run_saga)
    assert not [
        v
        for v in report["violations"]
        if v.get("sku") == sku or v.get("order_id") in (str(order_id), str(ghost))
    ]


def test_idle_saga_not_waiting_on_any_dlq_entry_is_a_liveness_violation(
    settings: Settings, running: Services, run_saga: SagaRunner
) -> None:
    sku = new_sku(settings, qty=2)
    running["inventory"].stop()  # nobody reserves: the saga waits on nothing named
    order_id = place(settings, items={sku: 1})

    def flagged() -> dict[str, Any] | None:
        rc, report = audit(run_saga, "--older-than", "1s", "--settle", "0s")
        found = [v for v in report["violations"] if v.get("order_id") == str(order_id)]
        return report if rc == 1 and found else None

    report = wait_for("the idle saga to be flagged", flagged, timeout=30)
    [v] = [v for v in report["violations"] if v.get("order_id") == str(order_id)]
    assert v["invariant"] == "liveness" and "no dead DLQ entry" in v["detail"]
    [s] = [s for s in report["stuck"] if s["order_id"] == str(order_id)]
    assert s["waiting_for"] == ["inventory: reserve stock (InventoryReserved or InventoryRejected)"]
    assert "liveness violation" in s["verdict"]

    running["inventory"].start()
    assert wait_terminal(settings, order_id)["status"] == "COMPLETED"
    _, report = audit(run_saga, "--older-than", "1s")
    assert not [v for v in report["violations"] if v.get("order_id") == str(order_id)]
