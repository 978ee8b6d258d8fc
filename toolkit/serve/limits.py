"""ASGI middleware around the whole app: authentication, body size limit, request timeout,
loopback-only mode with DNS-rebinding protection (``auth: off``), the one handler of
unexpected errors, metrics, and the audit record of every refused call.  Pure ASGI (no
``BaseHTTPMiddleware``) to keep the hot path short.
"""

from __future__ import annotations

import json
import logging
import re
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from toolkit.serve.audit import track_audit
from toolkit.serve.auth import Authenticator, AuthError, Principal
from toolkit.serve.metrics import Metrics

log = logging.getLogger("regent.serve")

LOOPBACK = ("127.", "::1", "localhost")
#: Host header values a loopback-only server answers (DNS rebinding: a public name that resolves
#: to 127.0.0.1 still carries its own name in Host, and a page's Origin names its site)
_LOCAL_HOST = re.compile(r"(127(\.\d{1,3}){3}|localhost|\[::1\])(:\d{1,5})?")
_LOCAL_ORIGIN = re.compile(r"https?://(127(\.\d{1,3}){3}|localhost|\[::1\])(:\d{1,5})?")


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
        audit: Callable[..., None] | None = None,
        debug_dir: Path | None = None,
    ) -> None:
        self.app = app
        self.audit = audit
        self.debug_dir = debug_dir
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
        state: dict[str, Any] = {"status": 500, "started": False, "reason": None}
        audited = track_audit()

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["started"] = True
                if message["status"] >= 400 and not audited[0]:
                    # before the answer leaves: a client that reads the log next finds the record
                    audited[0] = True
                    self._audit_refusal(scope, int(message["status"]), state)
            await send(message)

        try:
            await self._guarded(scope, receive, send_wrapped, state)
        finally:
            self._record(scope, int(state["status"]), start)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, state: dict[str, Any]) -> None:
        headers = dict(scope.get("headers") or [])
        if self.loopback_only:
            refused = _not_local(scope, headers)
            if refused is not None:
                state["reason"] = refused
                await _answer(send, 403, {"error": "this server runs with auth off: loopback clients only"})
                return
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
                log.warning("authentication refused: %s", exc.reason)  # the reason, never the token
                state["reason"] = exc.reason
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"www-authenticate", b"Bearer"), (b"content-length", b"0")],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
                return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            state["reason"] = "body-too-large"
            await _answer(send, 413, {"error": "request body too large"})
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
                await self.app(scope, receive_limited, send)
        except _TooLarge:
            state["reason"] = "body-too-large"
            if not state["started"]:
                await _answer(send, 413, {"error": "request body too large"})
        except TimeoutError:
            log.warning("request timed out on route %s", _route(scope))
            state["reason"] = "timeout"
            if not state["started"]:
                await _answer(send, 504, {"error": "request timed out"})
        except Exception as exc:  # the one place an unexpected error ends: 500 with an id
            error_id = str(uuid.uuid4())
            state["reason"], state["error_id"] = type(exc).__name__, error_id
            # one line, no traceback: the exception's text and frames may hold request data
            log.error("unexpected %s on route %s (error id %s)", type(exc).__name__, _route(scope), error_id)
            self._write_traceback(error_id, exc)
            if not state["started"]:
                state["status"] = 500
                await _answer(send, 500, {"error": "internal error", "error_id": error_id})

    def _write_traceback(self, error_id: str, exc: Exception) -> None:
        if self.debug_dir is None:
            return
        try:
            self.debug_dir.mkdir(parents=True, exist_ok=True)
            text = "".join(traceback.format_exception(exc))
            (self.debug_dir / f"{error_id}.txt").write_text(text, encoding="utf-8")
        except OSError:
            log.error("could not write the traceback of error %s to debug_dir", error_id)

    def _audit_refusal(self, scope: Scope, status: int, state: dict[str, Any]) -> None:
        """A refused or failed call's audit record: route, status and reason; no token, no values."""
        if self.audit is None:
            return
        needs, _ = protection(scope["method"], scope["path"])
        if not needs and status < 500:
            return  # public reads (discovery, model cards, metrics) are not calls
        agent, route = self._labels(scope)
        principal = scope.get(PRINCIPAL)
        p = principal if isinstance(principal, Principal) else Principal("none")
        try:
            self.audit(
                kind="error" if status >= 500 else "refused",
                call=route,
                agent=agent,
                status=status,
                reason=state.get("reason"),
                error_id=state.get("error_id"),
                auth=p.method,
                issuer=p.issuer,
                tenant=p.tenant,
                jti=p.jti,
                client=p.subject,
            )
        except Exception as exc:  # the answer is sent; an audit failure must still be seen
            log.error("audit record of a refused call failed (%s)", type(exc).__name__)

    def _record(self, scope: Scope, status: int, start: float) -> None:
        agent, route = self._labels(scope)
        self.metrics.observe(agent, route, status, time.perf_counter() - start)

    def _labels(self, scope: Scope) -> tuple[str, str]:
        """(agent, route) labels of a request: from the loaded agents and routes, never the caller."""
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
        return agent, route


def _not_local(scope: Scope, headers: dict[bytes, bytes]) -> str | None:
    """Why a request may not reach a loopback-only server (None: it may)."""
    client = scope.get("client")
    if not (client and str(client[0]).startswith(LOOPBACK)):
        return "not-loopback"
    host = headers.get(b"host", b"").decode("latin-1")
    if not _LOCAL_HOST.fullmatch(host):
        return "host-not-loopback"  # DNS rebinding: a public name pointed at 127.0.0.1
    origin = headers.get(b"origin")
    if origin is not None and not _LOCAL_ORIGIN.fullmatch(origin.decode("latin-1")):
        return "origin-not-loopback"
    return None


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    v = headers.get(name)
    return v.decode("latin-1") if v is not None else None


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
