"""`saga demo`: seed, run the services, send one order down every path, show the traces."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import click

from eventing.settings import SERVICES
from order_svc.placement import CheckoutRequest, place_order
from saga_cli.catalog import ensure_schemas
from saga_cli.db import connect, settings
from saga_cli.trace import build_trace, render_trace

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


def _wait_terminal(order_id: uuid.UUID, timeout_s: float) -> dict[str, object]:
    cfg = settings()
    deadline = time.monotonic() + timeout_s
    with connect("order", cfg) as conn:
        while True:
            t = build_trace(conn, cfg, order_id)
            assert t is not None
            if t["status"] in ("COMPLETED", "CANCELLED") or time.monotonic() > deadline:
                return t
            time.sleep(0.2)


def _wait_ready(log_path: Path, since: int, services: subprocess.Popen[bytes]) -> None:
    """Until each service has its partitions, so the traces show the saga, not start-up."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if services.poll() is not None:
            raise click.ClickException(f"the services exited; see {log_path}")
        with log_path.open("rb") as f:
            f.seek(since)
            text = f.read()
        assigned = [line for line in text.splitlines() if b'"partitions assigned"' in line]
        ready = {s for s in SERVICES for line in assigned if f'"service": "{s}"'.encode() in line}
        if len(ready) == len(SERVICES):
            return
        time.sleep(0.2)
    raise click.ClickException(f"the services did not start within 90 s; see {log_path}")


@click.command()
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait per order.")
@click.option("--keep-running", is_flag=True, help="Leave the services running afterwards.")
def demo(timeout: float, keep_running: bool) -> None:
    """Seed the catalog, run all services, and trace one order down every path."""
    cfg = settings()
    ctx = click.get_current_context()
    from saga_cli.catalog_cmd import seed

    click.secho("== seeding the demo catalog", bold=True)
    ctx.invoke(seed)
    ensure_schemas(cfg, ("order", "inventory", "payment", "fulfillment"))
    log_path = Path(cfg.stack_dir) / "demo-services.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    click.secho(f"== starting the four services (logs: {log_path})", bold=True)
    since = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        services = subprocess.Popen(
            [sys.executable, "-m", "saga_cli.main", "run", "all"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SAGA_LOG_FORMAT": "json"},
            start_new_session=True,
        )
    failed = False
    try:
        _wait_ready(log_path, since, services)
        with connect("order", cfg) as conn:
            placed = []
            for name, what, body in PATHS:
                req = CheckoutRequest.from_dict({"customer_id": "demo", **body})
                placed.append((name, what, place_order(conn, req).order_id))
        for name, what, order_id in placed:
            t = _wait_terminal(order_id, timeout)
            click.secho(f"\n== {name}: {what}", bold=True)
            click.echo(render_trace(t))
            failed |= t["status"] not in ("COMPLETED", "CANCELLED")
    finally:
        if keep_running:
            click.echo(
                f"\nservices still running (pid {services.pid}); stop with: kill {services.pid}"
            )
        else:
            os.killpg(services.pid, signal.SIGTERM)
            services.wait(timeout=30)
    click.echo("\nmore: saga trace ORDER_ID --json | saga trace --stuck | saga stock list")
    if failed:
        raise click.ClickException(f"an order did not finish within {timeout:.0f}s; see {log_path}")
