"""`saga trace ORDER_ID [--json] [--follow]` and `saga trace --stuck`."""

from __future__ import annotations

import json
import re
import time
import uuid

import click

from saga_cli.db import connect, settings
from saga_cli.trace import build_trace, render_trace, stuck_orders

__all__ = ["trace"]


def _duration(value: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", value.strip())
    if not m:
        raise click.BadParameter(f"{value!r}: expected a duration like 30s, 500ms, 5m")
    n, unit = float(m.group(1)), m.group(2) or "s"
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


@click.command()
@click.argument("order_id", type=click.UUID, required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--follow", is_flag=True, help="Keep printing new steps until the order ends.")
@click.option("--stuck", is_flag=True, help="List sagas that are not terminal.")
@click.option(
    "--older-than",
    default="30s",
    show_default=True,
    help="With --stuck: only sagas without progress for this long.",
)
def trace(
    order_id: uuid.UUID | None, as_json: bool, follow: bool, stuck: bool, older_than: str
) -> None:
    """One order's story across the four services."""
    cfg = settings()
    if stuck:
        with connect("order", cfg) as conn:
            rows = stuck_orders(conn, cfg, _duration(older_than))
        if as_json:
            click.echo(json.dumps({"stuck": rows}))
            return
        if not rows:
            click.echo(f"no saga without progress for {older_than}")
        for r in rows:
            blocked = "; ".join(f"{b['dlq_id']} {b['state']}" for b in r["blocked_on"])
            click.echo(
                f"{r['order_id']}  {r['status']:<10} {r['waiting_s']:>7.1f}s  "
                f"{' | '.join(r['waiting_for'])}" + (f"  [{blocked}]" if blocked else "")
            )
        return
    if order_id is None:
        raise click.UsageError("give an ORDER_ID, or --stuck")
    with connect("order", cfg) as conn:
        t = build_trace(conn, cfg, order_id)
        if t is None:
            raise click.ClickException(
                f"no order {order_id} in the order database (placed elsewhere and not seen yet?)"
            )
        if not follow:
            click.echo(json.dumps(t) if as_json else render_trace(t))
            return
        shown = 0
        while True:
            if as_json:
                for e in t["events"][shown:]:
                    click.echo(json.dumps(e))
            else:
                text = render_trace(t).splitlines()
                click.echo("\n".join(text if shown == 0 else text[2 + shown :]))
            shown = len(t["events"])
            if t["status"] in ("COMPLETED", "CANCELLED"):
                return
            time.sleep(0.5)
            new = build_trace(conn, cfg, order_id)
            assert new is not None
            t = new
