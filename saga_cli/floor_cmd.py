"""`saga bench --floor [--orders N] [--batch B] [--json]`: the in-process floor (floor.py)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click
import psycopg

from eventing.settings import Settings
from saga_cli import stack
from saga_cli.floor import run_floor

__all__ = ["floor_mode"]


def _local_postmaster(cfg: Settings) -> int | None:
    """The postmaster's pid if the databases are in this stack's own cluster."""
    postgres = stack.status(cfg)["postgres"]
    return postgres["pid"] if postgres["managed"] else None


def floor_mode(cfg: Settings, orders: int, batch: int, as_json: bool) -> None:
    if batch > orders:
        raise click.UsageError(f"--batch {batch} is more than --orders {orders}")
    say: Callable[[str], None] = (lambda t: click.echo(t, err=True)) if as_json else click.echo
    say(
        f"in-process floor: {orders} checkouts in rounds of {batch}, the four services'"
        " handlers and SQL in one thread, the bus in memory (no Kafka, no HTTP)"
    )
    try:
        result = run_floor(cfg, orders, batch, _local_postmaster(cfg), progress=say)
    except psycopg.OperationalError as exc:
        raise click.ClickException(
            f"the floor needs PostgreSQL: {str(exc).strip()}\n"
            "Start the local stack with `saga stack up`, or set SAGA_PG_ADMIN_DSN."
        ) from None
    report = result.as_dict()
    if as_json:
        click.echo(json.dumps(report))
    else:
        _print(report)
    if result.completed != result.placed:
        click.echo(
            f"only {result.completed} of {result.placed} checkouts completed: the floor run"
            " is not a clean happy path (see the log lines above)",
            err=True,
        )
        sys.exit(1)


def _print(r: dict[str, Any]) -> None:
    py, pg = r["python_ms_per_saga"], r["postgres_ms_per_saga"]
    click.echo(f"\n{r['sagas']} sagas in rounds of {r['batch']}: {r['sagas_per_s']} sagas/s")
    click.echo(f"{'ms per saga':<14} {'python':>8} {'postgres':>9}")
    for name in [k for k in py if k != "total"]:
        pg_cell = f"{pg[name]:>9.3f}" if pg else f"{'-':>9}"
        click.echo(f"{name:<14} {py[name]:>8.3f} {pg_cell}")
    if pg:
        click.echo(f"{'background':<14} {'':>8} {pg['background']:>9.3f}")
    click.echo(f"{'total':<14} {py['total']:>8.3f} {pg['total'] if pg else '-':>9}")
    if pg:
        click.echo(f"all: {r['total_ms_per_saga']:.3f} ms of CPU per saga")
    if r.get("note"):
        click.echo(r["note"])
