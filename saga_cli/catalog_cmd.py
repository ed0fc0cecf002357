"""`saga seed` and `saga stock set|list`."""

from __future__ import annotations

import json
import re

import click

from inventory_svc.repository import stock_levels
from order_svc.repository import prices_for
from saga_cli.catalog import DEMO_CATALOG, ensure_schemas, set_item
from saga_cli.db import connect, settings

__all__ = ["seed", "stock"]

_SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print what was set as JSON.")
def seed(as_json: bool) -> None:
    """Load the demo catalog: prices (order) and stock (inventory).

    Reaches the databases of SAGA_ORDER_DB_DSN and SAGA_INVENTORY_DB_DSN.
    """
    cfg = settings()
    ensure_schemas(cfg)
    done = []
    for item in DEMO_CATALOG:
        result = set_item(cfg, item.sku, item.qty, item.price_minor, reason="seed")
        done.append({"sku": item.sku, "price_minor": item.price_minor, **result})
        if not as_json:
            click.echo(f"{item.sku:<10} {item.qty:>6} in stock at {item.price_minor / 100:.2f} USD")
    if as_json:
        click.echo(json.dumps(done))


@click.group()
def stock() -> None:
    """Stock levels and prices."""


@stock.command("set")
@click.argument("sku")
@click.argument("qty", type=click.IntRange(min=0))
@click.option(
    "--price",
    "price_minor",
    type=click.IntRange(min=0),
    help="Unit price in minor units (cents). Required for a new SKU.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new levels as JSON.")
def stock_set(sku: str, qty: int, price_minor: int | None, as_json: bool) -> None:
    """Add SKU or set its on-hand quantity to QTY.

    Reaches the databases of SAGA_ORDER_DB_DSN (prices) and SAGA_INVENTORY_DB_DSN (stock).
    """
    if not _SKU.match(sku):
        raise click.BadParameter("letters, digits, '_', '.', '-' (max 64)", param_hint="SKU")
    cfg = settings()
    ensure_schemas(cfg)
    if price_minor is None:
        with connect("order", cfg) as conn:
            known = prices_for(conn, [sku])
        if not known:
            raise click.UsageError(f"{sku} has no price yet: give one with --price MINOR_UNITS")
    try:
        result = set_item(cfg, sku, qty, price_minor)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"sku": sku, "price_minor": price_minor, **result}))
        return
    click.echo(
        f"{sku}: on hand {result['on_hand']} ({result['delta']:+d}), reserved {result['reserved']}"
    )


@stock.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def stock_list(as_json: bool) -> None:
    """Stock levels per SKU, with prices (SAGA_INVENTORY_DB_DSN, SAGA_ORDER_DB_DSN)."""
    cfg = settings()
    with connect("inventory", cfg) as conn:
        levels = stock_levels(conn)
    with connect("order", cfg) as conn:
        prices = {r["sku"]: r["price_minor"] for r in prices_for(conn, [r["sku"] for r in levels])}
    for row in levels:
        row["price_minor"] = prices.get(row["sku"])
    if as_json:
        click.echo(json.dumps(levels))
        return
    click.echo(
        f"{'SKU':<16}{'PRICE':>10}{'ON HAND':>9}{'RESERVED':>9}{'AVAILABLE':>10}{'SHIPPED':>9}"
    )
    for r in levels:
        price = f"{r['price_minor'] / 100:.2f}" if r["price_minor"] is not None else "-"
        click.echo(
            f"{r['sku']:<16}{price:>10}{r['on_hand']:>9}{r['reserved']:>9}"
            f"{r['available']:>10}{r['shipped']:>9}"
        )
