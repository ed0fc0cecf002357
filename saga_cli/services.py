"""The four services, by name."""

from __future__ import annotations

from eventing.spec import ServiceSpec

__all__ = ["spec_for"]


def spec_for(name: str) -> ServiceSpec:
    if name == "order":
        from order_svc.service import SPEC as order

        return order
    if name == "inventory":
        from inventory_svc.service import SPEC as inventory

        return inventory
    if name == "payment":
        from payment_svc.service import SPEC as payment

        return payment
    if name == "fulfillment":
        from fulfillment_svc.service import SPEC as fulfillment

        return fulfillment
    raise ValueError(f"unknown service {name!r}")
