"""Fulfillment's reaction: schedule a shipment once the payment is taken."""

from __future__ import annotations

import uuid

from psycopg.types.json import Jsonb

from eventing.logging import get_logger
from eventing.queries import Queries
from eventing.tx import Handler, Tx
from fulfillment_svc.domain import Unserviceable, plan_shipment
from shared_events.envelope import Event
from shared_events.fulfillment import (
    FulfillmentFailed,
    FulfillmentFailedPayload,
    ShipmentScheduled,
    ShipmentScheduledPayload,
)
from shared_events.payment import PaymentCharged

__all__ = ["HANDLERS"]

log = get_logger(__name__)
Q = Queries.load("fulfillment_svc")


def on_payment_charged(tx: Tx, event: PaymentCharged) -> None:
    if Q.one(tx.conn, "shipment_for_order", {"order_id": event.order_id}) is not None:
        log.info("order already has a shipment decision; duplicate ignored")
        return
    p = event.payload
    plan = plan_shipment(p.ship_to.country, tx.now.date())
    shipment_id = uuid.uuid4()
    params = {
        "order_id": event.order_id,
        "shipment_id": shipment_id,
        "country": p.ship_to.country,
        "items": Jsonb([i.model_dump() for i in p.items]),
    }
    if isinstance(plan, Unserviceable):
        Q.execute(
            tx.conn,
            "insert_shipment",
            {
                **params,
                "status": "failed",
                "carrier": None,
                "estimated_delivery": None,
                "failure_reason": plan.detail,
            },
        )
        tx.emit(
            FulfillmentFailed,
            FulfillmentFailedPayload(reason="unserviceable_destination", detail=plan.detail),
        )
        log.info("cannot ship", detail=plan.detail)
        return
    Q.execute(
        tx.conn,
        "insert_shipment",
        {
            **params,
            "status": "scheduled",
            "carrier": plan.carrier,
            "estimated_delivery": plan.estimated_delivery,
            "failure_reason": None,
        },
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
    )
    log.info("shipment scheduled", carrier=plan.carrier)


HANDLERS: dict[type[Event], Handler] = {PaymentCharged: on_payment_charged}
