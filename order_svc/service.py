"""Wires the order service's handlers, and its checkout HTTP API, into the shared runtime."""

from __future__ import annotations

from eventing.runtime import ServiceSpec
from order_svc.handlers import CONSUMES, handle
from order_svc.http_server import http_api

__all__ = ["SPEC"]

SPEC = ServiceSpec(
    name="order", package="order_svc", consumes=CONSUMES, handle=handle, background=(http_api,)
)
