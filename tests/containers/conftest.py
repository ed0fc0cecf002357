"""The container tests run only when asked for: they need a Docker engine and the images of
`make images`, and the compose one takes minutes on two cores."""

from __future__ import annotations

import re

import pytest

from tests.containers import infra


def _selected(config: pytest.Config) -> bool:
    """-m naming `containers` (not `not containers`), or tests/containers given as a path."""
    markexpr = str(config.getoption("markexpr") or "")
    if re.search(r"(?<!not )\bcontainers\b", markexpr):
        return True
    return any("tests/containers" in str(arg) for arg in config.args)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if infra.containers_requested() or _selected(config):
        return
    skip = pytest.mark.skip(
        reason="needs a Docker engine and `make images`: run `make compose-test`, or select "
        "it (-m containers, or the path tests/containers), or set SAGA_TEST_INFRA=containers"
    )
    for item in items:
        if item.get_closest_marker("containers"):
            item.add_marker(skip)
