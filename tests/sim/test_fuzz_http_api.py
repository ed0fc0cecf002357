"""The checkout API never answers 5xx to any body, header or path: invalid input gets a 4xx
with a message, and nothing is placed. The real Starlette app (order_svc.api.app.create_app),
its Placer and a real pool on the harness's scratch order database, in process."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from eventing.testing import SagaHarness
from tests.sim.api import KNOWN, Client, serving
from tests.sim.strategies import countries, skus

pytestmark = [
    pytest.mark.integration,
    # The API's connection pool (psycopg_pool) draws its reconnect jitter from the global
    # `random` in its own threads; hypothesis sees the global state move during a draw and
    # warns about strategies using `random`, which these do not.
    pytest.mark.filterwarnings(
        "ignore:Do not use the `random` module inside strategies"
        ":hypothesis.errors.HypothesisDeprecationWarning"
    ),
]

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def api(checkout: SagaHarness) -> Iterator[tuple[Client, SagaHarness]]:
    for client in serving(checkout):
        yield client, checkout


def orders(h: SagaHarness) -> int:
    return int(h.rows("order", "SELECT count(*) FROM orders")[0][0])


def check(resp: httpx.Response) -> None:
    assert resp.status_code < 500, (resp.status_code, resp.text)
    if resp.status_code >= 400:
        problem = resp.json()
        assert problem["error"] and problem["message"], problem


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=10,
)
text = st.text(max_size=120)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "customer_id": st.one_of(text, json_values),
        "items": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "sku": st.one_of(st.sampled_from(KNOWN), skus, text, json_values),
                        "qty": st.one_of(st.integers(-5, 20_000), json_values),
                    },
                ),
                max_size=4,
            ),
            json_values,
        ),
        "card_token": st.one_of(st.sampled_from(["tok_ok", "tok_declined"]), text, json_values),
        "ship_to": st.one_of(
            st.fixed_dictionaries(
                {"country": st.one_of(countries, text)},
                optional={"city": text, "name": text, "postal_code": text, "planet": text},
            ),
            json_values,
        ),
        "coupon": json_values,
    },
)


@st.composite
def checkouts(draw: st.DrawFn) -> dict[str, Any]:
    """A checkout that is valid but for what the draw changes: most are accepted."""
    chosen = draw(st.lists(st.sampled_from(KNOWN), min_size=1, max_size=2, unique=True))
    body: dict[str, Any] = {
        "customer_id": draw(st.text(min_size=1, max_size=100)),
        "items": [{"sku": s, "qty": draw(st.integers(1, 5))} for s in chosen],
        "card_token": draw(st.text(min_size=1, max_size=100)),
        "ship_to": {"country": draw(countries), "city": draw(st.text(max_size=100))},
    }
    if draw(st.booleans()):
        body[draw(st.sampled_from(sorted(body)))] = draw(json_values)
    return body


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=300)
headers = st.fixed_dictionaries(
    {},
    optional={
        "idempotency-key": header_text,
        "content-type": st.sampled_from(
            ["application/json", "text/plain", "", "x/y; charset=utf-32"]
        ),
        "content-length": st.sampled_from(["0", "5", "99999999", "-1", "abc"]),
    },
)


@FUZZ
@given(body=st.one_of(checkouts(), bodies, json_values), hdrs=headers)
def test_post_orders_never_answers_5xx_and_places_only_when_accepted(
    api: tuple[Client, SagaHarness], body: Any, hdrs: dict[str, str]
) -> None:
    client, h = api
    before = orders(h)
    content = json.dumps(body).encode()
    try:
        resp = client.post("/orders", content=content, headers=hdrs)
    except (httpx.LocalProtocolError, UnicodeEncodeError, ValueError):
        assume(False)  # the client would not send it (e.g. a content-length that lies)
        return
    check(resp)
    event(f"HTTP {resp.status_code}")
    after = orders(h)
    if resp.status_code == 202:
        order_id = uuid.UUID(resp.json()["order_id"])
        assert after in (before, before + 1)
        assert h.rows("order", "SELECT 1 FROM orders WHERE order_id = %s", order_id)
    else:
        assert after == before, resp.text


@FUZZ
@given(raw=st.binary(max_size=400))
def test_any_bytes_as_a_body_are_answered_below_500(
    api: tuple[Client, SagaHarness], raw: bytes
) -> None:
    client, h = api
    before = orders(h)
    resp = client.post("/orders", content=raw, headers={"content-type": "application/json"})
    check(resp)
    if resp.status_code != 202:
        assert orders(h) == before


@FUZZ
@given(segment=st.text(max_size=80), method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
def test_any_path_is_answered_below_500(
    api: tuple[Client, SagaHarness], segment: str, method: str
) -> None:
    client, _ = api
    for path in (f"/orders/{quote(segment, safe='')}", f"/{quote(segment, safe='')}"):
        resp = client.request(method, path)
        assert resp.status_code < 500, (path, resp.status_code, resp.text)


def test_a_nul_in_any_text_field_is_a_422_naming_the_field(
    api: tuple[Client, SagaHarness],
) -> None:
    # Found by the fuzzing above: `"customer_id": "bob\u0000"` was a 500 (PostgreSQL cannot
    # store a NUL character), with the checkout half tried; now the contract refuses it.
    client, h = api
    before = orders(h)
    for field, value in (
        ("customer_id", "bob\x00"),
        ("card_token", "tok\x00"),
        ("ship_to", {"country": "US", "city": "Sprin\x00gfield"}),
    ):
        body: dict[str, Any] = {
            "customer_id": "c",
            "items": [{"sku": KNOWN[0], "qty": 1}],
            "card_token": "tok_ok",
            "ship_to": {"country": "US"},
            field: value,
        }
        resp = client.post("/orders", json=body)
        assert resp.status_code == 422, resp.text
        assert "NUL" in resp.json()["message"]
        assert field in resp.json()["message"] or field == "ship_to"
    assert orders(h) == before
