"""`saga simulate --seeds N [--start-seed S] [--orders M] [--json]`: exit 1 on any violation."""

from __future__ import annotations

import json
import os
import sys
import time

import click
import psycopg

from eventing.logging import configure_logging
from saga_cli.db import settings
from saga_cli.simulate import SeedResult, run_seed, simulation

__all__ = ["simulate"]


@click.command()
@click.option("--seeds", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--start-seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--orders",
    type=click.IntRange(min=1, max=200),
    default=12,
    show_default=True,
    help="Orders per seed.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def simulate(seeds: int, start_seed: int, orders: int, as_json: bool) -> None:
    """Run seeded simulations of the whole checkout in one process, with faults.

    Needs only PostgreSQL (SAGA_PG_ADMIN_DSN): the four services run on scratch databases,
    dropped afterwards, over an in-memory bus. A failing seed prints its violations, its
    schedule of faults and the command that replays it exactly.
    """
    # Each seed dead-letters and retries on purpose: its log lines are noise here.
    configure_logging(os.environ.get("SAGA_SIMULATE_LOG_LEVEL", "CRITICAL"), "auto")
    cfg = settings()
    results: list[SeedResult] = []
    started = time.perf_counter()
    try:
        with simulation(cfg) as h:
            for seed in range(start_seed, start_seed + seeds):
                result = run_seed(h, seed, orders)
                results.append(result)
                if not as_json:
                    mark = "ok " if result.ok else "FAIL"
                    click.echo(
                        f"{mark} seed {seed}: {result.steps} steps, "
                        f"{', '.join(f'{n} {k}' for k, n in result.outcomes.items())}"
                        f" ({result.elapsed_s:.2f}s)"
                    )
                    if not result.ok:
                        click.echo(result.reproduction())
    except psycopg.OperationalError as exc:
        raise click.ClickException(
            f"the simulation needs PostgreSQL: {str(exc).strip()}\n"
            "Start the local stack with `saga stack up`, or set SAGA_PG_ADMIN_DSN."
        ) from None
    elapsed = time.perf_counter() - started
    failed = [r for r in results if not r.ok]
    rate = len(results) / elapsed if elapsed > 0 else 0.0
    if as_json:
        click.echo(
            json.dumps(
                {
                    "seeds": len(results),
                    "start_seed": start_seed,
                    "orders_per_seed": orders,
                    "failed": [r.as_dict() for r in failed],
                    "elapsed_s": round(elapsed, 2),
                    "seeds_per_s": round(rate, 2),
                    "results": [r.as_dict() for r in results],
                }
            )
        )
    else:
        click.echo(
            f"{len(results)} seeds, {len(failed)} failed, {elapsed:.1f}s ({rate:.1f} seeds/s)"
        )
    sys.exit(1 if failed else 0)
