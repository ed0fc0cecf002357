"""The order's rules, pure: from the set of saga facts seen to a status.

Events reach the order service from four topics in no guaranteed relative order, so the
status is a function of the *set* of facts, never of their arrival order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, get_args

__all__ = [
    "CANCEL_REASONS",
    "COMPENSATIONS",
    "EXCLUSIVE",
    "ORDER_STATUSES",
    "TERMINAL",
    "CancelReason",
    "Facts",
    "OrderStatus",
    "Status",
    "awaiting",
    "contradiction",
    "derive_status",
    "fact_kind",
    "is_terminal",
]

OrderStatus = Literal["PENDING", "CANCELLING", "COMPLETED", "CANCELLED"]
CancelReason = Literal[
    "out_of_stock", "payment_declined", "fulfillment_failed", "reservation_expired"
]
# The one place these sets are written (the schema's CHECK constraints say the same, and a
# test holds the OpenAPI document to them).
ORDER_STATUSES: Final = frozenset(get_args(OrderStatus))
CANCEL_REASONS: Final = frozenset(get_args(CancelReason))
TERMINAL: Final = frozenset({"COMPLETED", "CANCELLED"})
COMPENSATIONS = frozenset({"PaymentRefunded", "InventoryReleased"})


def is_terminal(status: str) -> bool:
    return status in TERMINAL


@dataclass(frozen=True)
class Facts:
    """What has happened to one order: event types seen, with reasons where they matter."""

    seen: frozenset[str]
    payment_failure: str | None = None  # declined | reservation_expired
    expired: bool = False  # inventory announced the reservation lapsed

    @classmethod
    def of(cls, steps: Iterable[tuple[str, str | None]]) -> Facts:
        return cls(frozenset()).with_steps(steps)

    def with_steps(self, steps: Iterable[tuple[str, str | None]]) -> Facts:
        """These facts and the steps' (event type, reason): a set, so order and repeats
        do not matter."""
        seen = set(self.seen)
        payment_failure = self.payment_failure
        expired = self.expired
        for event_type, reason in steps:
            seen.add(event_type)
            if event_type == "PaymentFailed" and payment_failure is None:
                payment_failure = reason
            if event_type == "InventoryReleased" and reason == "expired":
                expired = True
        return Facts(frozenset(seen), payment_failure, expired)


@dataclass(frozen=True)
class Status:
    status: OrderStatus
    cancel_reason: CancelReason | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def derive_status(f: Facts) -> Status:
    if "ShipmentScheduled" in f.seen:
        return Status("COMPLETED")
    if "InventoryRejected" in f.seen:
        return Status("CANCELLED", "out_of_stock")
    released = "InventoryReleased" in f.seen
    if "FulfillmentFailed" in f.seen:
        done = released and "PaymentRefunded" in f.seen
        return Status("CANCELLED" if done else "CANCELLING", "fulfillment_failed")
    if f.payment_failure is not None:
        reason: CancelReason = (
            "reservation_expired"
            if f.payment_failure == "reservation_expired"
            else "payment_declined"
        )
        return Status("CANCELLED" if released else "CANCELLING", reason)
    return Status("PENDING")


def awaiting(f: Facts) -> list[str]:
    """What a non-terminal order is waiting for, in words an operator can act on."""
    status = derive_status(f)
    if status.terminal:
        return []
    waits: list[str] = []
    if "OrderPlaced" not in f.seen:
        waits.append("order: the OrderPlaced event itself (a later event overtook it)")
    if status.status == "CANCELLING":
        if "InventoryReleased" not in f.seen:
            waits.append("inventory: release the reserved stock (InventoryReleased)")
        if "FulfillmentFailed" in f.seen and "PaymentRefunded" not in f.seen:
            waits.append("payment: refund the charge (PaymentRefunded)")
        return waits
    if "InventoryReserved" not in f.seen:
        waits.append("inventory: reserve stock (InventoryReserved or InventoryRejected)")
    elif "PaymentCharged" not in f.seen:
        if f.expired:
            waits.append("payment: answer the lapsed reservation (PaymentCharged or PaymentFailed)")
        else:
            waits.append("payment: charge the card (PaymentCharged or PaymentFailed)")
    else:
        waits.append("fulfillment: schedule the shipment (ShipmentScheduled or FulfillmentFailed)")
    return waits


# A saga has at most one event of each type, and at most one of each group below: each group
# is the outcomes of one step (both from one producer, so one topic: they cannot swap places).
EXCLUSIVE = (
    frozenset({"InventoryReserved", "InventoryRejected"}),
    frozenset({"PaymentCharged", "PaymentFailed"}),
    frozenset({"ShipmentScheduled", "FulfillmentFailed"}),
)


LAPSE = "InventoryReleased(expired)"


def fact_kind(event_type: str, reason: str | None) -> str:
    """What kind of fact an event is: its type, but for the lapse of a reservation, a fact
    of its own: a lapsed reservation whose charge was honoured is released once more if
    fulfillment then fails (InventoryReleased, reason expired, then fulfillment_failed)."""
    return LAPSE if event_type == "InventoryReleased" and reason == "expired" else event_type


def contradiction(kinds: frozenset[str], kind: str) -> str | None:
    """Why one more fact of `kind` cannot join a saga that holds facts of `kinds` (None: it
    can). A second fact of a kind already held may still be the same fact sent again under
    another event id; the caller compares contents."""
    if kind in kinds:
        return f"the saga already has {_a(kind)}"
    for group in EXCLUSIVE:
        other = sorted(group & kinds - {kind}) if kind in group else []
        if other:
            return f"the saga already has {_a(other[0])}, which excludes {_a(kind)}"
    return None


def _a(kind: str) -> str:
    return f"{'an' if kind[0] in 'AEIOU' else 'a'} {kind}"
