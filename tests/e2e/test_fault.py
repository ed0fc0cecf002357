"""`saga fault payment-gateway ...`: charges retry through an outage and succeed once, after."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from eventing.settings import Settings
from tests.conftest import SagaRunner
from tests.e2e.harness import (
    Services,
    connect,
    new_sku,
    place,
    reconfigured,
    trace,
    wait_for,
    wait_terminal,
)

pytestmark = pytest.mark.e2e

# A forward budget long enough to outlast the outage (the suite's default gives up in
# well under a second, which sends the charge to the DLQ instead).
PATIENT_CHARGES = {
    "SAGA_RETRY_FORWARD_MAX_ATTEMPTS": "200",
    "SAGA_RETRY_FORWARD_MAX_AGE_S": "120",
    "SAGA_RETRY_FORWARD_BASE_DELAY_S": "0.1",
    "SAGA_RETRY_FORWARD_MAX_DELAY_S": "0.5",
}


def gateway(run_saga: SagaRunner) -> dict[str, Any]:
    done = run_saga("fault", "status", "--json")
    assert done.returncode == 0, done.stderr
    [state] = json.loads(done.stdout)["faults"]
    return dict(state)


def approved_charges(settings: Settings, order_id: uuid.UUID) -> list[int]:
    with connect(settings, "payment") as conn:
        rows = conn.execute(
            "SELECT amount_minor FROM gateway_ledger "
            "WHERE order_id = %s AND kind = 'charge' AND outcome = 'approved'",
            (order_id,),
        ).fetchall()
    return [r[0] for r in rows]


def test_fault_commands_set_report_and_clear_the_gateway_state(
    run_saga: SagaRunner, services: Services
) -> None:
    try:
        down = run_saga("fault", "payment-gateway", "down", "--for", "30s")
        assert down.returncode == 0 and "DOWN" in down.stdout
        s = gateway(run_saga)
        assert s["state"] == "down" and 25 < s["remaining_s"] <= 30

        slow = run_saga("fault", "payment-gateway", "slow", "--latency", "250ms", "--for", "5m")
        assert slow.returncode == 0 and "250 ms" in slow.stdout
        s = gateway(run_saga)
        assert (s["state"], s["latency_ms"]) == ("slow", 250) and s["remaining_s"] > 290

        assert run_saga("fault", "payment-gateway", "up").returncode == 0
        assert gateway(run_saga)["state"] == "up"

        # A fault lapses by itself when its time is up.
        assert run_saga("fault", "payment-gateway", "down", "--for", "500ms").returncode == 0
        wait_for("the fault to lapse", lambda: gateway(run_saga)["state"] == "up", timeout=10)
    finally:
        run_saga("fault", "payment-gateway", "up")

    bad = run_saga("fault", "payment-gateway", "down", "--for", "soon")
    assert bad.returncode == 2 and "not a duration" in bad.stderr
    zero = run_saga("fault", "payment-gateway", "down", "--for", "0s")
    assert zero.returncode == 2 and "above 0" in zero.stderr
    assert gateway(run_saga)["state"] == "up"


def test_charges_retry_while_the_gateway_is_down_and_succeed_once_after(
    settings: Settings, running: Services, run_saga: SagaRunner
) -> None:
    sku = new_sku(settings, qty=5, price_minor=2500)
    with reconfigured(running, "payment", PATIENT_CHARGES):
        assert run_saga("fault", "payment-gateway", "down", "--for", "2m").returncode == 0
        try:
            order_id = place(settings, items={sku: 2})

            def retrying() -> dict[str, Any] | None:
                out = json.loads(
                    run_saga("dlq", "list", "--all", "--service", "payment", "--json").stdout
                )
                mine = [e for e in out["entries"] if e["order_id"] == str(order_id)]
                return mine[0] if mine and mine[0]["attempts"] >= 3 else None

            entry = wait_for("the charge to be retried", retrying, timeout=60)
            assert entry["state"] == "retrying" and "GatewayUnavailable" in entry["error"]
            assert trace(settings, order_id)["status"] == "PENDING"
            assert approved_charges(settings, order_id) == []
        finally:
            assert run_saga("fault", "payment-gateway", "up").returncode == 0
        t = wait_terminal(settings, order_id, timeout=60)
    assert t["status"] == "COMPLETED"
    assert approved_charges(settings, order_id) == [5000]
