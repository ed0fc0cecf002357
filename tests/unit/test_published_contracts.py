"""The published contracts (docs/asyncapi.json, docs/openapi.json) say what the models enforce.

The committed documents must equal what the generators make now, each must pass its own
ecosystem's validator, and their schemas must accept and refuse what pydantic does: a
document that promises less or more than the code is a bug in one of them.
"""

from __future__ import annotations

import asyncio
import copy
import difflib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from openapi_spec_validator import validate as validate_openapi
from pydantic import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from eventing.queries import Queries
from eventing.settings import load_settings
from order_svc.api.app import create_app
from order_svc.api.openapi import OrderView, openapi_document
from order_svc.placement import CheckoutRequest
from saga_cli.schema_cmd import asyncapi_json, consumers, openapi_json, schema
from shared_events import EVENT_MODELS, decode
from shared_events.asyncapi import DLQ_HEADERS, event_examples, message_id
from shared_events.codec import encode
from shared_events.envelope import Event
from shared_events.order import OrderPlaced
from shared_events.topics import ALL_TOPICS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
TOOL = ROOT / "tests" / "tools" / "asyncapi"
NPM_CI = "npm ci --prefix tests/tools/asyncapi"


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(asyncapi_json())
    return document


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return openapi_document()


def _validator(document: dict[str, Any], pointer: str) -> Draft202012Validator:
    """A JSON Schema (2020-12) validator for the schema at `pointer`, its $refs resolved in
    `document` (both documents name their shared schemas under #/components/schemas)."""
    uri = "urn:published-contract"
    registry: Registry[Any] = Registry().with_resource(
        uri, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": f"{uri}#{pointer}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def _drift(name: str, committed: Path, generated: str, command: str) -> None:
    current = committed.read_text(encoding="utf-8") if committed.exists() else ""
    if current == generated:
        return
    diff = "".join(
        list(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                generated.splitlines(keepends=True),
                f"{committed.relative_to(ROOT)} (committed)",
                "generated now",
            )
        )[:60]
    )
    pytest.fail(
        f"{committed.relative_to(ROOT)} no longer matches the {name}: regenerate it with "
        f"`{command}` and commit it.\n{diff}",
        pytrace=False,
    )


# -- drift -------------------------------------------------------------------------------


def test_committed_asyncapi_is_what_the_models_generate() -> None:
    _drift(
        "event models (shared_events)",
        DOCS / "asyncapi.json",
        asyncapi_json(),
        "saga schema --out docs/asyncapi.json",
    )


def test_committed_openapi_is_what_the_models_generate() -> None:
    _drift(
        "checkout API models (order_svc)",
        DOCS / "openapi.json",
        openapi_json(),
        "saga schema --openapi --out docs/openapi.json",
    )


def test_generation_is_stable() -> None:
    assert asyncapi_json() == asyncapi_json()
    assert openapi_json() == openapi_json()


# -- the ecosystems' own validators --------------------------------------------------------


def test_openapi_document_is_valid_openapi_3_1() -> None:
    document = json.loads((DOCS / "openapi.json").read_text(encoding="utf-8"))
    assert document["openapi"].startswith("3.1.")
    validate_openapi(document, cls=OpenAPIV31SpecValidator)


def _parse_asyncapi(path: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node (20+) is needed to validate docs/asyncapi.json; install it", False)
    if not (TOOL / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.fail(
            f"the AsyncAPI parser is not installed: run `{NPM_CI}` (CI does, before the tests)",
            pytrace=False,
        )
    return subprocess.run(
        [node, str(TOOL / "validate.mjs"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_asyncapi_document_is_valid_per_the_official_parser() -> None:
    result = _parse_asyncapi(DOCS / "asyncapi.json")
    assert result.returncode == 0, f"@asyncapi/parser refused it:\n{result.stdout}{result.stderr}"


def test_the_asyncapi_validator_does_refuse_a_broken_document(
    asyncapi: dict[str, Any], tmp_path: Path
) -> None:
    # Otherwise the test above could pass with a validator that accepts anything.
    broken = copy.deepcopy(asyncapi)
    operation = broken["operations"]["inventory.receive.orders.events"]
    operation["channel"] = {"$ref": "#/channels/payments.events"}
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    result = _parse_asyncapi(path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error" in result.stdout


# -- the AsyncAPI document says what the event models enforce ------------------------------


def _payload_schema(document: dict[str, Any], model: type[Event]) -> Draft202012Validator:
    ref = document["components"]["messages"][message_id(model)]["payload"]["$ref"]
    return _validator(document, ref.removeprefix("#"))


def test_channels_are_the_topics_and_every_event_is_a_message(asyncapi: dict[str, Any]) -> None:
    assert {c["address"] for c in asyncapi["channels"].values()} == set(ALL_TOPICS)
    messages = asyncapi["components"]["messages"]
    assert {message_id(m) for m in EVENT_MODELS.values()} | {"DeadLetter"} == set(messages)
    dlq = messages["DeadLetter"]["headers"]
    assert set(dlq["required"]) == set(DLQ_HEADERS)


def test_operations_follow_the_services_specs(asyncapi: dict[str, Any]) -> None:
    received: dict[str, set[str]] = {}
    for op_id, op in asyncapi["operations"].items():
        if op["action"] == "receive":
            service = op_id.split(".", 1)[0]
            received.setdefault(service, set()).update(
                m["$ref"].rsplit("/", 1)[1] for m in op["messages"]
            )
    assert received == {
        service: {message_id(m) for m in types} for service, types in consumers().items()
    }


@pytest.mark.parametrize("model", list(EVENT_MODELS.values()), ids=message_id)
def test_every_example_is_valid_for_the_model_the_schema_and_the_headers(
    asyncapi: dict[str, Any], model: type[Event]
) -> None:
    message = asyncapi["components"]["messages"][message_id(model)]
    assert message.get("examples"), f"add an example of {model.TYPE} to event_examples()"
    payload = _payload_schema(asyncapi, model)
    headers = Draft202012Validator(
        message["headers"], format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    for example in message["examples"]:
        value = json.dumps(example["payload"]).encode()
        wire = [(k, v.encode()) for k, v in example["headers"].items()]
        assert isinstance(decode(value, wire), model)
        assert list(payload.iter_errors(example["payload"])) == []
        assert list(headers.iter_errors(example["headers"])) == []


def test_headers_schema_is_what_the_codec_writes(asyncapi: dict[str, Any]) -> None:
    for model, examples in event_examples().items():
        schema = asyncapi["components"]["messages"][message_id(model)]["headers"]
        for _, _, event in examples:
            written = {k for k, _ in encode(event).headers}
            assert set(schema["required"]) <= written <= set(schema["properties"])


def _placed() -> dict[str, Any]:
    """The example OrderPlaced that another system would publish, as JSON data."""
    _, _, event = event_examples()[OrderPlaced][1]
    raw: dict[str, Any] = json.loads(event.model_dump_json())
    return raw


def _set(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    *parents, last = path.split(".")
    node: Any = raw
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return raw


def _without(raw: dict[str, Any], field: str) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    del raw[field]
    return raw


INVALID_ORDER_PLACED = {
    "lowercase currency": lambda r: _set(r, "payload.currency", "usd"),
    "negative qty": lambda r: _set(r, "payload.items.0.qty", -1),
    "zero qty": lambda r: _set(r, "payload.items.0.qty", 0),
    "qty as text": lambda r: _set(r, "payload.items.0.qty", "1"),
    "negative money": lambda r: _set(r, "payload.items.0.unit_price_minor", -5),
    "unknown field": lambda r: _set(r, "coupon", "FREE"),
    "unknown nested field": lambda r: _set(r, "payload.ship_to.planet", "Mars"),
    "no items": lambda r: _set(r, "payload.items", []),
    "bad sku": lambda r: _set(r, "payload.items.0.sku", "no spaces"),
    "bad country": lambda r: _set(r, "payload.ship_to.country", "USA"),
    "not a uuid": lambda r: _set(r, "order_id", "order-1"),
    "wrong version": lambda r: _set(r, "schema_version", 2),
    "wrong type": lambda r: _set(r, "event_type", "OrderShipped"),
    "no payload": lambda r: _without(r, "payload"),
    "no producer": lambda r: _without(r, "producer"),
    "bad traceparent": lambda r: _set(r, "traceparent", "00-xyz"),
}


@pytest.mark.parametrize("case", list(INVALID_ORDER_PLACED))
def test_invalid_order_placed_is_refused_by_the_model_and_the_schema(
    asyncapi: dict[str, Any], case: str
) -> None:
    raw = INVALID_ORDER_PLACED[case](_placed())
    with pytest.raises(ValidationError):
        OrderPlaced.model_validate_json(json.dumps(raw))
    assert list(_payload_schema(asyncapi, OrderPlaced).iter_errors(raw)), case


def test_the_body_must_name_its_type(asyncapi: dict[str, Any]) -> None:
    # pydantic defaults event_type when our headers already chose the model; without them
    # the codec cannot tell what the message is, so the document requires both.
    raw = _without(_placed(), "event_type")
    assert list(_payload_schema(asyncapi, OrderPlaced).iter_errors(raw))
    with pytest.raises(Exception, match="unknown event type"):
        decode(json.dumps(raw).encode())


@pytest.mark.parametrize(
    ("case", "change"),
    [
        ("total is not the sum of the lines", lambda r: _set(r, "payload.total_minor", 1)),
        (
            "a sku listed twice",
            lambda r: _set(
                _set(r, "payload.items", r["payload"]["items"] * 2),
                "payload.total_minor",
                2 * r["payload"]["total_minor"],
            ),
        ),
    ],
)
def test_rules_beyond_json_schema_are_enforced_and_described(
    asyncapi: dict[str, Any], case: str, change: Any
) -> None:
    raw = change(_placed())
    with pytest.raises(ValidationError):
        OrderPlaced.model_validate_json(json.dumps(raw))
    # JSON Schema cannot say it, so the schema lets it through and its description says it.
    assert list(_payload_schema(asyncapi, OrderPlaced).iter_errors(raw)) == []
    described = asyncapi["components"]["schemas"]["OrderPlacedPayload"]["description"]
    assert "sum of qty x unit_price_minor" in described
    assert "at most once" in described


# -- the OpenAPI document says what the checkout API enforces ------------------------------

VALID_CHECKOUT: dict[str, Any] = {
    "customer_id": "c-1",
    "items": [{"sku": "GADGET-2", "qty": 2}, {"sku": "WIDGET-1", "qty": 1}],
    "card_token": "tok_ok",
    "ship_to": {"country": "US", "city": "Boston"},
}

INVALID_CHECKOUT = {
    "qty 0": _set(VALID_CHECKOUT, "items.0.qty", 0),
    "qty as text": _set(VALID_CHECKOUT, "items.0.qty", "2"),
    "unknown field": _set(VALID_CHECKOUT, "coupon", "FREE"),
    "prices are not the client's": _set(VALID_CHECKOUT, "items.0.unit_price_minor", 1),
    "lowercase country": _set(VALID_CHECKOUT, "ship_to.country", "us"),
    "no items": _set(VALID_CHECKOUT, "items", []),
    "empty customer": _set(VALID_CHECKOUT, "customer_id", ""),
    "no card": {k: v for k, v in VALID_CHECKOUT.items() if k != "card_token"},
}


def _checkout_schema(openapi: dict[str, Any]) -> Draft202012Validator:
    body = openapi["paths"]["/orders"]["post"]["requestBody"]["content"]["application/json"]
    return _validator(openapi, body["schema"]["$ref"].removeprefix("#"))


def test_openapi_request_schema_accepts_what_checkout_request_accepts(
    openapi: dict[str, Any],
) -> None:
    body = openapi["paths"]["/orders"]["post"]["requestBody"]["content"]["application/json"]
    for sample in (VALID_CHECKOUT, body["example"]):
        CheckoutRequest.from_dict(sample)
        assert list(_checkout_schema(openapi).iter_errors(sample)) == []


@pytest.mark.parametrize("case", list(INVALID_CHECKOUT))
def test_openapi_request_schema_refuses_what_checkout_request_refuses(
    openapi: dict[str, Any], case: str
) -> None:
    with pytest.raises(ValidationError):
        CheckoutRequest.from_dict(INVALID_CHECKOUT[case])
    assert list(_checkout_schema(openapi).iter_errors(INVALID_CHECKOUT[case])), case


def test_order_view_has_the_columns_get_order_returns() -> None:
    sql = Queries.load("order_svc")["get_order"]
    select = re.sub(r"--[^\n]*", "", sql).split("SELECT", 1)[1].split("FROM", 1)[0]
    columns = [c.strip() for c in select.split(",")]
    assert columns == list(OrderView.model_fields)


def test_order_statuses_are_the_tables(openapi: dict[str, Any]) -> None:
    schema_sql = (ROOT / "order_svc" / "sql" / "schema.sql").read_text(encoding="utf-8")
    view = openapi["components"]["schemas"]["OrderView"]["properties"]
    for column in ("status", "cancel_reason", "origin"):
        check = re.search(rf"\b{column}\s+text[^(]*CHECK \({column} IN \(([^)]*)\)\)", schema_sql)
        assert check is not None, column
        allowed = set(re.findall(r"'(\w+)'", check.group(1)))
        prop = view[column]
        branches = prop.get("anyOf", [prop])
        assert {v for b in branches for v in b.get("enum", [])} == allowed, column


def test_the_api_serves_the_document_at_openapi_json() -> None:
    # The route needs none of the API's parts: stand-ins are enough to build the app.
    app = create_app(None, None, None, 1, load_settings())  # type: ignore[arg-type]

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.get("/openapi.json")

    response = asyncio.run(get())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == json.loads(openapi_json())


# -- the command ---------------------------------------------------------------------------


def test_saga_schema_prints_asyncapi_by_default_and_writes_files(tmp_path: Path) -> None:
    runner = CliRunner()
    printed = runner.invoke(schema, [])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout)["asyncapi"].startswith("3.0")
    out = tmp_path / "openapi.json"
    wrote = runner.invoke(schema, ["--openapi", "--out", str(out)])
    assert wrote.exit_code == 0, wrote.output
    assert out.read_text(encoding="utf-8") == openapi_json()
