"""The console's guards, without a database: headers, the Host check, the CSRF guard.

Every refusal here happens before the console touches a database, which is the point: a
forged request must not get as far as a query (the console opens its connection pools on
first use, so none of these tests opens one).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from eventing.settings import load_settings
from saga_cli.console import create_app
from saga_cli.console.security import CONTENT_SECURITY_POLICY, allowed_hosts

BASE = "http://127.0.0.1:8090"
REDRIVE = "/api/dlq/payment:1/redrive"


class Client:
    """Requests straight into the ASGI app through httpx's ASGI transport."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
                return await c.request(method, path, **kw)

        return asyncio.run(send())

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)


@pytest.fixture
def client() -> Client:
    return Client(create_app(load_settings()))


def token(client: Client) -> str:
    answer = client.get("/api/session")
    assert answer.status_code == 200
    value: str = answer.json()["csrf_token"]
    assert len(value) >= 32
    return value


def test_every_response_carries_a_strict_policy_and_nosniff(client: Client) -> None:
    for path in ("/", "/orders/x", "/dlq", "/static/js/main.js", "/static/console.css"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        csp = answer.headers["content-security-policy"]
        assert csp == CONTENT_SECURITY_POLICY
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
    assert client.get("/api/session").headers["cache-control"] == "no-store"
    assert "javascript" in client.get("/static/js/main.js").headers["content-type"]


def test_the_page_has_no_inline_script_or_style(client: Client) -> None:
    html = client.get("/").text
    assert '<script type="module" src="/static/js/main.js"></script>' in html
    assert html.count("<script") == 1
    assert " style=" not in html and "<style" not in html and "onclick" not in html


def test_the_scripts_never_parse_markup() -> None:
    from importlib import resources

    scripts = resources.files("saga_cli.console").joinpath("static/js")
    for script in scripts.iterdir():
        text = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{script.name} uses {sink}"


def test_a_foreign_host_is_refused_against_dns_rebinding(client: Client) -> None:
    answer = client.get("/api/session", headers={"host": "attacker.example:8090"})
    assert answer.status_code == 421
    assert "csrf_token" not in answer.text
    for host in ("127.0.0.1:8090", "localhost:8090", "[::1]:8090"):
        assert client.get("/healthz", headers={"host": host}).status_code == 200, host


def test_allowed_hosts_follow_the_bind_address() -> None:
    assert allowed_hosts("0.0.0.0") is None
    assert allowed_hosts("::") is None
    hosts = allowed_hosts("10.1.2.3", ("console.internal",))
    assert hosts is not None and {"10.1.2.3", "127.0.0.1", "console.internal"} <= hosts


def test_redrive_needs_post(client: Client) -> None:
    assert client.get(REDRIVE).status_code == 405


def test_redrive_without_the_token_is_refused(client: Client) -> None:
    answer = client.post(REDRIVE, json={}, headers={"origin": BASE})
    assert answer.status_code == 403
    assert "x-csrf-token" in answer.json()["message"]
    wrong = client.post(REDRIVE, json={}, headers={"origin": BASE, "x-csrf-token": "nope"})
    assert wrong.status_code == 403


def test_redrive_from_another_site_is_refused_even_with_the_token(client: Client) -> None:
    good = token(client)
    headers = {"x-csrf-token": good}
    cross_origin = client.post(
        REDRIVE, json={}, headers={**headers, "origin": "http://attacker.example"}
    )
    assert cross_origin.status_code == 403 and "cross-origin" in cross_origin.json()["message"]
    cross_site = client.post(
        REDRIVE, json={}, headers={**headers, "origin": BASE, "sec-fetch-site": "cross-site"}
    )
    assert cross_site.status_code == 403 and "cross-site" in cross_site.json()["message"]
    # What an HTML form on another page could send: not JSON.
    form = client.post(REDRIVE, data={"a": "b"}, headers={**headers, "origin": BASE})
    assert form.status_code == 403 and "JSON" in form.json()["message"]


def test_a_bad_entry_id_is_a_400_not_a_query(client: Client) -> None:
    headers = {"x-csrf-token": token(client), "origin": BASE, "sec-fetch-site": "same-origin"}
    answer = client.post("/api/dlq/payments-12/redrive", json={}, headers=headers)
    assert answer.status_code == 400 and "payment:12" in answer.json()["message"]
    assert client.get("/api/orders/not-a-uuid").status_code == 400
    assert client.get("/api/orders").status_code == 400
    assert client.get("/api/stuck?older_than=soon").status_code == 400
    assert client.get("/api/dlq?service=shipping").status_code == 400
