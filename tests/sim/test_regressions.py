"""Seeds that found bugs, kept: each failed before its fix and must hold every invariant now.

A seed's meaning depends on the simulation's generator (saga_cli/simulate.py): these were
found with its present version; the scripted tests beside them (test_conflicts.py,
test_paths.py) pin the same bugs without it.
"""

from __future__ import annotations

import pytest

from eventing.testing import SagaHarness
from saga_cli.simulate import run_seed

pytestmark = pytest.mark.integration

FOUND = {
    # payment: a charge made by an attempt that crashed before its commit, then the deadline
    # passed: the redelivery said "too late, not charged" and the order was cancelled while
    # the gateway had charged (money).
    112: "charged, then cancelled as expired",
    147: "charged, then cancelled as expired",
    # order: an external system's second OrderPlaced (new event id) recorded as a second fact
    # of the saga; another step's second outcome recorded too (conflict).
    0: "two OrderPlaced steps",
    3: "a second ShipmentScheduled recorded",
    # inventory: a refused request was not on record: an OrderPlaced seen again (a copy under
    # a new id, or redelivered past the inbox's window) was decided again and reserved what
    # had been refused, for an order already CANCELLED(out_of_stock) (money, stock).
    5: "InventoryRejected twice",
    52: "reserved after a rejection",
}


@pytest.mark.parametrize("seed", sorted(FOUND))
def test_seed_that_found_a_bug_holds(checkout: SagaHarness, seed: int) -> None:
    result = run_seed(checkout, seed, 12)
    assert result.ok, f"{FOUND[seed]}:\n{result.reproduction()}"
