"""The soak verdict on hand-made series: flat, growing, a throughput drop, too short; and the
retention window it waits for, from the settings."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import pytest

from eventing.settings import SERVICES, Settings, load_settings
from saga_cli.soak import default_warmup
from saga_cli.soak_verdict import retention_windows, verdict

MB = 1_000_000
DBS = SERVICES


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    # The suite may run with SAGA_* set for a stack elsewhere: start from none.
    for name in list(os.environ):
        if name.startswith("SAGA_"):
            monkeypatch.delenv(name)
    return load_settings()


def series(
    duration_s: float,
    every_s: float = 30.0,
    rate: Callable[[float], float] = lambda t: 500.0,
    size: Callable[[float], float] = lambda t: 40.0,
) -> list[dict[str, Any]]:
    """Samples of a run: `rate(t)` sagas/s and every database `size(t)` MB at time t."""
    out = []
    t = every_s
    while t <= duration_s + 1e-9:
        mb = size(t)
        out.append(
            {
                "t_s": t,
                "sagas_per_s": rate(t),
                "p99_ms": 250.0,
                "db_bytes": dict.fromkeys(DBS, int(mb * MB)),
                "largest_tables": {db: {"saga_steps": int(mb * MB * 0.6)} for db in DBS},
                "active_sagas": 3000,
                "rss_bytes": {"order": 80 * MB},
            }
        )
        t += every_s
    return out


def judge(samples: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"sample_every_s": 30.0, "warmup_s": 180.0, "retention_window_s": 55.0}
    return verdict(samples, **{**args, **kw})


def settling(t: float) -> float:
    """Sizes that grow while the retention windows fill, then hold with a little noise."""
    return 20.0 + 25.0 * min(t, 235.0) / 235.0 + (0.8 if int(t / 30) % 2 else -0.8)


def test_flat_run_is_ok() -> None:
    v = judge(series(1800, size=settling, rate=lambda t: 500.0 + (7 if int(t) % 60 else -7)))
    assert v["throughput_flat"] is True and v["sizes_flat"] is True and v["ok"] is True
    # Five minutes of 30 s samples after the 180 s warm-up, and the last five minutes.
    assert v["first_window_sagas_per_s"] == pytest.approx(500.0, abs=7)
    assert v["last_window_sagas_per_s"] == pytest.approx(500.0, abs=7)
    assert abs(v["throughput_change"]) <= 0.10
    # The reference is the first sample once warm-up + the longest window have passed.
    assert v["retention_passed_at_s"] == 235.0
    assert v["size_reference_t_s"] == 240.0
    assert set(v["db_growth"]) == set(DBS)
    assert all(abs(g) < 0.15 for g in v["db_growth"].values())
    assert v["notes"] == []


def test_a_database_that_keeps_growing_is_not_flat_and_the_note_names_its_table() -> None:
    v = judge(series(1800, size=lambda t: 20.0 + t / 30))  # +1 MB per sample, forever
    assert v["throughput_flat"] is True
    assert v["sizes_flat"] is False and v["ok"] is False
    assert v["db_growth"]["order"] == pytest.approx(80 / 28 - 1, rel=1e-3)
    assert any("order database" in n and "saga_steps +" in n for n in v["notes"]), v["notes"]


def test_a_database_that_shrinks_by_more_than_the_tolerance_is_not_flat_either() -> None:
    v = judge(series(1800, size=lambda t: 60.0 if t < 1000 else 40.0))
    assert v["sizes_flat"] is False
    assert v["db_growth"]["payment"] == pytest.approx(-1 / 3, rel=1e-3)


def test_a_throughput_drop_at_the_end_fails() -> None:
    v = judge(series(1800, size=settling, rate=lambda t: 500.0 if t <= 1400 else 400.0))
    assert v["sizes_flat"] is True
    assert v["throughput_flat"] is False and v["ok"] is False
    assert v["first_window_sagas_per_s"] == 500.0
    assert v["last_window_sagas_per_s"] == 400.0
    assert v["throughput_change"] == pytest.approx(-0.2)
    assert any("throughput changed by -20.0%" in n for n in v["notes"])
    # Below the offered rate at the end: said, whatever the flatness.
    offered = judge(series(1800, size=settling, rate=lambda t: 400.0), offered_per_s=500.0)
    assert offered["throughput_flat"] is True
    assert any("did not keep up" in n for n in offered["notes"])


def test_a_starved_load_generator_is_named_as_the_cause() -> None:
    samples = series(1800, size=settling, rate=lambda t: 500.0 if t <= 1400 else 300.0)
    for s in samples:  # the client sent 500/s, then only 300/s from 1400 s on
        t = s["t_s"]
        s["sent"] = int(500 * min(t, 1400) + 300 * max(0.0, t - 1400))
    v = judge(samples, offered_per_s=500.0)
    assert v["throughput_flat"] is False
    assert any("sent only 300.0 checkouts/s" in n for n in v["notes"]), v["notes"]
    # A system that falls behind a client that keeps sending is not blamed on the client.
    for s in samples:
        s["sent"] = int(500 * s["t_s"])
    v = judge(samples, offered_per_s=500.0)
    assert any("did not keep up" in n for n in v["notes"])
    assert not any("sent only" in n for n in v["notes"])


def test_a_drop_within_the_warm_up_does_not_count() -> None:
    v = judge(series(1800, size=settling, rate=lambda t: 100.0 if t <= 180 else 500.0))
    assert v["throughput_flat"] is True
    assert v["first_window_sagas_per_s"] == 500.0


def test_a_short_run_compares_fifths_and_says_so() -> None:
    # CI-sized: 120 s, 10 s samples, warm-up 20 s -> 10 samples after warm-up, fifths of 2.
    samples = series(120, every_s=10.0, size=lambda t: 30.0 if t >= 80 else 10 + t / 4)
    v = judge(samples, sample_every_s=10.0, warmup_s=20.0, retention_window_s=55.0)
    assert v["ok"] is True
    assert v["size_reference_t_s"] == 80.0
    assert any("first and the last fifth (2 sample(s) of 10 s)" in n for n in v["notes"])


def test_too_short_to_pass_the_retention_windows_is_not_a_pass() -> None:
    samples = series(60, every_s=10.0)
    v = judge(samples, sample_every_s=10.0, warmup_s=10.0, retention_window_s=55.0)
    assert v["throughput_flat"] is True
    assert v["sizes_flat"] is None and v["size_reference_t_s"] is None and v["db_growth"] == {}
    assert v["ok"] is False
    assert any("sizes not judged" in n and "at least 75 s" in n for n in v["notes"]), v["notes"]


def test_no_sample_after_warm_up_judges_nothing() -> None:
    v = judge(series(60, every_s=30.0), warmup_s=45.0)
    assert v["throughput_flat"] is None and v["sizes_flat"] is None and v["ok"] is False
    assert any("throughput not judged" in n for n in v["notes"])


def test_retention_window_is_the_longest_life_of_any_partitioned_row(settings: Settings) -> None:
    compressed = dataclasses.replace(
        settings,
        inbox_retention_s=20,
        inbox_partition_s=5,
        outbox_retention_s=10,
        outbox_partition_s=5,
        archive_after_s=5,
        archive_retention_s=30,
        archive_partition_s=10,
        steps_partition_s=10,
    )
    w = retention_windows(compressed)
    assert w["inventory.inbox"] == 25 and w["payment.outbox"] == 15
    assert w["order.orders_archive"] == 5 + 30 + 10  # archived 5 s after the saga settled
    assert w["order.saga_steps"] == 5 + 30 + 10
    # The gateway's ledger outlives payment's archive by a partition: the longest of all.
    assert max(w, key=lambda k: w[k]) == "payment.gateway_ledger"
    assert w["payment.gateway_ledger"] == 5 + 30 + 10 + 10
    assert {k.split(".")[0] for k in w} == set(SERVICES)


def test_default_warm_up_is_a_tenth_in_whole_samples() -> None:
    assert default_warmup(120, 10) == 20  # 12 s, rounded up to whole samples
    assert default_warmup(1800, 30) == 180
    assert default_warmup(60, 30) == 30  # at least one sample
    assert default_warmup(7200, 30) == 300  # at most 5 minutes
