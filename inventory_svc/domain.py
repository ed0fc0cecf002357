"""Inventory's rules, pure: stock levels + a request -> a decision. No SQL, no Kafka."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Hold",
    "Level",
    "Reject",
    "StockMove",
    "decide_reservation",
    "on_fulfillment_failed",
    "on_payment_charged",
    "on_payment_failed",
    "on_shipment_scheduled",
]


@dataclass(frozen=True)
class Level:
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass(frozen=True)
class Hold:
    """Reserve every line: all or nothing."""


@dataclass(frozen=True)
class Reject:
    reason: Literal["out_of_stock", "unknown_sku"]
    skus: tuple[str, ...]


def decide_reservation(
    levels: Mapping[str, Level], lines: Sequence[tuple[str, int]]
) -> Hold | Reject:
    unknown = tuple(sku for sku, _ in lines if sku not in levels)
    if unknown:
        return Reject("unknown_sku", unknown)
    short = tuple(sku for sku, qty in lines if levels[sku].available < qty)
    if short:
        return Reject("out_of_stock", short)
    return Hold()


StockMove = Literal["none", "unhold", "ship"]

# The release reason of a request that was refused: kept as a reservation released at once,
# so that the order's decision is on record (it holds no stock).
REJECTED = "rejected"


@dataclass(frozen=True)
class Transition:
    status: str
    stock: StockMove
    emit_release: str | None  # the InventoryReleased reason to emit, if any
    note: str


def _stay(status: str, note: str) -> Transition:
    return Transition(status, "none", None, note)


def on_payment_charged(status: str) -> Transition:
    if status == "reserved":
        return Transition("paid", "none", None, "reservation paid")
    if status == "expiring":
        # The charge was made before the deadline and was in flight when the reservation
        # lapsed: the stock is still held, so the charge is honoured and the goods ship.
        return Transition("paid", "none", None, "lapsed reservation honoured: charge in flight")
    return _stay(status, "charge after the reservation ended; nothing to do")


def on_payment_failed(status: str, payment_reason: str) -> Transition:
    release_reason = "expired" if payment_reason == "reservation_expired" else "payment_failed"
    if status == "reserved":
        return Transition("released", "unhold", release_reason, "stock released")
    if status == "expiring":
        # InventoryReleased(expired) already went out when it lapsed; now the stock is free.
        return Transition("expired", "unhold", None, "lapsed reservation's stock freed")
    return _stay(status, "payment failure for a reservation already settled")


def on_fulfillment_failed(status: str) -> Transition:
    if status in ("reserved", "paid"):
        return Transition("released", "unhold", "fulfillment_failed", "stock released")
    if status == "expiring":
        return Transition("expired", "unhold", None, "lapsed reservation's stock freed")
    return _stay(status, "fulfillment failure for a reservation already settled")


def on_shipment_scheduled(status: str) -> Transition:
    # Reserved/expiring happen when the shipment overtakes PaymentCharged (other topic):
    # a shipment is only ever scheduled after a charge, so it commits the stock.
    if status in ("reserved", "paid", "expiring"):
        return Transition("committed", "ship", None, "stock committed to the shipment")
    return _stay(status, "shipment for a reservation not held; nothing to commit")


__all__ += ["REJECTED", "Transition"]
