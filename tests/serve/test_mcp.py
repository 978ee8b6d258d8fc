"""The agents as MCP tools, over stdio (``regent mcp`` as a subprocess) and streamable HTTP."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.serve.conftest import Secure
from tests.serve.helpers import API_KEY, GBSG2_INPUTS
from toolkit.agents.load import Agent

TOOL = "gbsg2-recurrence.predict"


async def _exercise(client: Client) -> dict[str, Any]:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert {TOOL, "gbsg2-recurrence.explain"} <= set(tools)
    schema = tools[TOOL].input_schema
    assert schema["properties"]["tumor_grade"]["enum"] == ["I", "II", "III"]
    assert "positive_nodes" in schema["required"] and "estrogen_receptor" not in schema["required"]
    assert tools[TOOL].output_schema is not None and "risk" in tools[TOOL].output_schema["properties"]
    ok = await client.call_tool(TOOL, GBSG2_INPUTS)
    bad = await client.call_tool(TOOL, {**GBSG2_INPUTS, "tumor_grade": "IV", "age_years": "old"})
    unknown = await client.call_tool("nope.predict", {})
    return {"ok": ok, "bad": bad, "unknown": unknown}


def _check(results: dict[str, Any], bundle: Path) -> None:
    ok, bad, unknown = results["ok"], results["bad"], results["unknown"]
    assert not ok.is_error
    assert ok.structured_content["risk"] == pytest.approx(
        Agent.load(bundle).predict(GBSG2_INPUTS).risk, abs=1e-12
    )
    assert bad.is_error and "tumor_grade" in bad.content[0].text and "age_years" in bad.content[0].text
    assert "old" not in bad.content[0].text  # names fields, never values
    assert unknown.is_error and "unknown tool" in unknown.content[0].text


def test_stdio(gbsg2_bundle: Path, tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-c",
            "from toolkit.cli.main import main; main()",
            "mcp",
            "--agents",
            str(gbsg2_bundle.parent),
            "--audit",
            str(tmp_path / "audit.sqlite"),
        ],
    )

    async def main() -> dict[str, Any]:
        async with Client(params, read_timeout_seconds=120) as client:
            return await _exercise(client)

    _check(anyio.run(main), gbsg2_bundle)
    from toolkit.serve.audit import read_records

    kinds = [(r["kind"], r["call"], r["status"]) for r in read_records(tmp_path / "audit.sqlite")]
    # invalid arguments never reach the model, but every call is audited, refusals included
    assert kinds == [("mcp", TOOL, 200), ("mcp", TOOL, 422), ("mcp", "unknown-tool", 404)]


def test_streamable_http_with_api_key(secure: Secure, gbsg2_bundle: Path) -> None:
    async def main() -> dict[str, Any]:
        async with (
            httpx2.AsyncClient(headers={"X-API-Key": API_KEY}, timeout=30) as http,
            Client(streamable_http_client(f"{secure.url}/mcp", http_client=http)) as client,
        ):
            return await _exercise(client)

    _check(anyio.run(main), gbsg2_bundle)


def test_streamable_http_with_jwt_and_without_credentials(secure: Secure) -> None:
    """Raw JSON-RPC over HTTP: each request carries a fresh JWT (aud = the /mcp URL)."""
    import httpx

    url = f"{secure.url}/mcp"
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    assert httpx.post(url, json=init, headers=headers).status_code == 401
    auth = secure.keys.bearer(url)
    first = httpx.post(url, json=init, headers={**headers, **auth})
    assert first.status_code == 200, first.text
    assert first.json()["result"]["serverInfo"]["name"] == "regent"
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": TOOL, "arguments": GBSG2_INPUTS},
    }
    reply = httpx.post(url, json=call, headers={**headers, **secure.keys.bearer(url)})
    assert reply.status_code == 200, reply.text
    assert 0 < reply.json()["result"]["structuredContent"]["risk"] < 1
    replay = httpx.post(url, json=call, headers={**headers, **auth})  # the first token again
    assert replay.status_code == 401
