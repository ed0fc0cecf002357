"""Events produced by the order service (topic orders.events)."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from shared_events.common import Address, Currency, LineItem, Money, check_unique_skus
from shared_events.envelope import Contract, Event

__all__ = ["OrderPlaced", "OrderPlacedPayload"]


class OrderPlacedPayload(Contract):
    customer_id: str = Field(min_length=1, max_length=100)
    items: tuple[LineItem, ...] = Field(min_length=1, max_length=100)
    total_minor: Money
    currency: Currency = "USD"
    card_token: str = Field(min_length=1, max_length=100)
    ship_to: Address

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        check_unique_skus(self.items)
        computed = sum(i.qty * i.unit_price_minor for i in self.items)
        if computed != self.total_minor:
            raise ValueError(f"total_minor {self.total_minor} != sum of lines {computed}")
        return self


class OrderPlaced(Event):
    """Checkout started."""

    TYPE: ClassVar[str] = "OrderPlaced"
    VERSION: ClassVar[int] = 1
    event_type: Literal["OrderPlaced"] = "OrderPlaced"
    schema_version: Literal[1] = 1
    payload: OrderPlacedPayload
