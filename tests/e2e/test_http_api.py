"""The checkout HTTP server over the real services: an accepted order completes, admission
control answers 429 with Retry-After, a taken port stops the service, the API's worker
processes share the port and die with it, SIGTERM stops it gracefully.

What the API answers (Idempotency-Key replays and conflicts, concurrent duplicates, a 422
naming the field for every kind of bad input, 404 and 422 for order ids, never a 5xx for
any body, header or path) runs in process in tests/sim/test_http_api.py and
tests/sim/test_fuzz_http_api.py, on the same Starlette app and Placer.

The limits are tested on separate API processes with their own port and tiny limits, so
the shared services keep their defaults.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from eventing.settings import Settings
from saga_cli.stack.procs import port_free
from tests.e2e.harness import (
    TEST_ENV,
    Services,
    connect,
    event_types,
    new_sku,
    wait_for,
    wait_terminal,
)
from tests.ports import free_port

pytestmark = pytest.mark.e2e


def body(
    sku: str, qty: int = 1, *, card: str = "tok_ok", country: str = "US", customer: str = "http-e2e"
) -> dict[str, Any]:
    return {
        "customer_id": customer,
        "items": [{"sku": sku, "qty": qty}],
        "card_token": card,
        "ship_to": {"country": country, "city": "Springfield"},
    }


def healthy(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def api(settings: Settings, services: Services) -> Iterator[httpx.Client]:
    """A client of the shared order service's API (it listens once the service is up)."""
    base = f"http://127.0.0.1:{services.http_port}"
    with httpx.Client(base_url=base, timeout=30) as client:
        wait_for(f"the checkout API at {base}", lambda: healthy(client), timeout=60)
        yield client


def orders_with_key(settings: Settings, key: str) -> list[uuid.UUID]:
    with connect(settings, "order") as conn:
        rows = conn.execute(
            "SELECT order_id FROM orders WHERE idempotency_key = %s", (key,)
        ).fetchall()
    return [r[0] for r in rows]


def orders_of_customer(settings: Settings, customer: str) -> int:
    with connect(settings, "order") as conn:
        row = conn.execute(
            "SELECT count(*) FROM orders WHERE customer_id = %s", (customer,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def in_flight(settings: Settings) -> int:
    with connect(settings, "order") as conn:
        row = conn.execute(
            "SELECT count(*) FROM orders WHERE status IN ('PENDING', 'CANCELLING')"
        ).fetchone()
    assert row is not None
    return int(row[0])


def steady_in_flight(settings: Settings) -> int:
    """The in-flight count once no saga is moving (unchanged for a second)."""
    seen: list[int] = []

    def steady() -> bool:
        seen.append(in_flight(settings))
        return len(seen) >= 5 and len(set(seen[-5:])) == 1

    wait_for("no saga in motion", steady, timeout=60, interval=0.25)
    return seen[-1]


def at_once(n: int, send: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """`n` requests released together from `n` threads; every answer, in arrival order."""
    start = threading.Barrier(n)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def one() -> None:
        start.wait()
        resp = send()
        with lock:
            answers.append(resp)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return answers


def test_checkout_is_accepted_and_completes(settings: Settings, api: httpx.Client) -> None:
    sku = new_sku(settings, qty=5, price_minor=1250)
    resp = api.post("/orders", json=body(sku, 2))
    assert resp.status_code == 202, resp.text
    answer = resp.json()
    assert set(answer) == {"order_id", "status"} and answer["status"] == "PENDING"
    order_id = uuid.UUID(answer["order_id"])
    assert resp.headers["location"] == f"/orders/{order_id}"
    t = wait_terminal(settings, order_id)
    assert (t["status"], t["cancel_reason"]) == ("COMPLETED", None)
    assert event_types(t) == [
        "OrderPlaced",
        "InventoryReserved",
        "PaymentCharged",
        "ShipmentScheduled",
    ]

    shown = api.get(f"/orders/{order_id}")
    assert shown.status_code == 200
    order = shown.json()
    assert (order["order_id"], order["status"], order["cancel_reason"]) == (
        str(order_id),
        "COMPLETED",
        None,
    )
    assert order["items"] == [{"sku": sku, "qty": 2, "unit_price_minor": 1250}]
    assert (order["total_minor"], order["currency"]) == (2500, "USD")
    assert order["ship_to"]["city"] == "Springfield"
    assert "card_token" not in order


# --- admission control, on API processes of their own ------------------------------------

_API_ONLY = """
import signal, threading
from eventing.logging import configure_logging
from eventing.settings import load_settings
from order_svc.api.server import http_api

settings = load_settings()
configure_logging(settings.log_level, settings.log_format, service="order")
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
api = threading.Thread(target=http_api, args=(settings, stop))
api.start()
while api.is_alive():
    api.join(0.2)
"""


@pytest.fixture
def api_process(
    services: Services, tmp_path: Path
) -> Iterator[Callable[[dict[str, str]], httpx.Client]]:
    """Start the checkout API alone (no consumer: the shared order service's relay publishes
    what it places) with extra settings, on a port of its own."""
    procs: list[subprocess.Popen[bytes]] = []
    clients: list[httpx.Client] = []

    def start(extra: dict[str, str]) -> httpx.Client:
        port = free_port()
        env = {
            **os.environ,
            **TEST_ENV,
            "SAGA_HTTP_HOST": "127.0.0.1",
            "SAGA_HTTP_PORT": str(port),
            **extra,
        }
        log = (tmp_path / f"api-{port}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _API_ONLY], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        )
        log.close()
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        clients.append(client)
        wait_for(f"an API process on port {port}", lambda: healthy(client), timeout=30)
        return client

    yield start
    for c in clients:
        c.close()
    for p in procs:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0


def test_over_the_rate_limit_is_429_with_retry_after(
    settings: Settings, api_process: Callable[[dict[str, str]], httpx.Client]
) -> None:
    client = api_process(
        {"SAGA_HTTP_RATE_LIMIT": "0.5", "SAGA_HTTP_RATE_BURST": "2", "SAGA_HTTP_MAX_IN_FLIGHT": "0"}
    )
    sku = new_sku(settings, qty=10)
    answers = [client.post("/orders", json=body(sku)) for _ in range(5)]
    assert [r.status_code for r in answers] == [202, 202, 429, 429, 429], [r.text for r in answers]
    for refused in answers[2:]:
        assert refused.json()["error"] == "rate_limited"
        # one token every 2 s: the client is told to wait that long, in whole seconds
        assert refused.headers["retry-after"] == "2"
    for accepted in answers[:2]:
        t = wait_terminal(settings, uuid.UUID(accepted.json()["order_id"]))
        assert t["status"] == "COMPLETED"


def test_the_in_flight_cap_bounds_the_backlog(
    settings: Settings, api_process: Callable[[dict[str, str]], httpx.Client]
) -> None:
    # What is in flight now must stay put (orders parked on a dead letter, if any): then
    # the cap leaves room for exactly 3 more.
    room = 3
    client = api_process(
        {
            "SAGA_HTTP_RATE_LIMIT": "0",
            "SAGA_HTTP_MAX_IN_FLIGHT": str(steady_in_flight(settings) + room),
        }
    )
    sku = new_sku(settings, qty=100)
    n = 30
    answers = at_once(n, lambda: client.post("/orders", json=body(sku)))
    accepted = [r for r in answers if r.status_code == 202]
    refused = [r for r in answers if r.status_code == 429]
    assert len(accepted) + len(refused) == n, [r.text for r in answers]
    # All 30 arrive within a few ms, long before the first saga can end: only `room` fit.
    assert 1 <= len(accepted) <= room, [r.text for r in answers]
    assert {r.json()["error"] for r in refused} == {"too_many_in_flight"}
    assert {r.headers["retry-after"] for r in refused} == {"1"}
    for r in accepted:
        wait_terminal(settings, uuid.UUID(r.json()["order_id"]))
    # once they are done, there is room again
    wait_for(
        "room under the cap",
        lambda: client.post("/orders", json=body(sku)).status_code == 202,
        timeout=30,
        interval=0.3,
    )


def test_a_taken_port_stops_the_order_service_with_a_clear_error(
    services: Services, api: httpx.Client, tmp_path: Path
) -> None:
    # The shared order service holds the port: a second one must not run without its API.
    log_path = tmp_path / "second-order.log"
    with log_path.open("wb") as log:
        second = subprocess.Popen(
            [sys.executable, "-m", "saga_cli.main", "run", "order"],
            env={**os.environ, **TEST_ENV, "SAGA_HTTP_PORT": str(services.http_port)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        second.wait(timeout=60)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
    text = log_path.read_text("utf-8", "replace")
    assert "cannot listen for the checkout API" in text, text
    assert f"127.0.0.1:{services.http_port}" in text
    assert healthy(api), "the order service that holds the port is unaffected"


def test_api_workers_share_the_port_and_die_with_the_service(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, **TEST_ENV, "SAGA_HTTP_PORT": str(port), "SAGA_HTTP_WORKERS": "2"}
    log_path = tmp_path / "workers.log"
    with log_path.open("wb") as log:
        service = subprocess.Popen(
            [sys.executable, "-c", _API_ONLY], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            wait_for("the API workers", lambda: healthy(client), timeout=30)
            wait_for(
                "both workers listening",
                lambda: log_path.read_text().count('"checkout API listening"') == 2,
                timeout=30,
            )
            resp = client.post("/orders", json=body(new_sku(settings, qty=5)))
            assert resp.status_code == 202, resp.text
            order_id = resp.json()["order_id"]
            assert client.get(f"/orders/{order_id}").json()["order_id"] == order_id
    finally:
        service.kill()  # SIGKILL: the service gets no chance to stop its workers itself
        service.wait()

    # A worker stops gracefully (up to uvicorn's 10 s plus the placer's drain): generous on
    # a loaded machine, and the workers' log in the message if it is not enough.
    try:
        wait_for(
            "the workers to die with the service and free the port",
            lambda: port_free(port),
            timeout=90,
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nworkers' log:\n{log_path.read_text()[-4000:]}") from None
    wait_terminal(settings, uuid.UUID(order_id))


def test_sigterm_stops_the_service_and_its_api_gracefully(
    settings: Settings, running: Services
) -> None:
    # uvicorn must leave SIGTERM to the runtime: otherwise only the API would stop and the
    # service would keep running until killed.
    order = running["order"]
    assert order.proc is not None
    order.proc.send_signal(signal.SIGTERM)
    assert order.proc.wait(timeout=30) == 0
    log = order.log_since_start()
    assert log.index('"checkout API stopped"') < log.index('"service stopped"')
    order.start()
    with httpx.Client(base_url=f"http://127.0.0.1:{running.http_port}", timeout=30) as client:
        wait_for("the API back with the service", lambda: healthy(client), timeout=60)
        resp = client.post("/orders", json=body(new_sku(settings, qty=5)))
        assert resp.status_code == 202, resp.text
    t = wait_terminal(settings, uuid.UUID(resp.json()["order_id"]))
    assert t["status"] == "COMPLETED"
