"""`saga bench --orders N --rate R [--json] [--flash-sale]`."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
import psycopg

from eventing.kafka.limits import kafka_produce_consume_rate
from saga_cli import stack
from saga_cli.audit import run_audit
from saga_cli.background import background_services
from saga_cli.bench import LoadResult, body, drive, measure, ratios, wait_all_terminal
from saga_cli.bench_client import Connection
from saga_cli.bench_limits import pg_commit_rate
from saga_cli.catalog import ensure_schemas, set_item
from saga_cli.cpu import cpu_seconds
from saga_cli.db import settings

__all__ = ["bench"]

FLASH_STOCK = 100


def _say(as_json: bool, text: str) -> None:
    # Progress goes to stderr so that --json output stays clean on stdout.
    click.echo(text, err=True) if as_json else click.echo(text)


def _api_up(url: str) -> bool:
    import asyncio

    host, _, port = url.removeprefix("http://").partition(":")

    async def probe() -> bool:
        conn = Connection(host, int(port))
        try:
            return (await conn.request("GET", "/healthz")).status == 200
        except OSError:
            return False
        finally:
            conn.close()

    return asyncio.run(probe())


def _flash_verdict(
    cfg: Any, sku: str, load: LoadResult, outcomes: dict[str, int], orders: int
) -> dict[str, Any]:
    with psycopg.connect(cfg.dsn("inventory"), autocommit=True) as conn:
        row = conn.execute(
            "SELECT on_hand, reserved, shipped FROM stock WHERE sku = %s", (sku,)
        ).fetchone()
    assert row is not None
    on_hand, reserved, shipped = row
    refused = load.statuses.get(429, 0)
    completed = outcomes.get("COMPLETED", 0)
    sold_out = outcomes.get("CANCELLED(out_of_stock)", 0)
    audit = run_audit(cfg, older_than_s=0.0)
    checks = {
        "exactly_stock_completed": completed == FLASH_STOCK,
        "others_out_of_stock_or_refused": completed + sold_out + refused == orders,
        "zero_oversold": shipped == FLASH_STOCK and on_hand == 0 and reserved == 0,
        "every_accepted_terminal": sum(outcomes.values()) == len(load.accepted)
        and completed + sold_out == len(load.accepted),
        "audit_clean": not audit.violations,
    }
    return {
        "stock": FLASH_STOCK,
        "completed": completed,
        "out_of_stock": sold_out,
        "refused_429": refused,
        "shipped": shipped,
        "on_hand": on_hand,
        "audit_violations": len(audit.violations),
        "checks": checks,
        "ok": all(checks.values()),
    }


@click.command()
@click.option("--orders", default=10_000, show_default=True, help="Checkouts to place.")
@click.option(
    "--rate",
    default=1000.0,
    show_default=True,
    help="Checkouts offered per second (0: as fast as the API answers).",
)
@click.option("--concurrency", default=64, show_default=True, help="Client connections.")
@click.option(
    "--flash-sale",
    is_flag=True,
    help=f"All orders for one SKU with {FLASH_STOCK} units, as fast as possible.",
)
@click.option(
    "--limits/--no-limits",
    default=True,
    show_default=True,
    help="Measure the raw Kafka and PostgreSQL limits first.",
)
@click.option("--url", help="Checkout API (default: SAGA_HTTP_HOST:SAGA_HTTP_PORT).")
@click.option(
    "--timeout",
    default=600.0,
    show_default=True,
    help="Seconds to wait for accepted orders to finish.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result on stdout.")
def bench(
    orders: int,
    rate: float,
    concurrency: int,
    flash_sale: bool,
    limits: bool,
    url: str | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Load the real API and services; report sagas/s, latency and ratios to raw limits."""
    cfg = settings()
    url = url or f"http://{cfg.http_host}:{cfg.http_port}"
    run = uuid.uuid4().hex[:8]
    customer = f"bench-{run}"
    ensure_schemas(cfg, ("order", "inventory", "payment", "fulfillment"))
    result: dict[str, Any] = {
        "orders": orders,
        "rate": rate,
        "mode": "flash-sale" if flash_sale else "steady",
        "run": run,
        "url": url,
    }
    with ExitStack() as stack_ctx:
        services_pid = None
        if not _api_up(url):
            log = Path(cfg.stack_dir) / f"bench-{run}-services.log"
            _say(as_json, f"starting the four services (logs: {log})")
            # Benchmarks measure the system, not its logging: warnings and errors only.
            proc = stack_ctx.enter_context(
                background_services(
                    log, env={"SAGA_LOG_LEVEL": os.environ.get("SAGA_LOG_LEVEL", "WARNING")}
                )
            )
            services_pid = proc.pid
        if limits:
            _say(as_json, "measuring raw limits: Kafka produce/consume, PostgreSQL commits ...")
            result["limits"] = {
                **kafka_produce_consume_rate(cfg.kafka_bootstrap_servers),
                **pg_commit_rate(cfg.dsn("order")),
            }
            _say(as_json, "  " + json.dumps(result["limits"]))
        sku = f"{'FLASH' if flash_sale else 'BENCH'}-{run}"
        set_item(cfg, sku, FLASH_STOCK if flash_sale else orders * 2, 1000, reason="bench")
        bodies = [body(customer, sku) for _ in range(orders)]
        local = stack.status(cfg)
        groups = {
            "services": services_pid,
            "kafka": local["kafka"]["pid"],
            "postgres": local["postgres"]["pid"],
            "client": os.getpid(),
        }
        cpu_before = cpu_seconds(groups, alone=frozenset({"client"}))
        started = time.monotonic()

        def progress(r: LoadResult) -> None:
            _say(
                as_json,
                f"  {time.monotonic() - started:6.1f}s sent {r.sent:>7} "
                f"accepted {len(r.accepted):>7} refused {r.statuses.get(429, 0):>6}"
                + (f" errors {sum(r.errors.values())}" if r.errors else ""),
            )

        offered = 0.0 if flash_sale else rate
        _say(
            as_json,
            f"placing {orders} checkouts for {sku} "
            f"{'as fast as possible' if not offered else f'at {offered:.0f}/s'} ...",
        )
        load = drive(url, bodies, offered, concurrency, progress)
        progress(load)
        _say(
            as_json,
            f"offered {orders / load.send_s:.0f}/s; waiting for "
            f"{len(load.accepted)} accepted sagas to finish ...",
        )
        last = [0.0]

        def report(accepted: int, terminal: int) -> None:
            if time.monotonic() - last[0] >= 2:
                last[0] = time.monotonic()
                _say(
                    as_json, f"  {time.monotonic() - started:6.1f}s finished {terminal}/{accepted}"
                )

        done = wait_all_terminal(cfg, customer, len(load.accepted), timeout, report)
        cpu_after = cpu_seconds(groups, alone=frozenset({"client"}))
        elapsed = time.monotonic() - started
        result.update(
            {
                "accepted": len(load.accepted),
                "refused_429": load.statuses.get(429, 0),
                "errors": dict(load.errors),
                "offered_per_s": round(orders / load.send_s, 1),
                "finished": done,
                "elapsed_s": round(elapsed, 1),
            }
        )
        if load.accepted:
            result.update(measure(cfg, customer, len(load.accepted)))
            result["cpu_ms_per_saga"] = {
                k: round((cpu_after[k] - cpu_before[k]) * 1000 / len(load.accepted), 3)
                for k in groups
                if groups[k]
            }
            result["cpu_cores_busy"] = round(
                sum(cpu_after[k] - cpu_before[k] for k in groups) / elapsed, 2
            )
        if "limits" in result and "sagas_per_s" in result:
            result["ratios"] = ratios(result["sagas_per_s"], result["limits"])
        if flash_sale:
            result["flash_sale"] = _flash_verdict(
                cfg, sku, load, result.get("outcomes", {}), orders
            )
    if as_json:
        click.echo(json.dumps(result))
    else:
        _print(result)
    failed = (
        done < len(load.accepted)
        or bool(load.errors)
        or (flash_sale and not result["flash_sale"]["ok"])
    )
    sys.exit(1 if failed else 0)


def _print(r: dict[str, Any]) -> None:
    click.echo(
        f"\nsustained {r.get('sagas_per_s', 0):.0f} completed sagas/s "
        f"(overall {r.get('overall_sagas_per_s', 0):.0f}/s), offered {r['offered_per_s']:.0f}/s;"
        f" accepted {r['accepted']}, refused {r['refused_429']}, finished {r['finished']}"
    )
    if "latency_ms" in r:
        lat = r["latency_ms"]
        click.echo(
            f"saga latency placed->terminal: p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f}"
            f" ms, p99 {lat['p99']:.0f} ms, max {lat['max']:.0f} ms"
        )
        click.echo(f"outcomes: {r['outcomes']}")
    if "limits" in r:
        lim = r["limits"]
        click.echo(
            f"raw limits, same machine, same run: Kafka produce "
            f"{lim['kafka_produce_msgs_per_s']:,} msg/s, consume "
            f"{lim['kafka_consume_msgs_per_s']:,} msg/s; PostgreSQL "
            f"{lim['pg_commits_per_s']:,} commits/s one event each, "
            f"{lim['pg_batched_events_per_s']:,} events/s in batches of "
            f"{lim['pg_batch_size']}"
        )
        click.echo(
            "our share of those limits: "
            + ", ".join(f"{k} {v:.1%}" for k, v in r.get("ratios", {}).items())
        )
    if "cpu_ms_per_saga" in r:
        click.echo(
            "CPU per saga: "
            + ", ".join(f"{k} {v:.2f} ms" for k, v in r["cpu_ms_per_saga"].items())
            + f" ({r['cpu_cores_busy']} cores busy on average)"
        )
    if "flash_sale" in r:
        f = r["flash_sale"]
        click.echo(
            f"flash sale: {f['completed']} completed of {f['stock']} in stock, "
            f"{f['out_of_stock']} out of stock, {f['refused_429']} refused (429), "
            f"shipped {f['shipped']}, audit violations {f['audit_violations']}: "
            + ("OK" if f["ok"] else f"FAILED {f['checks']}")
        )
