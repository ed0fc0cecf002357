"""Is a soak run flat? The verdict on a series of samples, and the windows it waits for.

The rules (issue 8): the throughput of the last 5 minutes is within 10 % of the first 5
minutes after warm-up, and each database's size at the end is within 15 % of its size once
the retention windows have been passed, i.e. once every kind of per-event data has had the
time to be written, kept as long as configured, and dropped.

`verdict` is a pure function of the samples, so it can be checked on series made by hand.
A verdict that cannot be reached (the run is too short) is not a pass: `ok` is then False
and a note says what run would be long enough.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import fmean
from typing import Any

from eventing.maintenance import partition_specs
from eventing.settings import SERVICES, Settings
from saga_cli.services import spec_for

__all__ = [
    "SIZE_TOLERANCE",
    "THROUGHPUT_TOLERANCE",
    "WINDOW_S",
    "retention_windows",
    "verdict",
]

WINDOW_S = 300.0
THROUGHPUT_TOLERANCE = 0.10
SIZE_TOLERANCE = 0.15
_EPS = 1e-6


def retention_windows(settings: Settings) -> dict[str, float]:
    """For each time-partitioned table, `<service>.<table>`: how long after a row is written
    it may still be on disk. A row lives its retention past the end of its partition, so
    retention + one partition; an archive row is written only SAGA_ARCHIVE_AFTER_S after
    its saga settled, so that comes on top."""
    out: dict[str, float] = {}
    for service in SERVICES:
        for table in partition_specs(spec_for(service)):
            after = settings.archive_after_s if table.table.endswith("_archive") else 0.0
            out[f"{service}.{table.table}"] = (
                table.retention_s(settings) + table.interval_s(settings) + after
            )
    return out


def _window_samples(post: int, sample_every_s: float, window_s: float) -> int:
    """Samples in each compared window: `window_s` worth, or a fifth of a shorter run."""
    n = max(1, round(window_s / sample_every_s))
    return n if post >= 2 * n else max(1, post // 5)


def _sent_per_s(samples: Sequence[Mapping[str, Any]]) -> float | None:
    """Checkouts sent per second over `samples` (cumulative "sent" at each), if recorded."""
    if len(samples) < 2 or any("sent" not in s for s in samples):
        return None
    span = samples[-1]["t_s"] - samples[0]["t_s"]
    return (samples[-1]["sent"] - samples[0]["sent"]) / span if span > 0 else None


def _mean_rate(samples: Sequence[Mapping[str, Any]]) -> float:
    return fmean(float(s["sagas_per_s"]) for s in samples)


def _throughput(
    post: Sequence[Mapping[str, Any]], sample_every_s: float, window_s: float, notes: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "throughput_flat": None,
        "first_window_sagas_per_s": None,
        "last_window_sagas_per_s": None,
        "throughput_change": None,
    }
    if len(post) < 2:
        notes.append(
            f"throughput not judged: {len(post)} sample(s) after warm-up, at least 2 needed"
        )
        return out
    k = _window_samples(len(post), sample_every_s, window_s)
    first, last = post[:k], post[-k:]
    if len(post) < 2 * max(1, round(window_s / sample_every_s)):
        notes.append(
            f"run too short for two {window_s:.0f} s windows after warm-up: compared the first"
            f" and the last fifth ({k} sample(s) of {sample_every_s:g} s) of the {len(post)}"
            " samples after warm-up"
        )
    first_rate, last_rate = _mean_rate(first), _mean_rate(last)
    out["first_window_sagas_per_s"] = round(first_rate, 1)
    out["last_window_sagas_per_s"] = round(last_rate, 1)
    if first_rate <= 0:
        out["throughput_flat"] = False
        notes.append("no saga completed in the first window after warm-up")
        return out
    change = last_rate / first_rate - 1
    out["throughput_change"] = round(change, 4)
    out["throughput_flat"] = abs(change) <= THROUGHPUT_TOLERANCE
    if not out["throughput_flat"]:
        notes.append(
            f"throughput changed by {change:+.1%} ({first_rate:.1f} -> {last_rate:.1f} sagas/s),"
            f" more than {THROUGHPUT_TOLERANCE:.0%}"
        )
    return out


def _grown_tables(ref: Mapping[str, Any], end: Mapping[str, Any], db: str) -> str:
    """The tables of `db` that grew most between the two samples, for the note."""
    before = ref.get("largest_tables", {}).get(db, {})
    after = end.get("largest_tables", {}).get(db, {})
    grown = sorted(
        ((after[t] - before.get(t, 0), t) for t in after if after[t] > before.get(t, 0)),
        reverse=True,
    )
    return ", ".join(f"{t} +{d / 1e6:.1f} MB" for d, t in grown[:3]) or "no table of the top list"


def _sizes(
    series: Sequence[Mapping[str, Any]],
    reference_at_s: float,
    sample_every_s: float,
    notes: list[str],
) -> dict[str, Any]:
    out: dict[str, Any] = {"sizes_flat": None, "size_reference_t_s": None, "db_growth": {}}
    ref = next((s for s in series if s["t_s"] >= reference_at_s - _EPS), None)
    end = series[-1] if series else None
    if ref is None or end is None or ref is end:
        last = end["t_s"] if end is not None else 0
        notes.append(
            f"sizes not judged: the run's last sample is at {last:g} s, and the retention"
            f" windows are passed only at {reference_at_s:g} s (warm-up + the longest"
            f" window); run for at least {reference_at_s + sample_every_s:g} s"
        )
        return out
    out["size_reference_t_s"] = ref["t_s"]
    growth: dict[str, float] = {}
    for db, size in end["db_bytes"].items():
        base = ref["db_bytes"].get(db)
        if base:
            growth[db] = round(size / base - 1, 4)
    out["db_growth"] = growth
    out["sizes_flat"] = bool(growth) and all(abs(g) <= SIZE_TOLERANCE for g in growth.values())
    for db, g in growth.items():
        if abs(g) > SIZE_TOLERANCE:
            notes.append(
                f"{db} database {g:+.1%} from {ref['t_s']:g} s to {end['t_s']:g} s, more than"
                f" {SIZE_TOLERANCE:.0%}: {_grown_tables(ref, end, db)}"
            )
    return out


def verdict(
    series: Sequence[Mapping[str, Any]],
    *,
    sample_every_s: float,
    warmup_s: float,
    retention_window_s: float,
    window_s: float = WINDOW_S,
    offered_per_s: float | None = None,
) -> dict[str, Any]:
    """Flat throughput and flat database sizes, judged on `series` (samples of `saga bench
    --duration`, each covering the `sample_every_s` seconds before its `t_s`)."""
    notes: list[str] = []
    # A sample belongs to the steady part when all of its window lies after the warm-up.
    post = [s for s in series if s["t_s"] - sample_every_s >= warmup_s - _EPS]
    reference_at_s = warmup_s + retention_window_s
    out: dict[str, Any] = {
        **_throughput(post, sample_every_s, window_s, notes),
        **_sizes(series, reference_at_s, sample_every_s, notes),
        "retention_passed_at_s": reference_at_s,
        "warmup_s": warmup_s,
    }
    last = out["last_window_sagas_per_s"]
    if offered_per_s and last is not None and last < offered_per_s * (1 - THROUGHPUT_TOLERANCE):
        notes.append(
            f"completed {last:.1f} sagas/s at the end of {offered_per_s:g}/s offered: the system"
            " did not keep up with the offered load"
        )
        k = _window_samples(len(post), sample_every_s, window_s)
        sent = _sent_per_s(post[-(k + 1) :])
        if sent is not None and sent < offered_per_s * (1 - THROUGHPUT_TOLERANCE):
            notes.append(
                f"the load generator itself sent only {sent:.1f} checkouts/s then: it was short"
                " of CPU, so the machine was busier than this soak (other load on it?)"
            )
    out["ok"] = out["throughput_flat"] is True and out["sizes_flat"] is True
    out["notes"] = notes
    return out
