"""`saga demo`: seed, run the services, send one order down every path, show the traces."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import click

from eventing.settings import SERVICES
from order_svc.placement import CheckoutRequest, place_order
from saga_cli.background import background_services
from saga_cli.catalog import ensure_schemas
from saga_cli.db import connect, settings
from saga_cli.trace import Trace, build_trace, render_trace

__all__ = ["demo"]

PATHS = (
    (
        "success",
        "the happy path: reserved, charged, shipped",
        {
            "items": [{"sku": "WIDGET-1", "qty": 2}, {"sku": "GIZMO-3", "qty": 1}],
            "card_token": "tok_ok",
            "ship_to": {"country": "US"},
        },
    ),
    (
        "out of stock",
        "inventory cannot reserve: cancelled before any charge",
        {
            "items": [{"sku": "WIDGET-1", "qty": 1}, {"sku": "SOLDOUT-9", "qty": 1}],
            "card_token": "tok_ok",
            "ship_to": {"country": "US"},
        },
    ),
    (
        "card declined",
        "payment fails: inventory releases the stock",
        {
            "items": [{"sku": "GADGET-2", "qty": 1}],
            "card_token": "tok_declined",
            "ship_to": {"country": "US"},
        },
    ),
    (
        "cannot ship",
        "fulfillment fails: payment refunds and inventory releases",
        {
            "items": [{"sku": "GADGET-2", "qty": 1}],
            "card_token": "tok_ok",
            "ship_to": {"country": "ZZ"},
        },
    ),
)


def _wait_terminal(order_id: uuid.UUID, timeout_s: float) -> Trace:
    cfg = settings()
    deadline = time.monotonic() + timeout_s
    with connect("order", cfg) as conn:
        while True:
            t = build_trace(conn, cfg, order_id)
            assert t is not None
            if t.terminal or time.monotonic() > deadline:
                return t
            time.sleep(0.2)


@click.command()
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait per order.")
@click.option("--keep-running", is_flag=True, help="Leave the services running afterwards.")
def demo(timeout: float, keep_running: bool) -> None:
    """Seed the catalog, run all services, and trace one order down every path.

    Uses the stack the SAGA_* variables point at (`saga stack up` by default) and the API on
    SAGA_HTTP_HOST:SAGA_HTTP_PORT.
    """
    cfg = settings()
    ctx = click.get_current_context()
    from saga_cli.catalog_cmd import seed

    click.secho("== seeding the demo catalog", bold=True)
    ctx.invoke(seed)
    ensure_schemas(cfg, SERVICES)
    log_path = Path(cfg.stack_dir) / "demo-services.log"
    click.secho(f"== starting the four services (logs: {log_path})", bold=True)
    failed = False
    with background_services(log_path, keep_running=keep_running):
        with connect("order", cfg) as conn:
            placed = []
            for name, what, body in PATHS:
                req = CheckoutRequest.from_dict({"customer_id": "demo", **body})
                placed.append((name, what, place_order(conn, req).order_id))
        for name, what, order_id in placed:
            t = _wait_terminal(order_id, timeout)
            click.secho(f"\n== {name}: {what}", bold=True)
            click.echo(render_trace(t))
            failed |= not t.terminal
    click.echo("\nmore: saga trace ORDER_ID --json | saga trace --stuck | saga stock list")
    if failed:
        raise click.ClickException(f"an order did not finish within {timeout:.0f}s; see {log_path}")
