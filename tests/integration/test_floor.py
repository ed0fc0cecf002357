"""`saga bench --floor`: the four services' handlers and SQL in one thread on scratch databases,
every checkout settled, CPU per saga told apart by service."""

from __future__ import annotations

import json
from typing import Any

import pytest

from eventing.settings import SERVICES
from tests.conftest import SagaRunner
from tests.containers import infra

pytestmark = pytest.mark.integration


def test_floor_settles_every_checkout_and_counts_each_service(
    run_saga: SagaRunner, stack: dict[str, Any]
) -> None:
    done = run_saga("bench", "--floor", "--orders", "60", "--batch", "20", "--json", timeout=180)
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    assert (r["sagas"], r["batch"]) == (60, 20)
    # The two rounds of warm-up are placed and settled too.
    assert r["placed"] == r["completed"] == 100
    python = r["python_ms_per_saga"]
    assert set(python) == {*SERVICES, "total"}
    assert all(python[s] > 0 for s in SERVICES), python
    assert python["total"] == pytest.approx(sum(python[s] for s in SERVICES), abs=0.005)
    pg = r["postgres_ms_per_saga"]
    if infra.containers_requested():
        # The server runs in a container: its processes are not this machine's to read.
        assert pg is None
        assert "not measured" in r["note"]
        return
    assert pg is not None, r.get("note")
    assert set(pg) == {*SERVICES, "background", "total"}
    assert pg["total"] > 0
    parts = sum(pg[s] for s in SERVICES) + pg["background"]
    assert pg["total"] == pytest.approx(parts, abs=0.01)
    assert r["total_ms_per_saga"] == pytest.approx(python["total"] + pg["total"], abs=0.01)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--orders", "10", "--batch", "20"], "--batch 20 is more than --orders 10"),
        (["--curve"], "--floor is a mode of its own"),
        (["--duration", "5"], "--floor is a mode of its own"),
    ],
)
def test_floor_refuses_what_it_cannot_run(run_saga: SagaRunner, args: list[str], said: str) -> None:
    done = run_saga("bench", "--floor", *args, timeout=60)
    assert done.returncode == 2
    assert said in done.stderr
