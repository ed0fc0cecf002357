"""The checkout API's answers, in process: accepted orders complete, an Idempotency-Key never
makes a second order, invalid input is a 422 naming the field and places nothing.
`tests/e2e/test_http_api.py` keeps what needs the HTTP server and real processes: admission
control, the port, the workers, signals."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from eventing.testing import SagaHarness
from tests.sim.api import KNOWN, Client, serving

pytestmark = pytest.mark.integration

SKU = KNOWN[0]


@pytest.fixture(scope="module")
def api(checkout: SagaHarness) -> Iterator[tuple[Client, SagaHarness]]:
    for client in serving(checkout):
        yield client, checkout


def body(
    sku: str = SKU, qty: int = 1, *, card: str = "tok_ok", customer: str = "http"
) -> dict[str, Any]:
    return {
        "customer_id": customer,
        "items": [{"sku": sku, "qty": qty}],
        "card_token": card,
        "ship_to": {"country": "US", "city": "Springfield"},
    }


def with_key(h: SagaHarness, key: str) -> list[uuid.UUID]:
    return [
        r[0] for r in h.rows("order", "SELECT order_id FROM orders WHERE idempotency_key = %s", key)
    ]


def test_a_checkout_is_accepted_and_completes(api: tuple[Client, SagaHarness]) -> None:
    client, h = api
    resp = client.post("/orders", json=body(qty=2))
    assert resp.status_code == 202, resp.text
    answer = resp.json()
    assert set(answer) == {"order_id", "status"} and answer["status"] == "PENDING"
    order_id = uuid.UUID(answer["order_id"])
    assert resp.headers["location"] == f"/orders/{order_id}"
    h.settle()
    order = client.request("GET", f"/orders/{order_id}").json()
    assert (order["order_id"], order["status"], order["cancel_reason"]) == (
        str(order_id),
        "COMPLETED",
        None,
    )
    assert order["items"] == [{"sku": SKU, "qty": 2, "unit_price_minor": 250}]
    assert (order["total_minor"], order["currency"]) == (500, "USD")
    assert order["ship_to"]["city"] == "Springfield"
    assert "card_token" not in order


def test_get_shows_the_cancel_reason(api: tuple[Client, SagaHarness]) -> None:
    client, h = api
    resp = client.post("/orders", json=body(card="tok_declined"))
    order_id = resp.json()["order_id"]
    h.settle()
    order = client.request("GET", f"/orders/{order_id}").json()
    assert (order["status"], order["cancel_reason"]) == ("CANCELLED", "payment_declined")


def test_unknown_and_malformed_order_ids(api: tuple[Client, SagaHarness]) -> None:
    client, _ = api
    missing = uuid.uuid4()
    resp = client.request("GET", f"/orders/{missing}")
    assert resp.status_code == 404 and str(missing) in resp.json()["message"]
    resp = client.request("GET", "/orders/not-a-uuid")
    assert resp.status_code == 422
    assert resp.json()["errors"] == [{"field": "order_id", "message": "'not-a-uuid' is not a UUID"}]


def test_a_retry_with_the_same_key_gets_the_same_order(api: tuple[Client, SagaHarness]) -> None:
    client, h = api
    key = f"retry-{uuid.uuid4()}"
    first = client.post("/orders", json=body(), headers={"Idempotency-Key": key})
    assert first.status_code == 202 and "idempotent-replayed" not in first.headers
    h.settle()
    again = client.post("/orders", json=body(), headers={"Idempotency-Key": key})
    assert again.status_code == 202
    assert again.json() == {"order_id": first.json()["order_id"], "status": "COMPLETED"}
    assert again.headers["idempotent-replayed"] == "true"
    assert with_key(h, key) == [uuid.UUID(first.json()["order_id"])]


def test_concurrent_duplicates_make_one_order(api: tuple[Client, SagaHarness]) -> None:
    client, h = api
    key = f"dup-{uuid.uuid4()}"
    answers = client.at_once(24, "POST", "/orders", json=body(), headers={"Idempotency-Key": key})
    assert [r.status_code for r in answers] == [202] * 24, [r.text for r in answers]
    ids = {r.json()["order_id"] for r in answers}
    assert len(ids) == 1
    assert sum("idempotent-replayed" not in r.headers for r in answers) == 1
    order_id = uuid.UUID(ids.pop())
    assert with_key(h, key) == [order_id]
    h.settle()
    t = h.trace(order_id)
    assert [e["event_type"] for e in t["events"]].count("OrderPlaced") == 1
    assert t["status"] == "COMPLETED"


def test_the_same_key_with_another_body_is_refused(api: tuple[Client, SagaHarness]) -> None:
    client, h = api
    key = f"conflict-{uuid.uuid4()}"
    first = client.post("/orders", json=body(qty=1), headers={"Idempotency-Key": key})
    other = client.post("/orders", json=body(qty=2), headers={"Idempotency-Key": key})
    assert other.status_code == 422
    problem = other.json()
    assert problem["error"] == "idempotency_conflict"
    assert key in problem["message"] and "different request" in problem["message"]
    assert with_key(h, key) == [uuid.UUID(first.json()["order_id"])]


def _with(**changes: Any) -> Callable[[], Any]:
    def make() -> dict[str, Any]:
        b = body()
        for k, v in changes.items():
            if v is None:
                del b[k]
            else:
                b[k] = v
        return b

    return make


INVALID: dict[str, tuple[Callable[[], Any], str, str]] = {
    "bad json": (lambda: b'{"customer_id": ', "body", "Invalid JSON"),
    "not an object": (lambda: b"[1, 2]", "body", "should be an object"),
    "missing customer": (_with(customer_id=None), "customer_id", "Field required"),
    "missing ship_to": (_with(ship_to=None), "ship_to", "Field required"),
    "no items": (_with(items=[]), "items", "at least 1 item"),
    "qty zero": (
        _with(items=[{"sku": "X-1", "qty": 0}]),
        "items.0.qty",
        "greater than or equal to 1",
    ),
    "qty as text": (_with(items=[{"sku": "X-1", "qty": "2"}]), "items.0.qty", "valid integer"),
    "missing qty": (_with(items=[{"sku": "X-1"}]), "items.0.qty", "Field required"),
    "bad country": (_with(ship_to={"country": "usa"}), "ship_to.country", "pattern"),
    "unknown field": (_with(coupon="FREE"), "coupon", "Extra inputs"),
    "unknown sku": (
        _with(items=[{"sku": "NO-SUCH-SKU-9", "qty": 1}]),
        "items",
        "unknown sku(s): NO-SUCH-SKU-9",
    ),
    "sku twice": (
        _with(items=[{"sku": SKU, "qty": 1}, {"sku": SKU, "qty": 2}]),
        "body",
        "is listed twice",
    ),
    "nul in a field": (_with(card_token="tok\x00"), "body", "NUL character"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_input_is_422_naming_the_field_and_places_nothing(
    api: tuple[Client, SagaHarness], case: str
) -> None:
    client, h = api
    make, field, words = INVALID[case]
    payload = make()
    before = h.rows("order", "SELECT count(*) FROM orders")
    if isinstance(payload, dict):
        resp = client.post("/orders", json=payload)
    else:
        resp = client.post("/orders", content=payload, headers={"content-type": "application/json"})
    assert resp.status_code == 422, resp.text
    problem = resp.json()
    assert problem["error"] == "invalid_request"
    assert any(e["field"] == field and words in e["message"] for e in problem["errors"]), problem
    assert field in problem["message"]
    assert h.rows("order", "SELECT count(*) FROM orders") == before


def test_a_bad_idempotency_key_is_422(api: tuple[Client, SagaHarness]) -> None:
    client, _ = api
    resp = client.post("/orders", json=body(), headers={"Idempotency-Key": "x" * 300})
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "Idempotency-Key"
