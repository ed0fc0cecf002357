"""The seeded simulation (`saga simulate`): a few hundred seeds on every CI run, thousands on
demand (marker soak), each judged by the audit's invariants and liveness."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from click.testing import CliRunner

from eventing.testing import SagaHarness
from saga_cli import simulate_cmd
from saga_cli.simulate import SeedResult, run_seed
from saga_cli.simulate_cmd import simulate

pytestmark = pytest.mark.integration

CI_SEEDS = range(0, 100)
CI_ORDERS = 8


def run_many(h: SagaHarness, seeds: range, orders: int, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    failed: list[SeedResult] = []
    for seed in seeds:
        result = run_seed(h, seed, orders)
        if not result.ok:
            failed.append(result)
    elapsed = time.perf_counter() - started
    with capsys.disabled():  # the rate belongs in CI's log
        print(
            f"\nsimulation: {len(seeds)} seeds of {orders} orders in {elapsed:.1f}s "
            f"({len(seeds) / elapsed:.1f} seeds/s), {len(failed)} failed"
        )
    assert not failed, "\n\n".join(r.reproduction() for r in failed[:5])


def test_every_seed_holds_every_invariant(
    checkout: SagaHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    run_many(checkout, CI_SEEDS, CI_ORDERS, capsys)


@pytest.mark.soak
@pytest.mark.timeout(3600)  # ~3 seeds/s on 2 cores: longer than the suite's 10 minutes
def test_thousands_of_seeds_hold_every_invariant(
    checkout: SagaHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    run_many(checkout, range(10_000, 13_000), 12, capsys)


def test_a_seed_replays_exactly_whatever_ran_before(checkout: SagaHarness) -> None:
    first = run_seed(checkout, 4242, 10)
    run_seed(checkout, 7, 10)  # other state in between: the databases are reset
    again = run_seed(checkout, 4242, 10)
    assert first.ok and again.ok
    assert first.faults, "a seed schedules faults"
    assert (again.digest, again.faults, again.outcomes) == (
        first.digest,
        first.faults,
        first.outcomes,
    )
    assert run_seed(checkout, 4243, 10).digest != first.digest


@pytest.fixture
def quiet_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The command turns logging down for the process: put it back for the other tests.

    Its configuration caches each logger on first use, with the processors and level of
    that moment: a logger first used in here would keep logging at CRITICAL, past
    `structlog.testing.capture_logs`, in every later test of the session. So the command
    configures logging as it does, but without that cache."""
    real = simulate_cmd.configure_logging

    def uncached(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)
        structlog.configure(cache_logger_on_first_use=False)

    monkeypatch.setattr(simulate_cmd, "configure_logging", uncached)
    yield
    structlog.reset_defaults()


@pytest.mark.usefixtures("quiet_cli")
def test_the_command_reports_seeds_and_rate_as_json() -> None:
    out = CliRunner().invoke(
        simulate, ["--seeds", "3", "--start-seed", "11", "--orders", "4", "--json"]
    )
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert (report["seeds"], report["start_seed"], report["failed"]) == (3, 11, [])
    assert report["seeds_per_s"] > 0
    assert [r["seed"] for r in report["results"]] == [11, 12, 13]


@pytest.mark.usefixtures("quiet_cli")
def test_a_failing_seed_exits_1_with_its_reproduction(monkeypatch: pytest.MonkeyPatch) -> None:
    from payment_svc.gateway import Gateway

    # The bug seed 112 found, put back: a charge made by an attempt that crashed before its
    # commit is refused as too late once the deadline passed.
    monkeypatch.setattr(Gateway, "charge_answered", lambda self, order_id: False)
    out = CliRunner().invoke(simulate, ["--seeds", "1", "--start-seed", "112"])
    assert out.exit_code == 1, out.output
    assert "FAIL seed 112" in out.output
    assert "money" in out.output and "CANCELLED (reservation_expired)" in out.output
    assert "schedule of faults" in out.output and "crash before_commit" in out.output
    assert "replay: saga simulate --seeds 1 --start-seed 112 --orders 12" in out.output
