"""The checkout's order of answers: admission before validation, and what each one frees.

A refusal comes before the body is validated (under overload refusing is the hot path);
a body that was admitted and then fails validation gives its place back.
"""

from __future__ import annotations

import asyncio
import json

from eventing.settings import load_settings
from order_svc.api.admission import Admission, InFlightCap, TokenBucket
from order_svc.api.app import CheckoutApi

VALID_SHAPE_BUT_NO_ITEMS = json.dumps(
    {"customer_id": "c1", "items": [], "card_token": "tok_ok", "ship_to": {"country": "US"}}
).encode()


def _api(admission: Admission) -> CheckoutApi:
    # No pool or placer: none of these requests gets as far as placing an order.
    return CheckoutApi(None, None, admission, 64, load_settings())  # type: ignore[arg-type]


def _answer(api: CheckoutApi, body: bytes) -> tuple[int, dict[str, str], dict[str, object]]:
    resp = asyncio.run(api.checkout(body, None, None))
    return resp.status_code, dict(resp.headers), json.loads(bytes(resp.body))


def test_a_full_backlog_refuses_even_a_bad_body_before_validating_it() -> None:
    cap = InFlightCap(2)
    cap.refreshed(cap.refreshing(), 2)  # two sagas in flight: full
    api = _api(Admission(None, cap))
    status, headers, body = _answer(api, b"not json at all")
    assert status == 429
    assert body["error"] == "too_many_in_flight"
    assert headers["retry-after"] == "1"
    assert api.refused["too_many_in_flight"] == 1


def test_an_admitted_bad_body_is_a_422_and_gives_its_place_back() -> None:
    cap = InFlightCap(1)
    cap.refreshed(cap.refreshing(), 0)
    api = _api(Admission(None, cap))
    for _ in range(3):  # would be refused from the second on if the place were kept
        status, _headers, body = _answer(api, VALID_SHAPE_BUT_NO_ITEMS)
        assert status == 422, body
        assert body["errors"][0]["field"] == "items"  # type: ignore[index]
    assert cap.estimate == 0


def test_each_refusal_carries_its_own_retry_after() -> None:
    # Refusals are rendered once per kind; one kind's answer must not stand for another's.
    now = [0.0]
    api = _api(Admission(TokenBucket(rate=0.5, burst=1, clock=lambda: now[0]), None))
    first, _, _ = _answer(api, VALID_SHAPE_BUT_NO_ITEMS)  # takes the only token, then 422
    assert first == 422
    waits = []
    for at in (0.0, 0.0, 1.5):
        now[0] = at
        status, headers, body = _answer(api, VALID_SHAPE_BUT_NO_ITEMS)
        assert (status, body["error"]) == (429, "rate_limited")
        waits.append(headers["retry-after"])
    # A token every 2 s: 2 s to wait at first, then 1 s after 1.5 s have passed.
    assert waits == ["2", "2", "1"]
