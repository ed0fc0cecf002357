"""Wires fulfillment's handler into the shared runtime."""

from __future__ import annotations

from eventing.archive import ArchivedTable
from eventing.spec import ServiceSpec
from fulfillment_svc.handlers import CONSUMES, handle

__all__ = ["SPEC"]

SPEC = ServiceSpec(
    name="fulfillment",
    package="fulfillment_svc",
    consumes=CONSUMES,
    handle=handle,
    # A decision, once made, never changes.
    archives=(ArchivedTable("shipments", "true", idle_column="created_at"),),
)
