"""End-to-end fixtures: the four services as real processes over the real stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventing.settings import Settings
from saga_cli.catalog import ensure_schemas
from tests.e2e.harness import Services


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
