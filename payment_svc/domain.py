"""Payment's rules, pure: what to do with a reservation, a failure, a lapse."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

__all__ = ["ChargeDecision", "decide_charge", "refund_needed", "void_needed"]

ChargeDecision = Literal["already_handled", "too_late", "charge"]


def decide_charge(
    existing_status: str | None,
    now: datetime,
    expires_at: datetime,
    gateway_answered: bool = False,
) -> ChargeDecision:
    """At most one charge per order, and never once the reservation has lapsed.

    The deadline is what makes reservation expiry safe: after expires_at we never charge,
    so a lapsed reservation can only meet a charge that was already made before it.

    `gateway_answered`: the gateway already holds this order's charge, made by an attempt
    that died before its commit (the gateway keeps its ledger outside our transaction). That
    charge was decided and made before the deadline: asking again only returns its answer
    (idempotency key), which stands whatever the clock says now; refusing it as too late
    would leave the customer charged for goods inventory then frees.
    """
    if existing_status is not None:
        return "already_handled"
    if now >= expires_at and not gateway_answered:
        return "too_late"
    return "charge"


def refund_needed(existing_status: str | None) -> bool:
    return existing_status == "charged"


def void_needed(existing_status: str | None) -> bool:
    """A lapsed reservation we never answered: answer 'not charged' so stock is freed."""
    return existing_status is None
