"""Wires payment's handlers into the shared runtime."""

from __future__ import annotations

from eventing.archive import ArchivedTable
from eventing.partitions import TimePartitioned
from eventing.spec import ServiceSpec
from payment_svc.handlers import CONSUMES, handle
from shared_events.fulfillment import FulfillmentFailed
from shared_events.inventory import InventoryReleased

__all__ = ["SPEC"]

SPEC = ServiceSpec(
    name="payment",
    package="payment_svc",
    consumes=CONSUMES,
    handle=handle,
    compensations=frozenset({FulfillmentFailed, InventoryReleased}),
    # A charge waiting for its shipment ('charged') stays: a refund may still be asked for.
    archives=(
        ArchivedTable(
            "payments",
            "t.status IN ('settled', 'declined', 'expired', 'refunded')",
            children=("refunds",),
        ),
    ),
    # The simulated gateway's own ledger outlives payment's archive by a partition.
    partitioned=(
        TimePartitioned(
            "gateway_ledger",
            interval_s=lambda s: s.archive_partition_s,
            retention_s=lambda s: s.archive_after_s + s.archive_retention_s + s.archive_partition_s,
            ahead_s=3600.0,
        ),
    ),
)
