"""Fixtures shared by every suite.

Integration tests run against the real stack (`saga stack up`, or the servers the SAGA_*
variables point at). When it is not there they FAIL with a message saying so: a suite that
silently skips its real tests would pass while proving nothing.

SAGA_TEST_INFRA=containers gets Kafka and PostgreSQL from testcontainers instead, for the
session (tests/containers/infra.py); the default, `local`, is the local stack.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eventing.settings import Settings, load_settings
from saga_cli import stack as stack_lib
from saga_cli.catalog import ensure_schemas
from tests.containers import infra
from tests.e2e.diagnose import system_report
from tests.e2e.harness import Services

SagaRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    if infra.containers_requested():
        # Started on first use, so a unit-only run starts no container; the SAGA_* variables
        # it exports reach every service and `saga` process the tests start.
        with infra.containers_stack(tmp_path_factory.mktemp("containers")) as cfg:
            yield cfg
        return
    yield load_settings()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # With SAGA_TEST_INFRA=containers, the tests of the local stack itself are skipped (saying
    # why); otherwise nothing changes.
    infra.skip_local_stack_tests(items)


@pytest.fixture(scope="session")
def saga_exe() -> str:
    """The `saga` console script of the interpreter running the tests."""
    beside = Path(sys.executable).parent / "saga"
    found = str(beside) if beside.exists() else shutil.which("saga")
    if not found:
        pytest.fail("the `saga` command is not installed: run `pip install -e '.[dev]'`")
    return found


@pytest.fixture(scope="session")
def run_saga(saga_exe: str) -> SagaRunner:
    """Run `saga ARGS...` as a user would; `env` replaces the environment when given."""

    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 240.0
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [saga_exe, *args],
            env=env if env is not None else dict(os.environ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture(scope="session")
def stack(settings: Settings) -> dict[str, Any]:
    """The status of the running stack; fails every test that needs it when it is down."""
    report = stack_lib.status(settings)
    if not report["healthy"]:
        kafka, pg = report["kafka"], report["postgres"]
        problems = []
        if not kafka["healthy"]:
            down = ", ".join(
                f"broker {b['id']} down" for b in kafka.get("brokers", []) if not b["healthy"]
            )
            problems.append(f"Kafka at {kafka['bootstrap_servers']}: {kafka['error'] or down}")
        problems += [f"PostgreSQL {svc}: {err}" for svc, err in pg["errors"].items()]
        if infra.containers_requested():
            pytest.fail(
                "The containers of SAGA_TEST_INFRA=containers stopped answering:\n  "
                + "\n  ".join(problems)
                + "\nSee `docker ps -a` and `docker logs` of the checkout-saga/kafka and "
                "checkout-saga/postgres containers.",
                pytrace=False,
            )
        pytest.fail(
            "The stack is not up, and integration tests need it:\n  "
            + "\n  ".join(problems)
            + "\nStart it with `saga stack up` (`make test` does it for you), or point the "
            "SAGA_* variables at your own Kafka and PostgreSQL.",
            pytrace=False,
        )
    return report


# --- the four services as real processes (e2e and chaos suites) ------------------------


@pytest.fixture(scope="session")
def services(
    stack: dict[str, Any], settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Services]:
    """All four services, started once per test session; tests restart what they kill."""
    ensure_schemas(settings, ("order", "inventory", "payment", "fulfillment"))
    log_dir: Path = tmp_path_factory.mktemp("service-logs")
    procs = Services(settings, log_dir)
    procs.start_all()
    yield procs
    procs.stop_all()


@pytest.fixture
def running(services: Services) -> Iterator[Services]:
    """The services, and after the test every one of them running again."""
    yield services
    for s in services.by_name.values():
        if s.proc is None or s.proc.poll() is not None:
            s.start()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that ran the services reports what they were doing: CI keeps no logs."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call" and report.failed:
        # `running`, `api` and the like depend on `services`: it is among the item's fixtures.
        procs = getattr(item, "funcargs", {}).get("services")
        if isinstance(procs, Services):
            report.sections.append(
                (
                    "the system at the failure",
                    system_report(procs.settings) + "\n" + procs.diagnosis(),
                )
            )
