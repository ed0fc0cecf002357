"""Wires the order service's handlers into the shared runtime."""

from __future__ import annotations

from eventing.runtime import ServiceSpec
from order_svc.handlers import HANDLERS

__all__ = ["SPEC"]

SPEC = ServiceSpec(name="order", package="order_svc", handlers=HANDLERS)
