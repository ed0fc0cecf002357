"""The demo catalog, and setting stock + price across the order and inventory databases."""

from __future__ import annotations

from dataclasses import dataclass

from eventing.maintenance import prepare_database
from eventing.settings import Settings
from inventory_svc.repository import set_stock
from order_svc.repository import set_price
from saga_cli.db import connect

__all__ = ["DEMO_CATALOG", "CatalogItem", "ensure_schemas", "set_item"]


@dataclass(frozen=True)
class CatalogItem:
    sku: str
    price_minor: int
    qty: int


DEMO_CATALOG = (
    CatalogItem("WIDGET-1", 1999, 1000),
    CatalogItem("GADGET-2", 4999, 500),
    CatalogItem("GIZMO-3", 999, 2000),
    CatalogItem("SOLDOUT-9", 2500, 0),
)


def ensure_schemas(cfg: Settings, services: tuple[str, ...] = ("order", "inventory")) -> None:
    from saga_cli.services import spec_for

    for name in services:
        prepare_database(cfg.dsn(name), spec_for(name), cfg)


def set_item(
    cfg: Settings, sku: str, qty: int, price_minor: int | None, reason: str = "operator"
) -> dict[str, int]:
    """Stock lives in inventory, the price list in order: set both, price first."""
    if price_minor is not None:
        if price_minor < 0:
            raise ValueError(f"price for {sku} must be >= 0 minor units, got {price_minor}")
        with connect("order", cfg) as conn:
            set_price(conn, sku, price_minor, "USD")
    with connect("inventory", cfg) as conn:
        return set_stock(conn, sku, qty, reason)
