"""`saga bench --curve`: the sustained peak of this machine, then the system at fractions of it.

First a probe offers far more than the system can take (admission control refuses the
surplus): a first reading of the peak, and the warm-up of a cold stack (Kafka's JIT).
Refusing a surplus many times the peak costs CPU the sagas need when the load client and
the API share the machine's cores, so the peak is then held: 1.5x what the probe completed,
for two steps, and what the second of them completed is the sustained peak. The first
lets admission settle: the probe's overload leaves the adaptive in-flight limit cut, and it
grows back over some 20 s (in one run the hold's first 5 s completed 377/s, its last 30 s
620-685/s, with the limit going from 272 to 625), so a hold read over both steps was
8-12 % below what the later points completed. (The better of two one-step probes read
6-20 % above what the machine then held: its 80 % point was refusing checkouts, a machine
at capacity rather than at 80 % of it.) Then each point
offers a fraction of that peak for one step, and reports what a user sees at that load:
completed sagas/s, latency p50/p95/p99 (placed to terminal, from the saga record), the
checkouts refused, and CPU per saga by component. Every run is measured on the same
machine in the same command, so the points compare with each other and with the peak.
The report also says how much of the peak the points at 80 % or more held afterwards.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eventing.settings import Settings
from saga_cli.bench import LoadResult, body, drive, measure, wait_all_terminal
from saga_cli.catalog import set_item
from saga_cli.cpu import cpu_seconds

__all__ = ["CurvePlan", "held_by_points", "hold_rate", "run_curve"]

Groups = dict[str, int | tuple[int, ...] | None]
# The hold offers this much more than the probe completed: above the peak, so admission
# control still refuses some, but not a surplus that starves the sagas of CPU.
HOLD_FACTOR = 1.5


@dataclass(frozen=True)
class CurvePlan:
    fractions: Sequence[float]  # of the peak, e.g. (0.25, 0.5, 0.8, 1.0, 2.0)
    step_s: float  # how long each point offers its load
    probe_rate: float  # offered while finding the peak: well above what the system does
    concurrency: int
    timeout_s: float


def _point(
    cfg: Settings,
    url: str,
    rate: float,
    plan: CurvePlan,
    groups: Groups,
    say: Callable[[str], None],
    label: str,
) -> dict[str, Any]:
    """Offer `rate` checkouts/s for one of the plan's steps; what came of it."""
    run = uuid.uuid4().hex[:8]
    customer, sku = f"curve-{run}", f"CURVE-{run}"
    orders = max(1, round(rate * plan.step_s))
    set_item(cfg, sku, orders * 2, 1000, reason="bench")
    bodies = (body(customer, sku) for _ in range(orders))
    before = cpu_seconds(groups, alone=frozenset({"client"}))
    started = time.monotonic()

    def progress(r: LoadResult) -> None:
        say(
            f"  {label}: {time.monotonic() - started:5.1f}s sent {r.sent:>6} "
            f"accepted {r.n_accepted:>6} refused {r.statuses.get(429, 0):>6}"
        )

    load = drive(url, bodies, rate, plan.concurrency, progress, LoadResult(keep_ids=False))
    done = wait_all_terminal(cfg, customer, load.n_accepted, plan.timeout_s, lambda a, t: None)
    after = cpu_seconds(groups, alone=frozenset({"client"}))
    point: dict[str, Any] = {
        "offered_per_s": round(orders / max(load.send_s, 1e-3), 1),
        "accepted": load.n_accepted,
        "refused_429": load.statuses.get(429, 0),
        "errors": dict(load.errors),
        "finished": done,
    }
    if load.n_accepted:
        measured = measure(cfg, customer, load.n_accepted)
        point.update(sagas_per_s=measured["sagas_per_s"], latency_ms=measured["latency_ms"])
        point["cpu_ms_per_saga"] = {
            k: round((after[k] - before[k]) * 1000 / load.n_accepted, 3)
            for k in groups
            if groups[k]
        }
        point["cpu_ms_per_saga"]["total"] = round(sum(point["cpu_ms_per_saga"].values()), 3)
    say(
        f"  {label}: {point.get('sagas_per_s', 0):.0f} sagas/s, p50 "
        f"{point.get('latency_ms', {}).get('p50', 0):.0f} ms, p99 "
        f"{point.get('latency_ms', {}).get('p99', 0):.0f} ms, refused {point['refused_429']}"
    )
    return point


def held_by_points(points: Sequence[dict[str, Any]], peak: float) -> dict[str, float] | None:
    """The most the points at 80 % of the peak or more completed, and its fraction of the
    sustained peak: whether the peak held afterwards."""
    done = [float(p.get("sagas_per_s", 0.0)) for p in points if float(p["fraction"]) >= 0.8]
    if not done or peak <= 0:
        return None
    return {"sagas_per_s": round(max(done), 1), "of_peak": round(max(done) / peak, 3)}


def hold_rate(probe_done: float, probe_rate: float) -> float:
    """What the hold offers: HOLD_FACTOR x what the probe completed, never more than the
    probe offered."""
    return min(HOLD_FACTOR * probe_done, probe_rate)


def run_curve(
    cfg: Settings, url: str, plan: CurvePlan, groups: Groups, say: Callable[[str], None]
) -> dict[str, Any]:
    def peak_step(what: str, label: str, rate: float) -> dict[str, Any]:
        say(f"{what} the peak: offering {rate:.0f}/s for {plan.step_s:.0f}s")
        found = _point(cfg, url, rate, plan, groups, say, label)
        if float(found.get("sagas_per_s", 0.0)) <= 0:
            raise RuntimeError(f"the {label} completed nothing: {found}")
        return {"offered_rate": round(rate, 1), **found}

    first = peak_step("probing", "peak probe", plan.probe_rate)
    rate = hold_rate(float(first["sagas_per_s"]), plan.probe_rate)
    settled = peak_step("settling at", "peak settle", rate)
    held = peak_step("holding", "peak hold", rate)
    peak = float(held["sagas_per_s"])
    points = []
    for fraction in plan.fractions:
        rate = peak * fraction
        say(f"at {fraction:.0%} of the peak: offering {rate:.0f}/s for {plan.step_s:.0f}s")
        point = _point(cfg, url, rate, plan, groups, say, f"{fraction:.0%}")
        points.append({"fraction": fraction, "target_per_s": round(rate, 1), **point})
    return {
        "peak_sagas_per_s": round(peak, 1),
        "peak_probe": first,
        "peak_settle": settled,
        "peak_hold": held,
        "points": points,
        "held_by_points": held_by_points(points, peak),
    }
