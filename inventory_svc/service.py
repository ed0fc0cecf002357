"""Wires inventory's handlers and reaper into the shared runtime."""

from __future__ import annotations

from eventing.runtime import PeriodicTask, ServiceSpec
from inventory_svc.handlers import CONSUMES, handle, reap_lapsed_reservations
from shared_events.fulfillment import FulfillmentFailed
from shared_events.payment import PaymentFailed

__all__ = ["SPEC"]

SPEC = ServiceSpec(
    name="inventory",
    package="inventory_svc",
    consumes=CONSUMES,
    handle=handle,
    compensations=frozenset({PaymentFailed, FulfillmentFailed}),
    periodic=(PeriodicTask("reaper", lambda s: s.reaper_interval_s, reap_lapsed_reservations),),
)
