"""`saga bench --orders N --rate R [--json] [--flash-sale]` and the soak,
`saga bench --duration S --rate R [--sample-every S] [--json]`, the curve (`--curve`) and the
in-process floor (`--floor`)."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
import psycopg
from click.core import ParameterSource

from eventing.kafka.limits import kafka_produce_consume_rate
from eventing.settings import SERVICES
from saga_cli import stack
from saga_cli.audit import run_audit
from saga_cli.background import background_services
from saga_cli.bench import LoadResult, body, drive, measure, ratios, wait_all_terminal
from saga_cli.bench_client import Connection
from saga_cli.bench_limits import pg_commit_rate
from saga_cli.bench_topology import topology
from saga_cli.catalog import ensure_schemas, set_item
from saga_cli.cpu import cpu_seconds
from saga_cli.curve import CurvePlan, run_curve
from saga_cli.curve_svg import curve_svg
from saga_cli.db import settings
from saga_cli.floor_cmd import floor_mode
from saga_cli.proc_stats import broker_pids
from saga_cli.soak import Processes, SoakPlan, default_warmup, run_soak

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
@click.option(
    "--duration",
    type=click.FloatRange(min=1, min_open=False),
    help="Soak mode: offer --rate checkouts/s for this many seconds (instead of --orders),"
    " sample as it runs and judge whether throughput and sizes stay flat; exit 1 if not.",
)
@click.option(
    "--sample-every",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Soak mode: seconds per sample.",
)
@click.option(
    "--warmup",
    type=click.FloatRange(min=0),
    help="Soak mode: seconds before the steady part (default: a tenth of the run, at least"
    " one sample, at most 300 s).",
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
@click.option(
    "--curve",
    is_flag=True,
    help="Find the sustained peak, then run at --points of it; a table, --json, and an SVG.",
)
@click.option(
    "--points",
    default="25,50,80,100,200",
    show_default=True,
    help="With --curve: the loads to run, in percent of the peak.",
)
@click.option(
    "--step",
    "step_s",
    type=click.FloatRange(min=5),
    default=30.0,
    show_default=True,
    help="With --curve: seconds each point offers its load (so do the peak's probe, settle, hold).",
)
@click.option(
    "--probe-rate",
    type=click.FloatRange(min=1),
    default=3000.0,
    show_default=True,
    help=(
        "With --curve: what the peak probe offers (well above what the system takes);"
        " the hold then offers 1.5x what the probe completed, and what it completes is the"
        " sustained peak."
    ),
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --curve: where to write the curve's JSON and SVG (default: the stack dir).",
)
@click.option(
    "--floor",
    is_flag=True,
    help="The in-process floor: --orders checkouts through the four services' handlers and SQL"
    " in one thread, the bus in memory, in rounds of --batch; CPU per saga by service.",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="With --floor: checkouts placed and settled per round.",
)
@click.option(
    "--instances",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Instances per service when the bench starts the services itself.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result on stdout.")
@click.pass_context
def bench(
    ctx: click.Context,
    orders: int,
    rate: float,
    duration: float | None,
    sample_every: float,
    warmup: float | None,
    concurrency: int,
    flash_sale: bool,
    limits: bool,
    url: str | None,
    timeout: float,
    curve: bool,
    points: str,
    step_s: float,
    probe_rate: float,
    out_dir: Path | None,
    floor: bool,
    batch: int,
    instances: int,
    as_json: bool,
) -> None:
    """Load the real API and services; report sagas/s, latency and ratios to raw limits.

    With --duration: a soak at a steady rate, sampled every --sample-every seconds (sizes,
    active sagas, memory), with a verdict on flatness. With --curve: the latency curve.
    The report names the topology it ran on (brokers, replication, instances). Uses the
    stack of the SAGA_* variables and the API at SAGA_HTTP_HOST:SAGA_HTTP_PORT; services it
    starts itself run with this command's environment (e.g. the SAGA_*_RETENTION_S ones).
    """
    if floor:
        if curve or duration is not None or flash_sale:
            raise click.UsageError(
                "--floor is a mode of its own: not with --curve, --duration or --flash-sale"
            )
        floor_mode(settings(), orders, batch, as_json)
        return
    fractions = _fractions(points) if curve else ()
    if curve and (duration is not None or flash_sale):
        raise click.UsageError("--curve is a mode of its own: not with --duration or --flash-sale")
    soak = duration is not None
    if soak:
        _check_soak_options(ctx, duration or 0.0, rate, sample_every, warmup, flash_sale)
    cfg = settings()
    url = url or f"http://{cfg.http_host}:{cfg.http_port}"
    run = uuid.uuid4().hex[:8]
    customer = f"bench-{run}"
    ensure_schemas(cfg, SERVICES)
    mode = "curve" if curve else "soak" if soak else "flash-sale" if flash_sale else "steady"
    result: dict[str, Any] = {
        "orders": orders,
        "rate": rate,
        "mode": mode,
        "run": run,
        "url": url,
    }
    say = functools.partial(_say, as_json)
    with ExitStack() as stack_ctx:
        services_pid = None
        if not _api_up(url):
            log = Path(cfg.stack_dir) / f"bench-{run}-services.log"
            say(f"starting the four services (logs: {log})")
            # Benchmarks measure the system, not its logging: warnings and errors only.
            proc = stack_ctx.enter_context(
                background_services(
                    log,
                    env={"SAGA_LOG_LEVEL": os.environ.get("SAGA_LOG_LEVEL", "WARNING")},
                    instances=instances,
                )
            )
            services_pid = proc.pid
        if limits:
            say("measuring raw limits: Kafka produce/consume, PostgreSQL commits ...")
            result["limits"] = {
                **kafka_produce_consume_rate(cfg.kafka_bootstrap_servers),
                **pg_commit_rate(cfg.dsn("order")),
            }
            say("  " + json.dumps(result["limits"]))
        sku = f"{'FLASH' if flash_sale else 'BENCH'}-{run}"
        planned = round((duration or 0.0) * rate) if soak else orders
        set_item(cfg, sku, FLASH_STOCK if flash_sale else planned * 2, 1000, reason="bench")
        local = stack.status(cfg)
        procs = Processes(
            services=services_pid,
            kafka=tuple(broker_pids(local["kafka"])),
            postgres=local["postgres"]["pid"],
        )
        groups: dict[str, int | tuple[int, ...] | None] = {
            "services": procs.services,
            "kafka": procs.kafka,
            "postgres": procs.postgres,
            "client": procs.client,
        }
        result["topology"] = topology(cfg)
        say(f"topology: {json.dumps(result['topology'])}")
        cpu_before = cpu_seconds(groups, alone=frozenset({"client"}))
        started = time.monotonic()
        if curve:
            curve_plan = CurvePlan(fractions, step_s, probe_rate, concurrency, timeout)
            result.update(run_curve(cfg, url, curve_plan, groups, say))
            where = out_dir or Path(cfg.stack_dir)
            where.mkdir(parents=True, exist_ok=True)
            svg = where / f"bench-curve-{run}.svg"
            topo = result["topology"]
            svg.write_text(
                curve_svg(
                    result,
                    f"checkout-saga: latency against throughput ({topo.get('kafka_brokers')} "
                    f"broker(s), RF {topo.get('replication_factor')})",
                )
            )
            (where / f"bench-curve-{run}.json").write_text(json.dumps(result, indent=2))
            result["svg"] = str(svg)
            say(f"curve written to {svg}")
            accepted = sum(p["accepted"] for p in result["points"])
            done = sum(p["finished"] for p in result["points"])
            result["errors"] = {k: v for p in result["points"] for k, v in p["errors"].items()}
        elif soak:
            plan = SoakPlan(
                duration_s=duration or 0.0,
                rate=rate,
                sample_every_s=sample_every,
                warmup_s=default_warmup(duration or 0.0, sample_every)
                if warmup is None
                else warmup,
                concurrency=concurrency,
                timeout_s=timeout,
            )
            result.update(run_soak(cfg, url, customer, body(customer, sku), plan, procs, say))
            if services_pid is None:
                result["verdict"]["notes"].append(
                    "the services were already running: the retention windows come from this "
                    "command's environment, which may not be theirs, and their memory is not "
                    "sampled (let the bench start them to have both)"
                )
            accepted, done = result["accepted"], result["finished"]
        else:
            accepted, done = _run_orders(
                cfg,
                url,
                customer,
                sku,
                orders,
                rate,
                flash_sale,
                concurrency,
                timeout,
                say,
                result,
            )
        cpu_after = cpu_seconds(groups, alone=frozenset({"client"}))
        elapsed = time.monotonic() - started
        if accepted:
            result["cpu_ms_per_saga"] = {
                k: round((cpu_after[k] - cpu_before[k]) * 1000 / accepted, 3)
                for k in groups
                if groups[k]
            }
            result["cpu_cores_busy"] = round(
                sum(cpu_after[k] - cpu_before[k] for k in groups) / elapsed, 2
            )
        if "limits" in result and "sagas_per_s" in result:
            result["ratios"] = ratios(result["sagas_per_s"], result["limits"])
    if as_json:
        click.echo(json.dumps(result))
    elif curve:
        _print_curve(result)
    else:
        _print(result)
    failed = (
        done < accepted
        or bool(result["errors"])
        or (flash_sale and not result["flash_sale"]["ok"])
        or (soak and not result["verdict"]["ok"])
    )
    sys.exit(1 if failed else 0)


def _fractions(points: str) -> tuple[float, ...]:
    try:
        values = tuple(float(p) / 100 for p in points.split(",") if p.strip())
    except ValueError:
        raise click.BadParameter(
            "percentages of the peak, comma-separated, e.g. 25,50,80,100,200", param_hint="--points"
        ) from None
    if not values or any(v <= 0 for v in values):
        raise click.BadParameter("give at least one percentage above 0", param_hint="--points")
    return values


def _print_curve(r: dict[str, Any]) -> None:
    probe, hold = r["peak_probe"], r["peak_hold"]
    click.echo(
        f"\nsustained peak {r['peak_sagas_per_s']:.0f} sagas/s (held {hold['offered_rate']:.0f}/s"
        f" offered, after a step at that rate that completed"
        f" {r['peak_settle']['sagas_per_s']:.0f}/s; the probe at {probe['offered_rate']:.0f}/s"
        f" completed {probe['sagas_per_s']:.0f}/s); topology {r['topology']}"
    )
    held = r.get("held_by_points")
    if held is not None:
        click.echo(
            f"the points at 80 % or more held at most {held['sagas_per_s']:.0f} sagas/s,"
            f" {held['of_peak']:.0%} of the sustained peak"
        )
    click.echo(
        f"{'load':>6} {'offered/s':>10} {'done/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
        f" {'refused':>8} {'CPU ms/saga':>12}"
    )
    for p in r["points"]:
        lat = p.get("latency_ms", {})
        cpu = p.get("cpu_ms_per_saga", {})
        click.echo(
            f"{p['fraction']:>6.0%} {p['offered_per_s']:>10.0f} {p.get('sagas_per_s', 0):>8.0f}"
            f" {lat.get('p50', 0):>8.0f} {lat.get('p95', 0):>8.0f} {lat.get('p99', 0):>8.0f}"
            f" {p['refused_429']:>8} {cpu.get('total', 0):>12.2f}"
        )
    click.echo(f"picture: {r['svg']}")


def _check_soak_options(
    ctx: click.Context,
    duration: float,
    rate: float,
    sample_every: float,
    warmup: float | None,
    flash_sale: bool,
) -> None:
    if flash_sale:
        raise click.UsageError("--duration (soak) and --flash-sale are two modes: give one")
    if ctx.get_parameter_source("orders") is ParameterSource.COMMANDLINE:
        raise click.UsageError(
            "--duration runs for a time and --orders for a count: give one of them"
        )
    if rate <= 0:
        raise click.UsageError("a soak needs a steady --rate above 0 checkouts/s")
    if sample_every > duration:
        raise click.UsageError(
            f"--sample-every {sample_every:g} is longer than --duration {duration:g}: "
            "no sample would be taken"
        )
    if warmup is not None and warmup >= duration:
        raise click.UsageError(f"--warmup {warmup:g} leaves nothing of --duration {duration:g}")


def _run_orders(
    cfg: Any,
    url: str,
    customer: str,
    sku: str,
    orders: int,
    rate: float,
    flash_sale: bool,
    concurrency: int,
    timeout: float,
    say: Callable[[str], None],
    result: dict[str, Any],
) -> tuple[int, int]:
    """`--orders N`: place them, wait for them, measure; returns (accepted, finished)."""
    bodies = [body(customer, sku) for _ in range(orders)]
    started = time.monotonic()

    def progress(r: LoadResult) -> None:
        say(
            f"  {time.monotonic() - started:6.1f}s sent {r.sent:>7} "
            f"accepted {len(r.accepted):>7} refused {r.statuses.get(429, 0):>6}"
            + (f" errors {sum(r.errors.values())}" if r.errors else ""),
        )

    offered = 0.0 if flash_sale else rate
    say(
        f"placing {orders} checkouts for {sku} "
        f"{'as fast as possible' if not offered else f'at {offered:.0f}/s'} ...",
    )
    load = drive(url, bodies, offered, concurrency, progress)
    progress(load)
    say(
        f"offered {orders / load.send_s:.0f}/s; waiting for "
        f"{len(load.accepted)} accepted sagas to finish ...",
    )
    last = [0.0]

    def report(accepted: int, terminal: int) -> None:
        if time.monotonic() - last[0] >= 2:
            last[0] = time.monotonic()
            say(f"  {time.monotonic() - started:6.1f}s finished {terminal}/{accepted}")

    done = wait_all_terminal(cfg, customer, len(load.accepted), timeout, report)
    result.update(
        {
            "accepted": len(load.accepted),
            "refused_429": load.statuses.get(429, 0),
            "errors": dict(load.errors),
            "offered_per_s": round(orders / load.send_s, 1),
            "finished": done,
            "elapsed_s": round(time.monotonic() - started, 1),
        }
    )
    if load.accepted:
        result.update(measure(cfg, customer, len(load.accepted)))
    if flash_sale:
        result["flash_sale"] = _flash_verdict(cfg, sku, load, result.get("outcomes", {}), orders)
    return len(load.accepted), done


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
    if "verdict" in r:
        _print_soak(r)
    if "flash_sale" in r:
        f = r["flash_sale"]
        click.echo(
            f"flash sale: {f['completed']} completed of {f['stock']} in stock, "
            f"{f['out_of_stock']} out of stock, {f['refused_429']} refused (429), "
            f"shipped {f['shipped']}, audit violations {f['audit_violations']}: "
            + ("OK" if f["ok"] else f"FAILED {f['checks']}")
        )


def _print_soak(r: dict[str, Any]) -> None:
    click.echo(f"\nsoak: {r['duration_s']:g} s at {r['rate']:g}/s offered, series:")
    click.echo(
        "   t_s  sagas/s   p99 ms  in flight  active  "
        + "  ".join(f"{db[:5]:>7}" for db in r["series"][0]["db_bytes"])
        + "  (database MB)"
        if r["series"]
        else "   (no sample)"
    )
    for s in r["series"]:
        p99 = "-" if s["p99_ms"] is None else f"{s['p99_ms']:.0f}"
        click.echo(
            f"{s['t_s']:>6g} {s['sagas_per_s']:>8.1f} {p99:>8} {s['in_flight']:>10} "
            f"{s['active_sagas'] if s['active_sagas'] is not None else '?':>7}  "
            + "  ".join(f"{v / 1e6:>7.1f}" for v in s["db_bytes"].values())
        )
    if r["series"]:
        click.echo(
            "memory at the end (MB): "
            + ", ".join(f"{k} {v / 1e6:.0f}" for k, v in r["series"][-1]["rss_bytes"].items())
        )
    v = r["verdict"]
    click.echo(
        f"throughput {v['first_window_sagas_per_s']} -> {v['last_window_sagas_per_s']} "
        f"sagas/s (flat: {v['throughput_flat']}); sizes from {v['size_reference_t_s']} s to "
        f"the end: {v['db_growth']} (flat: {v['sizes_flat']})"
    )
    for note in v["notes"]:
        click.echo(f"  note: {note}")
    click.echo("soak verdict: " + ("OK" if v["ok"] else "NOT FLAT"))
