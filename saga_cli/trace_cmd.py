"""`saga trace ORDER_ID [--json] [--follow]` and `saga trace --stuck`."""

from __future__ import annotations

import json
import time
import uuid

import click

from order_svc.retention import missing_order
from saga_cli.db import connect, settings
from saga_cli.durations import as_seconds, format_duration
from saga_cli.trace import (
    COLUMNS,
    build_trace,
    render_event,
    render_status,
    render_trace,
    stuck_orders,
)

__all__ = ["trace"]


@click.command()
@click.argument("order_id", type=click.UUID, required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--follow", is_flag=True, help="Keep printing new steps until the order ends.")
@click.option("--stuck", is_flag=True, help="List sagas that are not terminal.")
@click.option(
    "--older-than",
    "older_than_s",
    default="30s",
    show_default=True,
    callback=as_seconds,
    metavar="DURATION",
    help="With --stuck: only sagas without progress for this long (500ms, 30s, 5m).",
)
def trace(
    order_id: uuid.UUID | None, as_json: bool, follow: bool, stuck: bool, older_than_s: float
) -> None:
    """One order's story across the four services.

    Reads the order database and every service's parked messages (SAGA_<SERVICE>_DB_DSN).
    """
    cfg = settings()
    if stuck:
        with connect("order", cfg) as conn:
            rows = stuck_orders(conn, cfg, older_than_s)
        if as_json:
            click.echo(json.dumps({"stuck": [r.as_dict() for r in rows]}))
            return
        if not rows:
            click.echo(f"no saga without progress for {format_duration(older_than_s)}")
        for r in rows:
            click.echo(
                f"{r.order_id}  {r.status:<10} {r.waiting_s:>7.1f}s  {' | '.join(r.waiting_for)}"
            )
            for b in r.blocked_on:
                if b.state == "dead":
                    click.echo(
                        f"    blocked on DLQ entry {b.dlq_id} ({b.event_type or 'poison'}): "
                        f"{b.last_error}\n    once fixed: saga dlq redrive {b.dlq_id}"
                    )
                elif not b.queued_behind:
                    click.echo(f"    {b.dlq_id} retrying (attempt {b.attempts})")
        return
    if order_id is None:
        raise click.UsageError("give an ORDER_ID, or --stuck")
    with connect("order", cfg) as conn:
        t = build_trace(conn, cfg, order_id)
        if t is None:
            raise click.ClickException(missing_order(order_id, cfg))
        if not follow:
            click.echo(json.dumps(t.as_dict()) if as_json else render_trace(t))
            return
        # One line per step as it happens; the status and what is awaited when it changes.
        shown, said = 0, ""
        if not as_json:
            click.echo(COLUMNS)
        while True:
            for e in t.events[shown:]:
                click.echo(json.dumps(e.as_dict()) if as_json else render_event(e))
            shown = len(t.events)
            state = render_status(t) + " | waiting for: " + "; ".join(t.waiting_for)
            if not as_json and state != said:
                click.echo(render_status(t) if t.terminal else f"  ... {state}")
                said = state
            if t.terminal:
                if as_json:
                    click.echo(json.dumps(t.as_dict(events=False)))
                return
            time.sleep(0.5)
            new = build_trace(conn, cfg, order_id)
            assert new is not None
            t = new
