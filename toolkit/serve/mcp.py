"""The agents as MCP tools: ``<agent>.predict`` and ``<agent>.explain``.

Input schemas are generated from the agent contract (the same model as the REST body's
``inputs``), output schemas from the prediction.  Bad arguments give an ``isError`` result that
names the fields, never a protocol error or a crash.  Served over stdio (``regent mcp``) and
streamable HTTP (``/mcp`` on the app, behind the same JWT / API-key check as REST).
"""

from __future__ import annotations

import json
import time
from typing import Any

import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, ValidationError

from toolkit.agents.load import Agent
from toolkit.errors import InputValidationError
from toolkit.serve.auth import ANONYMOUS, Principal
from toolkit.serve.limits import PRINCIPAL
from toolkit.serve.schemas import PredictionOut, inputs_model
from toolkit.serve.service import Runtime, prediction_dict
from toolkit.specs import validation_message

OPERATIONS = {
    "predict": "risk, risk group and the top 3 contributing inputs",
    "explain": "risk and the contribution of every input",
}


def _tools(rt: Runtime) -> dict[str, tuple[Agent, str, type[BaseModel], types.Tool]]:
    out: dict[str, tuple[Agent, str, type[BaseModel], types.Tool]] = {}
    output_schema = PredictionOut.model_json_schema()
    for agent in rt.agents.values():
        model = inputs_model(agent.contract)
        for op, what in OPERATIONS.items():
            name = f"{agent.name}.{op}"
            tool = types.Tool(
                name=name,
                title=f"{agent.contract.title} ({op})",
                description=f"{agent.contract.description.strip()} Returns {what}. "
                f"Intended use: {agent.contract.intended_use.strip()}",
                input_schema=model.model_json_schema(),
                output_schema=output_schema,
            )
            out[name] = (agent, op, model, tool)
    return out


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


def build_mcp_server(rt: Runtime) -> Server[Any]:
    tools = _tools(rt)

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[t for *_, t in tools.values()])

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        entry = tools.get(params.name)
        if entry is None:  # the name came from the caller: not repeated
            rt.record(kind="mcp", call="unknown-tool", status=404, auth=_principal(ctx).method)
            return _error(f"unknown tool; tools: {sorted(tools)}")
        agent, op, model, _ = entry
        start = time.perf_counter()
        status = 200
        try:
            args = model.model_validate(params.arguments or {})
            inputs = {k: v for k, v in args.model_dump().items() if v is not None}
            p = rt.predict(
                agent,
                inputs,
                principal=_principal(ctx),
                kind="mcp",
                call=params.name,
                explain=op == "explain",
            )
        except ValidationError as exc:  # refused before the model: audited here
            status = 422
            p0 = _principal(ctx)
            rt.record(
                kind="mcp",
                call=params.name,
                agent=agent.name,
                version=agent.version,
                status=422,
                auth=p0.method,
                issuer=p0.issuer,
                tenant=p0.tenant,
                jti=p0.jti,
                client=p0.subject,
            )
            return _error(validation_message("arguments", exc))
        except InputValidationError as exc:  # audited by rt.predict
            status = 422
            return _error(f"arguments: {exc}")
        finally:
            rt.metrics.observe(agent.name, f"mcp:{op}", status, time.perf_counter() - start)
        result = prediction_dict(p)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=p.summary + "\n" + json.dumps(result))],
            structured_content=result,
        )

    return Server(
        "regent",
        version="1",
        instructions="Regent clinical risk agents. Each tool takes one patient's inputs "
        "(see its inputSchema) and returns an absolute risk with its explanation.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def _principal(ctx: ServerRequestContext[Any]) -> Principal:
    scope = getattr(ctx.request, "scope", None)
    p = scope.get(PRINCIPAL) if isinstance(scope, dict) else None
    return (
        p if isinstance(p, Principal) else Principal("none", subject="stdio") if scope is None else ANONYMOUS
    )


def http_app(rt: Runtime, server: Server[Any]) -> tuple[StreamableHTTPASGIApp, StreamableHTTPSessionManager]:
    """The streamable-HTTP endpoint (stateless JSON answers: any worker can serve any request).

    With auth off the server answers loopback only, so DNS-rebinding protection is on for it.
    """
    security = None
    if rt.settings.auth == "off":
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
    manager = StreamableHTTPSessionManager(
        app=server,
        json_response=True,
        stateless=True,
        security_settings=security,
        max_request_body_size=rt.settings.max_body_bytes,
    )
    return StreamableHTTPASGIApp(manager), manager


async def run_stdio(rt: Runtime) -> None:
    """Serve the tools on stdin/stdout until the client closes them (``regent mcp``)."""
    server = build_mcp_server(rt)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())
