"""Event contracts: the envelope and one module per producing service (pydantic v2)."""

from shared_events.codec import (
    EVENT_MODELS,
    InvalidEvent,
    NotJson,
    PoisonMessage,
    UnknownEventType,
    decode,
    encode,
)
from shared_events.envelope import Event
from shared_events.fulfillment import FulfillmentFailed, ShipmentScheduled
from shared_events.inventory import InventoryRejected, InventoryReleased, InventoryReserved
from shared_events.order import OrderPlaced
from shared_events.payment import PaymentCharged, PaymentFailed, PaymentRefunded

__all__ = [
    "EVENT_MODELS",
    "Event",
    "FulfillmentFailed",
    "InvalidEvent",
    "InventoryRejected",
    "InventoryReleased",
    "InventoryReserved",
    "NotJson",
    "OrderPlaced",
    "PaymentCharged",
    "PaymentFailed",
    "PaymentRefunded",
    "PoisonMessage",
    "ShipmentScheduled",
    "UnknownEventType",
    "decode",
    "encode",
]
