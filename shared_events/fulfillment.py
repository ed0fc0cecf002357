"""Events produced by the fulfillment service (topic fulfillment.events)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import ClassVar, Literal

from pydantic import Field

from shared_events.common import StockLine
from shared_events.envelope import Contract, Event

__all__ = [
    "FulfillmentFailed",
    "FulfillmentFailedPayload",
    "ShipmentScheduled",
    "ShipmentScheduledPayload",
]


class ShipmentScheduledPayload(Contract):
    shipment_id: uuid.UUID
    carrier: str = Field(min_length=1, max_length=50)
    country: str = Field(pattern=r"^[A-Z]{2}$")
    items: tuple[StockLine, ...] = Field(min_length=1)
    estimated_delivery: date


class ShipmentScheduled(Event):
    TYPE: ClassVar[str] = "ShipmentScheduled"
    VERSION: ClassVar[int] = 1
    event_type: Literal["ShipmentScheduled"] = "ShipmentScheduled"
    schema_version: Literal[1] = 1
    payload: ShipmentScheduledPayload


class FulfillmentFailedPayload(Contract):
    reason: Literal["unserviceable_destination"]
    detail: str = Field(max_length=500)


class FulfillmentFailed(Event):
    """Triggers compensation: refund and release."""

    TYPE: ClassVar[str] = "FulfillmentFailed"
    VERSION: ClassVar[int] = 1
    event_type: Literal["FulfillmentFailed"] = "FulfillmentFailed"
    schema_version: Literal[1] = 1
    payload: FulfillmentFailedPayload
