"""Events produced by the payment service (topic payments.events)."""

from __future__ import annotations

import uuid
from typing import ClassVar, Literal

from pydantic import Field

from shared_events.common import Address, Currency, Money, StockLine
from shared_events.envelope import Contract, Event

__all__ = [
    "PaymentCharged",
    "PaymentChargedPayload",
    "PaymentFailed",
    "PaymentFailedPayload",
    "PaymentRefunded",
    "PaymentRefundedPayload",
]


class PaymentChargedPayload(Contract):
    """Money taken, plus what fulfillment needs to ship (event-carried state)."""

    payment_id: uuid.UUID
    amount_minor: Money
    currency: Currency
    items: tuple[StockLine, ...] = Field(min_length=1)
    ship_to: Address


class PaymentCharged(Event):
    TYPE: ClassVar[str] = "PaymentCharged"
    VERSION: ClassVar[int] = 1
    event_type: Literal["PaymentCharged"] = "PaymentCharged"
    schema_version: Literal[1] = 1
    payload: PaymentChargedPayload


class PaymentFailedPayload(Contract):
    reason: Literal["declined", "reservation_expired"]
    detail: str = Field(max_length=500)


class PaymentFailed(Event):
    TYPE: ClassVar[str] = "PaymentFailed"
    VERSION: ClassVar[int] = 1
    event_type: Literal["PaymentFailed"] = "PaymentFailed"
    schema_version: Literal[1] = 1
    payload: PaymentFailedPayload


class PaymentRefundedPayload(Contract):
    payment_id: uuid.UUID
    refund_id: uuid.UUID
    amount_minor: Money
    currency: Currency
    reason: Literal["fulfillment_failed"]


class PaymentRefunded(Event):
    """Compensation: the charge is given back."""

    TYPE: ClassVar[str] = "PaymentRefunded"
    VERSION: ClassVar[int] = 1
    event_type: Literal["PaymentRefunded"] = "PaymentRefunded"
    schema_version: Literal[1] = 1
    payload: PaymentRefundedPayload
