"""Prometheus metrics move when orders flow, read with Prometheus's own text parser; each
service answers /healthz and /readyz."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from eventing.settings import SERVICES, Settings
from tests.e2e.harness import Services, new_sku, place, wait_for, wait_terminal

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int, path: str = "/metrics") -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
        text = reply.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum over samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def grew(port: int, before: Samples, name: str, by: float, **labels: str) -> Callable[[], bool]:
    return lambda: value(scrape(port), name, **labels) - value(before, name, **labels) >= by


def test_metrics_move_as_orders_flow(settings: Settings, running: Services) -> None:
    ports = {s: running[s].metrics_port for s in SERVICES}
    before = {s: scrape(p) for s, p in ports.items()}
    sku = new_sku(settings, qty=10)
    orders = [place(settings, items={sku: 1}) for _ in range(3)]
    for o in orders:
        assert wait_terminal(settings, o)["status"] == "COMPLETED"

    wait_for(
        "inventory to count 3 handled OrderPlaced",
        grew(ports["inventory"], before["inventory"], "saga_events_consumed_total", 3,
             service="inventory", topic="orders.events", outcome="handled"),
    )  # fmt: skip
    wait_for(
        "the order service to time 3 completed sagas",
        grew(ports["order"], before["order"], "saga_duration_seconds_count", 3,
             outcome="completed"),
    )  # fmt: skip
    wait_for(
        "the order relay to count its published OrderPlaced",
        grew(ports["order"], before["order"], "saga_events_published_total", 3,
             service="order", topic="orders.events"),
    )  # fmt: skip
    payment = scrape(ports["payment"])
    assert value(payment, "saga_batch_size_count", service="payment") > value(
        before["payment"], "saga_batch_size_count", service="payment"
    )
    # Sampled gauges and librdkafka's lag are there (every few seconds).
    wait_for(
        "the backlog gauges",
        lambda: (
            ("saga_outbox_unsent", frozenset({("service", "fulfillment")}))
            in scrape(ports["fulfillment"])
        ),
    )
    wait_for(
        "consumer lag per partition",
        lambda: (
            value(scrape(ports["inventory"]), "saga_consumer_lag", service="inventory") >= 0
            and any(n == "saga_consumer_lag" for n, _ in scrape(ports["inventory"]))
        ),
        timeout=20,
    )
    assert ("saga_in_flight", frozenset()) in scrape(ports["order"])


def test_health_and_readiness(running: Services) -> None:
    for service in SERVICES:
        port = running[service].metrics_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            assert r.status == 200
        try:
            ready = wait_for(f"{service} ready", lambda p=port: _ready(p), timeout=20)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; /readyz said {_LAST_READY.get(port)}") from None
        assert ready["partitions"] > 0


def _ready(port: int) -> dict[str, object] | None:
    """The /readyz answer when it says ready (None otherwise, for wait_for to try again)."""
    body = _get(f"http://127.0.0.1:{port}/readyz")
    answer: dict[str, object] = json.loads(body) if body else {}
    _LAST_READY[port] = answer
    return answer if answer.get("status") == "ok" else None


_LAST_READY: dict[int, dict[str, object]] = {}


def test_api_metrics(running: Services) -> None:
    api_url = f"http://127.0.0.1:{running.http_port}"
    wait_for("the checkout API", lambda: _get(f"{api_url}/healthz") is not None, timeout=60)
    before = _get(f"{api_url}/metrics") or ""
    _get(f"{api_url}/orders/not-a-uuid")
    after = _get(f"{api_url}/metrics") or ""

    def count(text: str) -> float:
        samples = {
            (s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
        }
        return value(samples, "saga_http_requests_total", route="/orders/{order_id}", code="422")

    assert count(after) - count(before) == 1
    assert "saga_admission_limit" in after


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return str(r.read().decode())
    except urllib.error.HTTPError as exc:
        return str(exc.read().decode())
    except OSError:
        return None
