"""Wires payment's handlers into the shared runtime."""

from __future__ import annotations

from eventing.runtime import ServiceSpec
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
)
