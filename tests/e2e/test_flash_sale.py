"""Flash sale: thousands of checkouts race for 100 units through the real API.

Exactly 100 complete; every other checkout is refused (429) or cancelled out of stock;
nothing is oversold; every accepted order ends; the audit is clean. The CI-sized run
places 1,000 checkouts; `make soak`-style runs (marker `soak`) place 10,000.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.conftest import SagaRunner
from tests.e2e.harness import Services

pytestmark = pytest.mark.e2e


def flash_sale(run_saga: SagaRunner, services: Services, orders: int) -> dict[str, Any]:
    out = run_saga(
        "bench",
        "--flash-sale",
        "--orders",
        str(orders),
        "--no-limits",
        "--json",
        "--concurrency",
        "64",
        "--url",
        f"http://127.0.0.1:{services.http_port}",
        "--timeout",
        "300",
        env={**os.environ, "SAGA_LOG_LEVEL": "WARNING"},
        timeout=600,
    )
    assert out.stdout, out.stderr
    result = json.loads(out.stdout)
    verdict = result["flash_sale"]
    assert verdict["checks"] == dict.fromkeys(verdict["checks"], True), (verdict, out.stderr)
    assert out.returncode == 0, out.stderr
    return result


def _check(result: dict[str, Any], orders: int) -> None:
    verdict = result["flash_sale"]
    assert verdict["completed"] == 100
    assert verdict["shipped"] == 100 and verdict["on_hand"] == 0  # zero oversold
    assert verdict["completed"] + verdict["out_of_stock"] + verdict["refused_429"] == orders
    assert result["accepted"] == result["finished"]  # every accepted order is terminal
    assert verdict["audit_violations"] == 0
    assert not result["errors"]


def test_flash_sale_ci_sized(run_saga: SagaRunner, services: Services) -> None:
    _check(flash_sale(run_saga, services, 1000), 1000)


@pytest.mark.soak
def test_flash_sale_full_size(run_saga: SagaRunner, services: Services) -> None:
    _check(flash_sale(run_saga, services, 10_000), 10_000)
