"""Placing an order: the order row, its first saga step and OrderPlaced, in one transaction.

Shared by the HTTP API and `saga order place`, so both take the same path.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from pydantic import Field, model_validator

from eventing import tracing
from eventing.outbox import insert_outbox, row_for_event
from order_svc.repository import (
    copy_orders,
    placement_lookup,
    record_steps,
)
from shared_events.common import Address, LineItem, StockLine, check_unique_skus
from shared_events.envelope import Contract, validate_json
from shared_events.ids import new_id
from shared_events.order import OrderPlaced, OrderPlacedPayload
from shared_events.topics import events_topic

__all__ = [
    "CheckoutRequest",
    "IdempotencyConflict",
    "PlacedOrder",
    "UnknownSku",
    "place_order",
    "place_orders",
]


class CheckoutRequest(Contract):
    """The body of POST /orders."""

    customer_id: str = Field(min_length=1, max_length=100)
    items: tuple[StockLine, ...] = Field(min_length=1, max_length=100)
    card_token: str = Field(min_length=1, max_length=100)
    ship_to: Address

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckoutRequest:
        """Validate plain Python data exactly as the JSON body would be (strict JSON rules)."""
        return validate_json(cls, json.dumps(data).encode())

    @model_validator(mode="after")
    def _unique(self) -> CheckoutRequest:
        check_unique_skus(self.items)
        return self


class UnknownSku(ValueError):
    def __init__(self, skus: list[str]) -> None:
        super().__init__(
            f"unknown sku(s): {', '.join(skus)}; see `saga stock list` for the catalog"
        )
        self.skus = skus


class IdempotencyConflict(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(
            f"Idempotency-Key {key!r} was already used for a different request; "
            "use a new key for a new order"
        )


@dataclass(frozen=True)
class PlacedOrder:
    order_id: uuid.UUID
    status: str
    created: bool


def _request_hash(req: CheckoutRequest) -> str:
    canonical = json.dumps(req.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _existing(conn: psycopg.Connection[Any], key: str, req_hash: str) -> PlacedOrder | None:
    known, _ = placement_lookup(conn, keys=[key], skus=[])
    row = known.get(key)
    if row is None:
        return None
    if row["request_hash"] != req_hash:
        raise IdempotencyConflict(key)
    return PlacedOrder(row["order_id"], row["status"], created=False)


def place_order(
    conn: psycopg.Connection[Any],
    req: CheckoutRequest,
    idempotency_key: str | None = None,
    traceparent: str | None = None,
) -> PlacedOrder:
    """One checkout: `place_orders` of one, plus the race a batch leaves to its caller."""
    try:
        (result,) = place_orders(conn, [(req, idempotency_key)], [traceparent])
    except psycopg.errors.UniqueViolation:
        # A concurrent request with the same key committed first: answer with its order.
        found = _existing(conn, idempotency_key, _request_hash(req)) if idempotency_key else None
        if found is None:
            raise
        return found
    if isinstance(result, Exception):
        raise result
    return result


def place_orders(
    conn: psycopg.Connection[Any],
    requests: list[tuple[CheckoutRequest, str | None]],
    traceparents: list[str | None] | None = None,
) -> list[PlacedOrder | Exception]:
    """Place many checkouts in one transaction with a handful of statements.

    Each result is the order or the request's own error (unknown SKU, a key reused with
    another body). The caller falls back to `place_order` one at a time if the batch as a
    whole fails, e.g. when a concurrent request took one of its idempotency keys.
    """
    hashes = [_request_hash(req) for req, _ in requests]
    results: list[PlacedOrder | Exception | None] = [None] * len(requests)
    with conn.transaction():
        known, prices = placement_lookup(
            conn,
            keys=[k for _, k in requests if k],
            skus=sorted({i.sku for req, _ in requests for i in req.items}),
        )
        events: list[OrderPlaced] = []
        rows: list[tuple[Any, ...]] = []
        for n, ((req, key), req_hash) in enumerate(zip(requests, hashes, strict=True)):
            if key and key in known:
                row = known[key]
                results[n] = (
                    PlacedOrder(row["order_id"], row["status"], created=False)
                    if row["request_hash"] == req_hash
                    else IdempotencyConflict(key)
                )
                continue
            unknown = [i.sku for i in req.items if i.sku not in prices]
            if unknown:
                results[n] = UnknownSku(unknown)
                continue
            lines = tuple(
                LineItem(sku=i.sku, qty=i.qty, unit_price_minor=prices[i.sku]["price_minor"])
                for i in req.items
            )
            payload = OrderPlacedPayload(
                customer_id=req.customer_id,
                items=lines,
                total_minor=sum(li.qty * li.unit_price_minor for li in lines),
                currency=prices[lines[0].sku]["currency"],
                card_token=req.card_token,
                ship_to=req.ship_to,
            )
            # The saga's trace: the request's own span (the API), else a new one.
            trace = traceparents[n] if traceparents else None
            event = OrderPlaced.create(
                order_id=new_id(),
                producer="order",
                payload=payload,
                traceparent=trace or tracing.new_root(),
            )
            rows.append(
                (
                    event.order_id,
                    "PENDING",
                    "api",
                    req.customer_id,
                    json.dumps([li.model_dump() for li in lines]),
                    payload.total_minor,
                    payload.currency,
                    req.card_token,
                    req.ship_to.model_dump_json(),
                    key,
                    req_hash,
                    ["OrderPlaced"],
                )
            )
            events.append(event)
            placed = PlacedOrder(event.order_id, "PENDING", created=True)
            results[n] = placed
            if key:  # the same key again later in this batch gets this order
                known[key] = {
                    "order_id": event.order_id,
                    "status": "PENDING",
                    "request_hash": req_hash,
                }
        if rows:
            copy_orders(conn, rows)
        record_steps(conn, events)
        insert_outbox(conn, [row_for_event(e, events_topic("order")) for e in events])
    return [r for r in results if r is not None]
