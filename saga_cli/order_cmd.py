"""`saga order place|show`."""

from __future__ import annotations

import json
import uuid

import click
from pydantic import ValidationError

from order_svc.placement import CheckoutRequest, IdempotencyConflict, UnknownSku, place_order
from order_svc.repository import get_order
from saga_cli.catalog import ensure_schemas
from saga_cli.db import connect, settings

__all__ = ["order"]


def _item(value: str) -> dict[str, object]:
    sku, sep, qty = value.rpartition(":")
    if not sep or not sku or not qty.isdigit() or int(qty) < 1:
        raise click.BadParameter(f"{value!r}: expected SKU:QTY with QTY >= 1, e.g. WIDGET-1:2")
    return {"sku": sku, "qty": int(qty)}


@click.group()
def order() -> None:
    """Place and inspect orders (in the order database: SAGA_ORDER_DB_DSN)."""


@order.command("place")
@click.option("--customer", required=True, help="Customer id.")
@click.option(
    "--item",
    "items",
    multiple=True,
    required=True,
    metavar="SKU:QTY",
    help="A line of the order; repeat for more.",
)
@click.option(
    "--card",
    default="tok_ok",
    show_default=True,
    help="Card token: tok_ok charges, tok_declined is declined.",
)
@click.option(
    "--ship-to",
    "country",
    default="US",
    show_default=True,
    help="Destination country (ISO alpha-2); ZZ cannot be served.",
)
@click.option("--idempotency-key", help="Same key, same order: safe to retry.")
@click.option("--json", "as_json", is_flag=True)
def place(
    customer: str,
    items: tuple[str, ...],
    card: str,
    country: str,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Start a checkout."""
    try:
        req = CheckoutRequest.from_dict(
            {
                "customer_id": customer,
                "items": [_item(i) for i in items],
                "card_token": card,
                "ship_to": {"country": country.upper()},
            }
        )
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise click.UsageError(msgs) from None
    cfg = settings()
    ensure_schemas(cfg, ("order",))
    with connect("order", cfg) as conn:
        try:
            placed = place_order(conn, req, idempotency_key)
        except (UnknownSku, IdempotencyConflict) as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(
            json.dumps(
                {
                    "order_id": str(placed.order_id),
                    "status": placed.status,
                    "created": placed.created,
                }
            )
        )
    else:
        verb = "placed" if placed.created else "already placed with this idempotency key"
        click.echo(
            f"order {placed.order_id} {verb}: {placed.status}\n"
            f"follow it with: saga trace {placed.order_id} --follow"
        )


@order.command("show")
@click.argument("order_id", type=click.UUID)
@click.option("--json", "as_json", is_flag=True)
def show(order_id: uuid.UUID, as_json: bool) -> None:
    """The order as the order service knows it."""
    with connect("order") as conn:
        row = get_order(conn, order_id)
    if row is None:
        raise click.ClickException(f"no order {order_id}")
    if as_json:
        click.echo(json.dumps(row, default=str))
        return
    reason = f" ({row['cancel_reason']})" if row["cancel_reason"] else ""
    click.echo(
        f"order     {row['order_id']}\nstatus    {row['status']}{reason}\n"
        f"customer  {row['customer_id']}\n"
        f"total     {(row['total_minor'] or 0) / 100:.2f} {row['currency'] or ''}\n"
        f"items     {json.dumps(row['items'])}\nship to   {json.dumps(row['ship_to'])}\n"
        f"placed    {row['created_at']:%Y-%m-%d %H:%M:%S.%f}\n"
        f"updated   {row['updated_at']:%Y-%m-%d %H:%M:%S.%f}"
    )
