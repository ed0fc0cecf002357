"""Fulfillment's reaction: schedule a shipment once the payment is taken."""

from __future__ import annotations

import json
from typing import Any

from eventing.logging import for_event, get_logger
from eventing.tx import Tx
from fulfillment_svc.domain import Unserviceable, plan_shipment
from fulfillment_svc.repository import decided_orders, insert_shipments
from shared_events.envelope import Event
from shared_events.fulfillment import (
    FulfillmentFailed,
    FulfillmentFailedPayload,
    ShipmentScheduled,
    ShipmentScheduledPayload,
)
from shared_events.ids import new_id
from shared_events.payment import PaymentCharged

__all__ = ["CONSUMES", "handle"]

log = get_logger(__name__)
CONSUMES: frozenset[type[Event]] = frozenset({PaymentCharged})


def _decide(tx: Tx, e: PaymentCharged) -> tuple[Any, ...]:
    p = e.payload
    plan = plan_shipment(p.ship_to.country, tx.now.date())
    shipment_id = new_id()
    items = json.dumps([i.model_dump() for i in p.items])
    if isinstance(plan, Unserviceable):
        tx.emit(
            FulfillmentFailed,
            FulfillmentFailedPayload(reason="unserviceable_destination", detail=plan.detail),
            cause=e,
        )
        log.info("cannot ship", detail=plan.detail)
        return (
            e.order_id,
            shipment_id,
            "failed",
            p.ship_to.country,
            None,
            items,
            None,
            plan.detail,
        )
    tx.emit(
        ShipmentScheduled,
        ShipmentScheduledPayload(
            shipment_id=shipment_id,
            carrier=plan.carrier,
            country=p.ship_to.country,
            items=p.items,
            estimated_delivery=plan.estimated_delivery,
        ),
        cause=e,
    )
    log.debug("shipment scheduled", carrier=plan.carrier)  # the success path: see inventory
    return (
        e.order_id,
        shipment_id,
        "scheduled",
        p.ship_to.country,
        plan.carrier,
        items,
        plan.estimated_delivery,
        None,
    )


def handle(tx: Tx, events: list[Event]) -> None:
    decided = decided_orders(tx.conn, [e.order_id for e in events])
    rows = []
    for e in events:
        assert isinstance(e, PaymentCharged)
        with for_event(e):
            if e.order_id in decided:
                log.info("order already has a shipment decision; duplicate ignored")
                continue
            decided.add(e.order_id)
            rows.append(_decide(tx, e))
    insert_shipments(tx.conn, rows)
