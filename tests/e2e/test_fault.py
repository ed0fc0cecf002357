"""`saga fault payment-gateway ...` as an operator types it: set, report, clear, lapse.

Charges retrying through an outage and succeeding once after it, and a gateway down past
the retry budget, run in one process in tests/sim/test_paths.py (the harness).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import SagaRunner
from tests.e2e.harness import wait_for

pytestmark = pytest.mark.e2e


def gateway(run_saga: SagaRunner) -> dict[str, Any]:
    done = run_saga("fault", "status", "--json")
    assert done.returncode == 0, done.stderr
    [state] = json.loads(done.stdout)["faults"]
    return dict(state)


def test_fault_commands_set_report_and_clear_the_gateway_state(
    run_saga: SagaRunner, stack: object
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
