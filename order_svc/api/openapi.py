"""The OpenAPI 3.1 document of the checkout HTTP API, generated from its pydantic models.

The request schema is CheckoutRequest itself, the model the API validates with, so the
document cannot promise what the API refuses. The response models below exist only to
describe what order_svc/api/app.py writes (its handlers build plain JSON): a test holds the
order view to the columns of the `get_order` query. Served at GET /openapi.json and
committed as docs/openapi.json (`saga schema --openapi --out docs/openapi.json`).
"""

from __future__ import annotations

import uuid
from functools import cache
from importlib.metadata import version as package_version
from typing import Any, Literal

from pydantic import AwareDatetime, Field
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from eventing import tracing
from order_svc.api.limits import MAX_BODY_BYTES, MAX_KEY_LEN
from order_svc.domain import CancelReason, OrderStatus
from order_svc.placement import CheckoutRequest
from shared_events.common import Address, Currency, LineItem, Money
from shared_events.envelope import Contract

__all__ = [
    "FieldError",
    "OrderAccepted",
    "OrderView",
    "Problem",
    "openapi_document",
    "openapi_endpoint",
]

_SCHEMAS = "#/components/schemas/"


class OrderAccepted(Contract):
    """202: the order exists (new, or the one this Idempotency-Key placed before)."""

    order_id: uuid.UUID
    status: OrderStatus = Field(description="PENDING when new; the current status on a replay.")


class OrderView(Contract):
    """GET /orders/{order_id}: the saga record, running or archived."""

    order_id: uuid.UUID
    status: OrderStatus
    cancel_reason: CancelReason | None = Field(description="Set when CANCELLED.")
    origin: Literal["api", "event"] = Field(
        description="api: placed here; event: an OrderPlaced from another system, or an event "
        "that overtook it (the order's details are null until the OrderPlaced arrives)."
    )
    customer_id: str | None
    items: list[LineItem] | None = Field(description="With the unit prices charged.")
    total_minor: Money | None = Field(description="Integer minor units of currency.")
    currency: Currency | None
    ship_to: Address | None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    terminal_at: AwareDatetime | None = Field(description="When it became COMPLETED/CANCELLED.")
    archived_at: AwareDatetime | None = Field(description="Set once moved to the archive.")


class FieldError(Contract):
    field: str = Field(description="Dotted path into the body (items.0.qty), or a header name.")
    message: str


class Problem(Contract):
    """Every error answer: a stable code to switch on and a sentence for people."""

    error: str = Field(description="A stable code; the responses list theirs.")
    message: str
    errors: list[FieldError] = Field(
        default_factory=list, description="Only with invalid_request: one entry per problem."
    )


def _error(description: str, codes: list[str], headers: dict[str, Any] | None = None) -> Any:
    schema = {
        "allOf": [{"$ref": f"{_SCHEMAS}Problem"}],
        "properties": {"error": {"enum": codes}},
    }
    response: dict[str, Any] = {
        "description": f"{description} (error: {', '.join(codes)})",
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


def _retry_after() -> dict[str, Any]:
    return {
        "Retry-After": {
            "description": "Whole seconds to wait before retrying, at least 1.",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _place(max_body: int, max_key: int, traceparent: str) -> dict[str, Any]:
    return {
        "operationId": "placeOrder",
        "summary": "Check out: place an order and start its saga.",
        "description": (
            "Prices come from the catalogue; the saga runs after the answer (follow it with "
            "GET /orders/{order_id}). The same Idempotency-Key with the same body answers "
            "with the same order; with another body, 422 idempotency_conflict. A 429 or 503 "
            "placed nothing: retrying is safe."
        ),
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": f"1 to {max_key} printable characters; names one checkout.",
                "schema": {"type": "string", "minLength": 1, "maxLength": max_key},
            },
            {
                "name": "traceparent",
                "in": "header",
                "required": False,
                "description": "W3C Trace Context: the saga's trace continues the caller's. "
                "A malformed one is ignored (a new trace starts).",
                "schema": {"type": "string", "pattern": traceparent},
            },
        ],
        "requestBody": {
            "required": True,
            "description": f"At most {max_body} bytes. Strict JSON types, no unknown fields.",
            "content": {
                "application/json": {
                    "schema": {"$ref": f"{_SCHEMAS}CheckoutRequest"},
                    "example": {
                        "customer_id": "c-42",
                        "items": [{"sku": "GADGET-2", "qty": 1}],
                        "card_token": "tok_ok",
                        "ship_to": {"country": "US"},
                    },
                }
            },
        },
        "responses": {
            "202": {
                **_json({"$ref": f"{_SCHEMAS}OrderAccepted"}, "Accepted: the saga runs."),
                "headers": {
                    "Location": {
                        "description": "/orders/{order_id}",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    "Idempotent-Replayed": {
                        "description": "Present when the Idempotency-Key had placed it before.",
                        "schema": {"type": "string", "const": "true"},
                    },
                },
            },
            "413": _error(f"The body is over {max_body} bytes", ["too_large"]),
            "422": _error(
                "Invalid body or Idempotency-Key, an unknown sku (field items), or the key "
                "reused with another body",
                ["invalid_request", "idempotency_conflict"],
            ),
            "429": _error(
                "Admission control refused it; nothing was placed",
                ["busy", "too_many_in_flight", "rate_limited"],
                _retry_after(),
            ),
            "500": _error("The checkout failed; nothing was placed", ["internal"]),
            "503": _error(
                "The order database is unavailable or too slow; nothing was placed",
                ["unavailable"],
                _retry_after(),
            ),
        },
    }


def _show() -> dict[str, Any]:
    return {
        "operationId": "getOrder",
        "summary": "One order: its status and cancel reason, running or archived.",
        "parameters": [
            {
                "name": "order_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "format": "uuid"},
            }
        ],
        "responses": {
            "200": _json({"$ref": f"{_SCHEMAS}OrderView"}, "The order."),
            "404": _error(
                "No such order (yet: one placed elsewhere may not be seen)", ["not_found"]
            ),
            "410": _error("Older than the archive keeps (its UUIDv7 tells)", ["gone"]),
            "422": _error("order_id is not a UUID", ["invalid_request"]),
            "503": _error("The order database is unavailable", ["unavailable"], _retry_after()),
        },
    }


def _plain(operation_id: str, summary: str, response: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {"operationId": operation_id, "summary": summary, "responses": {"200": response}}
    }


def openapi_document() -> dict[str, Any]:
    """The document, built afresh (callers may change their copy)."""
    _, top = models_json_schema(
        [(m, "validation") for m in (CheckoutRequest, OrderAccepted, OrderView, Problem)],
        ref_template=_SCHEMAS + "{model}",
    )
    schemas = top["$defs"]
    schemas["CheckoutRequest"]["description"] = (
        "The body of POST /orders. Also enforced (not expressible here): each sku at most "
        "once in items, and every sku in the catalogue (`saga stock list`)."
    )
    health = {"type": "object", "properties": {"status": {"const": "ok"}}, "required": ["status"]}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "checkout-saga checkout API",
            "version": package_version("checkout-saga"),
            "description": "The order service's HTTP API (README: Checkout HTTP API). Errors "
            "answer with a Problem body whose `error` is a stable code.",
        },
        "servers": [
            {"url": "http://127.0.0.1:8080", "description": "SAGA_HTTP_HOST:SAGA_HTTP_PORT"}
        ],
        "paths": {
            "/orders": {"post": _place(MAX_BODY_BYTES, MAX_KEY_LEN, tracing._TRACEPARENT.pattern)},
            "/orders/{order_id}": {"get": _show()},
            "/healthz": _plain("health", "The process answers.", _json(health, "Alive.")),
            "/metrics": _plain(
                "metrics",
                "Prometheus metrics of this API process.",
                {
                    "description": "Prometheus text exposition format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
            ),
            "/openapi.json": _plain(
                "openapi", "This document.", _json({"type": "object"}, "OpenAPI 3.1.")
            ),
        },
        "components": {"schemas": schemas},
    }


@cache
def _served() -> bytes:
    # Built once per process: the document depends on code only.
    return bytes(JSONResponse(openapi_document()).body)


async def openapi_endpoint(_request: Request) -> Response:
    """GET /openapi.json."""
    return Response(_served(), media_type="application/json")
