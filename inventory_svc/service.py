"""Wires inventory's handlers and reaper into the shared runtime."""

from __future__ import annotations

from eventing.archive import ArchivedTable
from eventing.spec import PeriodicTask, ServiceSpec
from inventory_svc.handlers import CONSUMES, handle, reap_lapsed_reservations
from inventory_svc.repository import ROLLUP_COMMITTED
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
    # Held stock stays where the reaper and the audit look for it.
    archives=(
        ArchivedTable(
            "reservations",
            "t.status IN ('committed', 'released', 'expired')",
            before_drop=ROLLUP_COMMITTED,
        ),
    ),
)
