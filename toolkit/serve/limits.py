"""ASGI middleware around the whole app: body size limit, request timeout, loopback-only mode
(``auth: off``) and metrics.  Pure ASGI (no ``BaseHTTPMiddleware``) to keep the hot path short.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from toolkit.serve.auth import Authenticator, AuthError
from toolkit.serve.metrics import Metrics

log = logging.getLogger("regent.serve")

LOOPBACK = ("127.", "::1", "localhost")


async def _answer(send: Send, status: int, body: dict[str, Any] | None) -> None:
    data = json.dumps(body).encode() if body is not None else b""
    headers = [(b"content-length", str(len(data)).encode())]
    if body is not None:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class _TooLarge(Exception):
    pass


PRINCIPAL = "regent.principal"


def protection(method: str, path: str) -> tuple[bool, bool]:
    """(needs credentials, API keys accepted) for a request.  Discovery, model cards, health and
    metrics are public; CDS Hooks calls take JWTs only; REST and MCP take JWTs or API keys."""
    if method == "OPTIONS":
        return False, False
    if path.startswith("/cds-services/") and method == "POST":
        return True, False
    if path.startswith("/agents/") and method == "POST":
        return True, True
    if path == "/mcp" or path.startswith("/mcp/"):
        return True, True
    return False, False


def called_url(scope: Scope, base_url: str | None) -> str:
    """The URL the client called, as the JWT 'aud' must name it (no query string)."""
    path = scope.get("path", "")
    if base_url:
        return base_url.rstrip("/") + path
    host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
    return f"{scope.get('scheme', 'http')}://{host}{path}"


class Guard:
    """Refuse oversized bodies (413), slow requests (504), unauthenticated calls (bare 401) and,
    with auth off, non-loopback clients (403); record every answer in the metrics."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        auth: Authenticator,
        base_url: str | None,
        max_body: int,
        timeout: float,
        loopback_only: bool,
        agent_names: frozenset[str],
    ) -> None:
        self.app = app
        self.agent_names = agent_names
        self.metrics = metrics
        self.auth = auth
        self.base_url = base_url
        self.max_body = max_body
        self.timeout = timeout
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state = {"status": 500, "started": False}

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["started"] = True
            await send(message)

        client = scope.get("client")
        if self.loopback_only and not (client and str(client[0]).startswith(LOOPBACK)):
            await _answer(
                send_wrapped, 403, {"error": "this server runs with auth off: loopback clients only"}
            )
            self._record(scope, state["status"], start)
            return
        headers = dict(scope.get("headers") or [])
        needs, keys_ok = protection(scope["method"], scope["path"])
        if needs:
            try:
                scope[PRINCIPAL] = self.auth.authenticate(
                    _header(headers, b"authorization"),
                    _header(headers, b"x-api-key"),
                    called_url(scope, self.base_url),
                    allow_api_key=keys_ok,
                )
            except AuthError as exc:
                self.metrics.auth_failures.labels(exc.reason).inc()
                log.info("authentication refused: %s", exc.reason)  # the reason, never the token
                await send_wrapped(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"www-authenticate", b"Bearer"), (b"content-length", b"0")],
                    }
                )
                await send_wrapped({"type": "http.response.body", "body": b""})
                self._record(scope, 401, start)
                return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _answer(send_wrapped, 413, {"error": "request body too large"})
            self._record(scope, 413, start)
            return
        seen = 0

        async def receive_limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _TooLarge
            return message

        try:
            with anyio.fail_after(self.timeout):
                await self.app(scope, receive_limited, send_wrapped)
        except _TooLarge:
            if not state["started"]:
                await _answer(send_wrapped, 413, {"error": "request body too large"})
        except TimeoutError:
            log.warning("request timed out on route %s", _route(scope))
            if not state["started"]:
                await _answer(send_wrapped, 504, {"error": "request timed out"})
        self._record(scope, int(state["status"]), start)

    def _record(self, scope: Scope, status: int, start: float) -> None:
        params = scope.get("path_params") or {}
        route = _route(scope)
        agent = str(params.get("agent_id") or params.get("service_id") or "").split("--")[0]
        parts = str(scope.get("path", "")).split("/")
        if route == "unmatched" and len(parts) > 2 and parts[1] in ("cds-services", "agents"):
            route = f"/{parts[1]}/*"  # not routed (refused before routing): label by area
            agent = parts[2].split("--")[0]
        elif route.startswith("/agents/") and not params:  # a per-agent route: /agents/<name>/predict
            agent, route = parts[2], "/agents/{agent_id}/" + "/".join(parts[3:])
        if agent not in self.agent_names:
            agent = "-"  # never a label value chosen by the caller
        self.metrics.observe(agent, route, status, time.perf_counter() - start)


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    v = headers.get(name)
    return v.decode("latin-1") if v is not None else None


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
