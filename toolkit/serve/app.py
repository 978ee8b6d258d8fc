"""The FastAPI application: CDS Hooks 2.0, REST, MCP over streamable HTTP, metrics, demo page.

Built by :func:`create_app`; nothing is loaded at import time.  Toolkit errors are mapped to
HTTP answers in one place (:func:`_install_error_handlers`); messages name fields, never values.
Every request passes :class:`~toolkit.serve.limits.Guard` (auth, size, timeout, metrics) first.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route

from toolkit.agents.fhir_model import PatientMismatchError
from toolkit.errors import AgentError, InputValidationError, MissingDataError
from toolkit.serve.cds_hooks import cds_router
from toolkit.serve.limits import Guard
from toolkit.serve.metrics import CONTENT_TYPE
from toolkit.serve.rest import rest_router
from toolkit.serve.service import Runtime, card_for, load_agents
from toolkit.serve.settings import Settings

__all__ = ["card_for", "create_app", "load_agents"]

log = logging.getLogger("regent.serve")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The server for every bundle in ``settings.agents_dir`` (settings from the environment if None)."""
    settings = settings or Settings.from_env()
    rt = Runtime.start(settings)
    mcp_manager = None
    if settings.mcp_http:
        from toolkit.serve.mcp import build_mcp_server, http_app

        mcp_asgi, mcp_manager = http_app(rt, build_mcp_server(rt))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if mcp_manager is None:
            yield
            return
        async with mcp_manager.run():
            yield

    app = FastAPI(
        title="Regent agent server",
        version="1",
        description="CDS Hooks 2.0, REST and MCP for Regent agents. POST endpoints need a JWT "
        "(CDS Hooks client authentication; aud = the called URL) or, for REST and MCP, an X-API-Key.",
        lifespan=lifespan,
    )
    app.state.runtime = rt
    app.state.settings = settings
    app.state.agents = rt.agents
    _install_error_handlers(app)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    def readyz() -> JSONResponse:
        """Readiness: at least one verified agent is loaded (503 otherwise)."""
        ready = bool(rt.agents)
        return JSONResponse({"ready": ready, "agents": sorted(rt.agents)}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    def metrics() -> Response:
        """Prometheus text format: requests, latencies and errors per agent and endpoint."""
        return Response(rt.metrics.render(), media_type=CONTENT_TYPE)

    app.include_router(cds_router(rt))
    app.include_router(rest_router(rt))
    if settings.demo_dir is not None:
        from toolkit.serve.demo_page import demo_router

        app.include_router(demo_router(rt, settings.demo_dir))
    if mcp_manager is not None:
        app.router.routes.append(Route("/mcp", endpoint=mcp_asgi))

    app.add_middleware(
        Guard,
        metrics=rt.metrics,
        auth=rt.auth,
        base_url=settings.base_url,
        max_body=settings.max_body_bytes,
        timeout=settings.request_timeout_s,
        loopback_only=settings.auth == "off",
        agent_names=frozenset(rt.agents),
        audit=rt.record if rt.audit is not None else None,
        debug_dir=settings.debug_dir,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-API-Key",
                "Mcp-Protocol-Version",
                "Mcp-Session-Id",
            ],
            max_age=600,
        )
    return app


def _validation_error(exc: RequestValidationError) -> JSONResponse:
    """422 naming each field and what was expected; the values received are never echoed."""
    found: dict[str, tuple[int, str]] = {}  # path -> (depth of the error, message)
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        kind = err.get("type")
        if kind == "json_invalid":
            return JSONResponse({"error": "request body is not valid JSON", "fields": []}, status_code=422)
        path = f"inputs.{loc[1]}" if loc[:1] == ["inputs"] and len(loc) > 1 else ".".join(loc[:2]) or "body"
        leaf = loc[-1] if loc else "body"
        if kind == "missing":
            msg = f"'{leaf}' is required"
        elif kind == "extra_forbidden":
            msg = "unknown field"
        else:
            msg = str(err.get("msg", "invalid"))
            if str(kind).endswith("_parsing"):  # "..., invalid character `x` at 3": drop the echo
                msg = msg.split(",")[0]
            if leaf in ("value", "unit") and len(loc) > 3:
                msg = f"{leaf}: {msg}"
        # a union reports once per branch: keep the deepest (most specific) error
        if path not in found or len(loc) > found[path][0]:
            found[path] = (len(loc), msg)
    lines = [f"{path}: {msg}" for path, (_, msg) in found.items()]
    names = [p.removeprefix("inputs.") for p in found]
    return JSONResponse({"error": "; ".join(lines) or "invalid request", "fields": names}, status_code=422)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI's own refusals (a body it cannot parse, a method not allowed) in Regent's shape
        if exc.status_code < 400:
            return Response(status_code=exc.status_code, headers=exc.headers)
        return JSONResponse({"error": str(exc.detail), "fields": []}, exc.status_code, headers=exc.headers)

    @app.exception_handler(MissingDataError)
    async def _missing(request: Request, exc: MissingDataError) -> JSONResponse:
        return JSONResponse(
            {"error": str(exc), "missing": list(exc.fields), "fields": list(exc.fields)}, status_code=412
        )

    @app.exception_handler(PatientMismatchError)
    async def _mismatch(request: Request, exc: PatientMismatchError) -> JSONResponse:
        return JSONResponse({"error": str(exc), "fields": list(exc.fields)}, status_code=412)

    @app.exception_handler(InputValidationError)
    async def _invalid(request: Request, exc: InputValidationError) -> JSONResponse:
        return JSONResponse({"error": str(exc), "fields": list(exc.fields)}, status_code=422)

    @app.exception_handler(AgentError)
    async def _agent(request: Request, exc: AgentError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=404)

    # Any other exception ends in the Guard middleware (toolkit.serve.limits): a 500 with an error
    # id, one log line without a traceback, counted in /metrics and audited.
