"""REST: agents, model cards, predict and explain with OpenAPI schemas from each agent contract."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from toolkit.agents.load import Agent
from toolkit.errors import AgentError
from toolkit.serve.cds_hooks import ERRORS, principal_of
from toolkit.serve.schemas import ErrorOut, PredictionOut, request_model
from toolkit.serve.service import Runtime, prediction_dict

REST_ERRORS = {k: v for k, v in ERRORS.items() if k != 412}


def rest_router(rt: Runtime) -> APIRouter:
    router = APIRouter(tags=["REST"])

    @router.get("/agents")
    def agents() -> list[dict[str, Any]]:
        """Loaded agents: name, version, title and bundle hash."""
        return [
            {"name": a.name, "version": a.version, "title": a.contract.title, "bundle_sha256": a.bundle_hash}
            for a in rt.agents.values()
        ]

    @router.get("/agents/{agent_id}", responses={404: ERRORS[404]})
    def agent_info(agent_id: str) -> dict[str, Any]:
        """The bundle manifest and the model card (Markdown)."""
        a = rt.agent(agent_id)
        return {"manifest": a.manifest, "model_card": _card(a)}

    json_404 = {
        "description": "Unknown agent.",
        "content": {"application/json": {"schema": ErrorOut.model_json_schema()}},
    }

    @router.get("/agents/{agent_id}/model-card", response_class=PlainTextResponse, responses={404: json_404})
    def model_card(agent_id: str) -> PlainTextResponse:
        """The model card as Markdown (linked from every CDS card's source)."""
        return PlainTextResponse(_card(rt.agent(agent_id)), media_type="text/markdown; charset=utf-8")

    for agent in rt.agents.values():
        _add_agent_routes(router, rt, agent)

    @router.post("/agents/{agent_id}/{operation}", include_in_schema=False)
    def unknown(agent_id: str, operation: str) -> None:
        rt.agent(agent_id)  # 404 naming the loaded agents
        raise AgentError("unknown operation; use predict or explain")

    return router


def _card(a: Agent) -> str:
    return (a.path / "model_card.md").read_text(encoding="utf-8")


def _add_agent_routes(router: APIRouter, rt: Runtime, agent: Agent) -> None:
    """POST /agents/<name>/predict and /explain, typed by the agent's contract."""
    body_model = request_model(agent.contract)

    async def predict(body: body_model, request: Request) -> dict[str, Any]:  # type: ignore[valid-type]
        return _run(rt, agent, body, request, explain=False)

    async def explain(body: body_model, request: Request) -> dict[str, Any]:  # type: ignore[valid-type]
        return _run(rt, agent, body, request, explain=True)

    for fn in (predict, explain):  # annotations are strings here: give FastAPI the model itself
        fn.__annotations__["body"] = body_model

    for op, fn, doc in (
        ("predict", predict, "Risk, risk group and the top 3 contributing inputs."),
        ("explain", explain, "Risk and the contribution of every input."),
    ):
        router.add_api_route(
            f"/agents/{agent.name}/{op}",
            fn,
            methods=["POST"],
            response_model=PredictionOut,
            responses=REST_ERRORS,
            summary=f"{op} — {agent.contract.title}"[:120],
            description=doc + " JWT bearer (aud = this URL) or X-API-Key.",
            operation_id=f"{op}_{agent.name.replace('-', '_')}",
        )


def _run(rt: Runtime, agent: Agent, body: Any, request: Request, *, explain: bool) -> dict[str, Any]:
    inputs = {k: v for k, v in body.inputs.model_dump().items() if v is not None}
    p = rt.predict(
        agent,
        inputs,
        principal=principal_of(request),
        kind="rest",
        call="explain" if explain else "predict",
        explain=explain,
    )
    return prediction_dict(p)
