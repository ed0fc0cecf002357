"""`saga bench --duration S --rate R`: steady load for a long time, sampled as it runs.

Every `sample_every_s` one sample records the sagas completed in that window and their p99,
the size of each service database and of its largest tables, the rows of the active saga
table, and the memory of every process; at the end `saga_cli.soak_verdict` judges whether
throughput and sizes stayed flat.

The load runs in a thread of its own (the lean asyncio client of `saga_cli.bench`); the
main thread counts completions and takes the samples. Both are light next to the system
they measure, and both are bounded in memory whatever the duration: bodies are made as
they are sent, accepted orders are only counted, latencies go into a bounded histogram.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import click
import psycopg

from eventing.maintenance import partition_specs
from eventing.partitions import NEVER, list_partitions
from eventing.settings import SERVICES, Settings
from saga_cli.background import child_pids
from saga_cli.bench import LoadResult, drive
from saga_cli.completions import CompletionCounter
from saga_cli.db_sizes import database_bytes, largest_tables
from saga_cli.proc_stats import group_memory, service_processes
from saga_cli.services import spec_for
from saga_cli.soak_verdict import retention_windows, verdict

__all__ = ["Processes", "SoakPlan", "default_warmup", "run_soak", "wider_partitions"]

Say = Callable[[str], None]

# How far behind the database's clock completions are counted: see saga_cli.completions.
_LAG = timedelta(seconds=3)
_TOP_TABLES = 5
_TICK_S = 5.0
_DRAIN_POLL_S = 0.5


@dataclass(frozen=True)
class SoakPlan:
    duration_s: float
    rate: float
    sample_every_s: float
    warmup_s: float
    concurrency: int
    timeout_s: float  # for the sagas still in flight when the load stops


@dataclass(frozen=True)
class Processes:
    """Where the system runs: the roots of the process trees whose memory is sampled."""

    services: int | None  # the `saga run all` supervisor, when the bench started it
    kafka: tuple[int, ...] = ()
    postgres: int | None = None
    client: int = field(default_factory=os.getpid)


def default_warmup(duration_s: float, sample_every_s: float) -> float:
    """A tenth of the run, at least one sample and at most 5 minutes, in whole samples."""
    wanted = min(300.0, max(sample_every_s, duration_s / 10))
    return math.ceil(wanted / sample_every_s - 1e-9) * sample_every_s


class _Resources:
    """Database sizes, active sagas and process memory, read at each sample."""

    def __init__(self, cfg: Settings, procs: Processes) -> None:
        self.cfg, self.procs = cfg, procs
        self._conns: dict[str, psycopg.Connection[Any]] = {}
        self.measures: dict[str, str] = {}
        self.errors: list[str] = []

    def _conn(self, service: str) -> psycopg.Connection[Any]:
        if service not in self._conns:
            self._conns[service] = psycopg.connect(
                self.cfg.dsn(service), autocommit=True, connect_timeout=5
            )
        return self._conns[service]

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def databases(self) -> dict[str, Any]:
        sizes: dict[str, int] = {}
        tables: dict[str, dict[str, int]] = {}
        active: int | None = None
        for service in SERVICES:
            try:
                conn = self._conn(service)
                sizes[service] = database_bytes(conn)
                tables[service] = largest_tables(conn, _TOP_TABLES)
                if service == "order":
                    row = conn.execute("SELECT count(*) FROM orders").fetchone()
                    active = int(row[0]) if row else None
            except psycopg.Error as exc:
                # A sample with a gap beats a soak that dies an hour in: say it, reconnect.
                self.errors.append(f"{service} database: {str(exc).strip()}")
                gone = self._conns.pop(service, None)
                if gone is not None:
                    gone.close()
        return {"db_bytes": sizes, "largest_tables": tables, "active_sagas": active}

    def memory(self) -> dict[str, int]:
        groups: dict[str, tuple[list[int], str]] = {}
        if self.procs.services:
            for role, pids in service_processes(self.procs.services).items():
                groups[role] = (pids, "rss")
        if self.procs.kafka:
            groups["kafka"] = (list(self.procs.kafka), "rss")
        if self.procs.postgres:
            groups["postgres"] = (child_pids(self.procs.postgres), "pss")
        groups["client"] = ([self.procs.client], "rss")
        out: dict[str, int] = {}
        for name, (pids, measure) in groups.items():
            found = group_memory(pids, measure)
            if found is not None:
                out[name] = found.bytes
                self.measures[name] = found.measure
        return out


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f}"


def _progress(sample: dict[str, Any]) -> str:
    p99 = sample["p99_ms"]
    dbs = " ".join(f"{k} {_mb(v)}" for k, v in sample["db_bytes"].items())
    rss = " ".join(f"{k} {_mb(v)}" for k, v in sample["rss_bytes"].items())
    return (
        f"  t={sample['t_s']:>6g}s {sample['sagas_per_s']:7.1f} sagas/s p99 "
        f"{'-' if p99 is None else f'{p99:.0f}'} ms; in flight {sample['in_flight']}, "
        f"active {sample['active_sagas']}; sent {sample['sent']} refused "
        f"{sample['refused_429']}\n      db MB: {dbs}\n      memory MB: {rss}"
    )


def _load(url: str, body: bytes, plan: SoakPlan, result: LoadResult, failed: list[str]) -> None:
    try:
        total = round(plan.duration_s * plan.rate)
        drive(url, itertools.repeat(body, total), plan.rate, plan.concurrency, _quiet, result)
    except Exception as exc:  # reported by the main thread, which decides what to do
        failed.append(f"{type(exc).__name__}: {exc}")
        result.done = True


def wider_partitions(cfg: Settings) -> str | None:
    """Partitions still ahead that were made under other settings (e.g. before the retention
    was compressed for this soak), or None. Rows go into them until they end and stay for
    the retention after that, so sizes cannot settle before: said up front."""
    found: list[str] = []
    settle: datetime | None = None
    for service in SERVICES:
        with psycopg.connect(cfg.dsn(service), autocommit=True, connect_timeout=5) as conn:
            row = conn.execute("SELECT now()").fetchone()
            assert row is not None
            now: datetime = row[0]
            for spec in partition_specs(spec_for(service)):
                step = spec.interval(cfg)
                odd = [
                    p
                    for p in list_partitions(conn, spec.table)
                    if p.upper > now and p.lower != NEVER and p.upper - p.lower != step
                ]
                if odd:
                    until = max(p.upper for p in odd)
                    width = (odd[-1].upper - odd[-1].lower).total_seconds()
                    found.append(
                        f"{service}.{spec.table} {width:g} s wide (configured "
                        f"{step.total_seconds():g} s) to {until:%Y-%m-%d %H:%M}Z"
                    )
                    ends = until + spec.retention(cfg)
                    settle = ends if settle is None else max(settle, ends)
    if not found or settle is None:
        return None
    return (
        "partitions made under other settings reach ahead: " + ", ".join(found) + "; rows go "
        f"into them until they end, so sizes cannot settle before {settle:%Y-%m-%d %H:%M}Z: "
        "soak on fresh databases (or wait)"
    )


def _quiet(_: LoadResult) -> None:
    return None


def _check(load_failed: list[str]) -> None:
    if load_failed:
        raise click.ClickException(
            f"the load generator failed: {load_failed[0]}; the samples so far are lost, "
            "run again (a smaller --concurrency or --rate if the client ran out of something)"
        )


def _sample(
    k: int, plan: SoakPlan, counter: CompletionCounter, load: LoadResult, res: _Resources
) -> dict[str, Any]:
    window = counter.close_window()
    p99 = window.p99_ms()
    return {
        "t_s": round(k * plan.sample_every_s, 3),
        "sagas_per_s": round(window.completed / plan.sample_every_s, 2),
        "p99_ms": None if p99 is None else round(p99, 1),
        "completed": window.completed,
        "in_flight": counter.in_flight,
        "sent": load.sent,
        "accepted": load.n_accepted,
        "refused_429": load.statuses.get(429, 0),
        **res.databases(),
        "rss_bytes": res.memory(),
    }


def _drain(
    counter: CompletionCounter,
    load: LoadResult,
    thread: threading.Thread,
    timeout_s: float,
    say: Say,
) -> None:
    """Until every accepted saga of the run is counted, or nothing is in flight any more and
    everything that ended before that moment is counted (a shortfall is then reported, not
    waited for), or `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    quiet_since: datetime | None = None
    last_report = time.monotonic()
    far = datetime.max.replace(tzinfo=counter.start.tzinfo)
    while True:
        counted = counter.advance(far, _LAG)
        if not thread.is_alive():
            if counter.in_flight == 0:
                quiet_since = quiet_since or counter.now
                if counter.total >= load.n_accepted or counted >= quiet_since:
                    return
            else:
                quiet_since = None
        if time.monotonic() >= deadline:
            return
        if time.monotonic() - last_report >= 5:
            last_report = time.monotonic()
            say(
                f"  finished {counter.total}/{load.n_accepted} accepted, "
                f"{counter.in_flight} in flight"
            )
        time.sleep(_DRAIN_POLL_S)


def _sample_and_drain(
    plan: SoakPlan,
    counter: CompletionCounter,
    load: LoadResult,
    load_failed: list[str],
    thread: threading.Thread,
    resources: _Resources,
    series: list[dict[str, Any]],
    say: Say,
) -> None:
    every = timedelta(seconds=plan.sample_every_s)
    k = 1
    while k * plan.sample_every_s <= plan.duration_s + 1e-9:
        _check(load_failed)
        boundary = counter.start + k * every
        if counter.advance(boundary, _LAG) >= boundary:
            series.append(_sample(k, plan, counter, load, resources))
            say(_progress(series[-1]))
            k += 1
            continue
        # Count a part of the window now and then: each query stays small.
        time.sleep(max(0.05, min(_TICK_S, (boundary + _LAG - counter.now).total_seconds())))
    say(f"sampling done; waiting for the sagas in flight (up to {plan.timeout_s:g} s) ...")
    _drain(counter, load, thread, plan.timeout_s, say)


def run_soak(
    cfg: Settings,
    url: str,
    customer: str,
    body: bytes,
    plan: SoakPlan,
    procs: Processes,
    say: Say,
) -> dict[str, Any]:
    """Offer `plan.rate` checkouts/s of `body` for `plan.duration_s`, sampling as it goes;
    then wait for the sagas in flight. Returns the soak's part of the bench result."""
    windows = retention_windows(cfg)
    longest = max(windows, key=lambda k: windows[k])
    say(
        f"soak: {plan.rate:g} checkouts/s for {plan.duration_s:g} s, a sample every "
        f"{plan.sample_every_s:g} s, warm-up {plan.warmup_s:g} s; longest retention window "
        f"{windows[longest]:g} s ({longest}), passed at "
        f"{plan.warmup_s + windows[longest]:g} s"
    )
    mismatched = wider_partitions(cfg)
    if mismatched:
        say(f"warning: {mismatched}")
    series: list[dict[str, Any]] = []
    load = LoadResult(keep_ids=False)
    load_failed: list[str] = []
    resources = _Resources(cfg, procs)
    with ExitStack() as stack:
        stack.callback(resources.close)
        counter = CompletionCounter(cfg.dsn("order"), customer)
        stack.callback(counter.close)
        started = time.monotonic()
        thread = threading.Thread(
            target=_load, args=(url, body, plan, load, load_failed), daemon=True, name="load"
        )
        thread.start()
        try:
            _sample_and_drain(plan, counter, load, load_failed, thread, resources, series, say)
        except psycopg.Error as exc:
            raise click.ClickException(
                f"the soak lost the order database while counting: {str(exc).strip()}; see "
                "`saga stack status`, then run again"
            ) from None
        _check(load_failed)
    elapsed = time.monotonic() - started
    send_s = load.send_s if load.done and load.send_s else elapsed
    hist = counter.histogram
    judged = verdict(
        series,
        sample_every_s=plan.sample_every_s,
        warmup_s=plan.warmup_s,
        retention_window_s=windows[longest],
        offered_per_s=plan.rate,
    )
    judged["longest_retention_window"] = longest
    if mismatched:
        judged["notes"].append(mismatched)
    post = [s for s in series if s["t_s"] - plan.sample_every_s >= plan.warmup_s - 1e-9]
    steady = post or series
    out: dict[str, Any] = {
        "orders": load.sent,
        "duration_s": plan.duration_s,
        "sample_every_s": plan.sample_every_s,
        "warmup_s": plan.warmup_s,
        "accepted": load.n_accepted,
        "refused_429": load.statuses.get(429, 0),
        "errors": dict(load.errors),
        "offered_per_s": round(load.sent / max(send_s, 1e-3), 1),
        "finished": counter.total,
        "in_flight_at_end": counter.in_flight,
        "elapsed_s": round(elapsed, 1),
        # From the end of sending to the last saga's end (database clock).
        "drain_s": round(
            max(0.0, (counter.last_terminal - counter.start).total_seconds() - send_s), 2
        ),
        "sagas_per_s": round(sum(s["sagas_per_s"] for s in steady) / max(len(steady), 1), 1),
        "overall_sagas_per_s": round(
            sum(s["completed"] for s in series)
            / max(len(series) * plan.sample_every_s, plan.sample_every_s),
            1,
        ),
        "outcomes": dict(counter.outcomes),
        "retention_windows_s": windows,
        "rss_measure": {
            **resources.measures,
            "note": "postgres: PSS summed over the postmaster and its backends, so shared "
            "buffers count once; every other process: RSS",
        },
        "series": series,
        "verdict": judged,
    }
    if hist.count:
        out["latency_ms"] = {
            "p50": round(hist.quantile(0.5) or 0.0, 1),
            "p95": round(hist.quantile(0.95) or 0.0, 1),
            "p99": round(hist.quantile(0.99) or 0.0, 1),
            "max": round(hist.max_ms, 1),
        }
    if resources.errors:
        out["sample_errors"] = resources.errors[:20]
    return out
