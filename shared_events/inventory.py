"""Events produced by the inventory service (topic inventory.events)."""

from __future__ import annotations

import uuid
from typing import ClassVar, Literal

from pydantic import Field

from shared_events.common import Address, Currency, Money, Sku, StockLine
from shared_events.envelope import Contract, Event, UtcDatetime

__all__ = [
    "InventoryRejected",
    "InventoryRejectedPayload",
    "InventoryReleased",
    "InventoryReleasedPayload",
    "InventoryReserved",
    "InventoryReservedPayload",
    "ReleaseReason",
]


class InventoryReservedPayload(Contract):
    """A soft reservation, plus what payment needs to charge (event-carried state)."""

    reservation_id: uuid.UUID
    items: tuple[StockLine, ...] = Field(min_length=1)
    expires_at: UtcDatetime
    amount_minor: Money
    currency: Currency
    card_token: str = Field(min_length=1, max_length=100)
    customer_id: str = Field(min_length=1, max_length=100)
    ship_to: Address


class InventoryReserved(Event):
    TYPE: ClassVar[str] = "InventoryReserved"
    VERSION: ClassVar[int] = 1
    event_type: Literal["InventoryReserved"] = "InventoryReserved"
    schema_version: Literal[1] = 1
    payload: InventoryReservedPayload


class InventoryRejectedPayload(Contract):
    reason: Literal["out_of_stock", "unknown_sku"]
    skus: tuple[Sku, ...] = Field(min_length=1)


class InventoryRejected(Event):
    TYPE: ClassVar[str] = "InventoryRejected"
    VERSION: ClassVar[int] = 1
    event_type: Literal["InventoryRejected"] = "InventoryRejected"
    schema_version: Literal[1] = 1
    payload: InventoryRejectedPayload


ReleaseReason = Literal["payment_failed", "fulfillment_failed", "expired"]


class InventoryReleasedPayload(Contract):
    reservation_id: uuid.UUID
    items: tuple[StockLine, ...] = Field(min_length=1)
    reason: ReleaseReason


class InventoryReleased(Event):
    """Compensation: the reservation's stock is available again."""

    TYPE: ClassVar[str] = "InventoryReleased"
    VERSION: ClassVar[int] = 1
    event_type: Literal["InventoryReleased"] = "InventoryReleased"
    schema_version: Literal[1] = 1
    payload: InventoryReleasedPayload
