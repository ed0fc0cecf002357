"""Wires the order service's handlers, and its checkout HTTP API, into the shared runtime."""

from __future__ import annotations

from eventing.runtime import ServiceSpec
from order_svc.handlers import HANDLERS
from order_svc.http_server import http_api

__all__ = ["SPEC"]

SPEC = ServiceSpec(name="order", package="order_svc", handlers=HANDLERS, background=(http_api,))
