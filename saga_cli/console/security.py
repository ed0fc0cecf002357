"""What keeps the console safe to open: response headers, the Host check, the CSRF guard.

Event payloads come from outside the system, so the page treats every value as text (the
scripts build elements and set textContent; see static/js/dom.js) and the headers make
that the only thing a browser will do: a Content-Security-Policy without inline script or
eval, nosniff, no framing.

The console has no login: it is meant for 127.0.0.1. Two attacks still reach a loopback
server through the operator's browser, and both are refused here:
- a page on another site POSTing to it (CSRF): a state-changing request must be a
  same-origin JSON POST (Origin and Sec-Fetch-Site checked) carrying the token that only a
  same-origin script can read (GET /api/session; no CORS headers, so no other origin can);
- DNS rebinding (another site's name made to resolve to 127.0.0.1, which makes it "same
  origin"): a request whose Host is not a name the console is served under is refused.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "CSRF_HEADER",
    "SecurityMiddleware",
    "allowed_hosts",
    "csrf_refusal",
    "new_csrf_token",
]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
CSRF_HEADER = "x-csrf-token"
_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def allowed_hosts(bind_host: str, extra: tuple[str, ...] = ()) -> frozenset[str] | None:
    """Host names the console answers to; None (any) when it listens on every address,
    since the operator then reaches it under names it cannot know."""
    if _is_wildcard(bind_host):
        return None
    return frozenset({*_LOOPBACK_NAMES, bind_host.strip("[]").lower(), *extra})


def _host_name(host_header: str) -> str:
    """The name in a Host header, without its port ("[::1]:8090" -> "::1")."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class SecurityMiddleware:
    """Refuses requests for a Host it is not served under; adds the headers to every
    response, and `Cache-Control: no-store` to the API's (its answers are live state)."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = _host_name(Headers(scope=scope).get("host", ""))
        if self.hosts is not None and host not in self.hosts:
            refusal = PlainTextResponse(
                "unknown Host: the console answers only to the names it is served under",
                status_code=421,
            )
            await refusal(scope, receive, self._with_headers(scope, send))
            return
        await self.app(scope, receive, self._with_headers(scope, send))

    @staticmethod
    def _with_headers(scope: Scope, send: Send) -> Send:
        api = str(scope.get("path", "")).startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(_HEADERS)
                headers.append((b"cache-control", b"no-store" if api else b"no-cache"))
                message["headers"] = headers
            await send(message)

        return send_with_headers


def csrf_refusal(request: Request, token: str) -> str | None:
    """Why a state-changing request is refused, or None when it may go ahead."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        return f"cross-site request refused (Sec-Fetch-Site: {site})"
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin is not None and origin != own:
        return "cross-origin request refused (Origin is not this console)"
    # JSON only: a cross-site form cannot send it, and a cross-site script cannot without a
    # CORS preflight, which the console never grants.
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return "the request must be JSON (Content-Type: application/json)"
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), token.encode()):
        return f"missing or wrong {CSRF_HEADER} header: reload the page"
    return None
