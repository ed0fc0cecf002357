"""Value objects shared by several events."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from shared_events.envelope import Contract

__all__ = ["Address", "Currency", "LineItem", "Money", "Sku", "StockLine", "check_unique_skus"]

Sku = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]
Money = Annotated[int, Field(ge=0, le=10**12)]  # integer minor units (cents), never float
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class StockLine(Contract):
    sku: Sku
    qty: int = Field(ge=1, le=10_000)


class LineItem(StockLine):
    unit_price_minor: Money


class Address(Contract):
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")
    name: str | None = Field(default=None, max_length=200)
    line1: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100)
    postal_code: str | None = Field(default=None, max_length=20)


def check_unique_skus(lines: tuple[StockLine, ...]) -> None:
    seen: set[str] = set()
    for line in lines:
        if line.sku in seen:
            raise ValueError(f"sku {line.sku!r} is listed twice; give it once with the total qty")
        seen.add(line.sku)
