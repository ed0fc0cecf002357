"""Fulfillment's SQL, as thin functions over the named queries (one call per batch)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from eventing.queries import Queries

__all__ = ["decided_orders", "insert_shipments"]

Q = Queries.load("fulfillment_svc")
Conn = psycopg.Connection[Any]


def decided_orders(conn: Conn, order_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Those of the orders that already have a shipment decision (scheduled or failed)."""
    return {r["order_id"] for r in Q.all(conn, "shipments_for_orders", {"order_ids": order_ids})}


def insert_shipments(conn: Conn, rows: Iterable[Sequence[Any]]) -> None:
    """New shipment rows, in the columns of `copy_shipments` (order_id, shipment_id, status,
    country, carrier, items, estimated_delivery, failure_reason)."""
    Q.copy(conn, "copy_shipments", rows)
