"""The FastAPI application: CDS Hooks 2.0 services and a REST API over loaded agent bundles.

Built by :func:`create_app`; nothing is loaded at import time.  Toolkit errors are mapped to
HTTP answers in one place (:func:`_install_error_handlers`); messages name fields, never values.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from toolkit.agents.fhir import map_inputs, prefetch_templates, resources_of
from toolkit.agents.load import Agent, Prediction
from toolkit.errors import AgentError, InputValidationError, MissingDataError, ToolkitError
from toolkit.serve.settings import Settings

log = logging.getLogger("regent.serve")


def load_agents(folder: Path) -> dict[str, Agent]:
    """Every valid bundle in ``folder``; for each agent name the highest version wins."""
    agents: dict[str, Agent] = {}
    for d in sorted(Path(folder).glob("*/SHA256SUMS")):
        agent = Agent.load(d.parent)
        cur = agents.get(agent.name)
        if cur is None or _vkey(agent.version) > _vkey(cur.version):
            agents[agent.name] = agent
    return agents


def _vkey(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split(".") if x.isdigit())


def card_for(agent: Agent, p: Prediction, used: list[Any], base: str) -> dict[str, Any]:
    """A CDS Hooks 2.0 card from a prediction."""
    dates = {u.input: u.date for u in used}
    lines = [f"**{p.summary}**", "", "Top contributing factors:"]
    for c in p.contributions:
        when = f" ({dates[c.input]})" if dates.get(c.input) else ""
        label = next((i.label or i.name for i in agent.contract.inputs if i.name == c.input), c.input)
        lines.append(f"- {label}: {c.value}{when} — {c.direction}")
    if p.warnings:
        lines += ["", "Data notes:"] + [f"- {w}" for w in p.warnings]
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": p.summary[:139],
        "indicator": p.indicator,
        "detail": "\n".join(lines),
        "source": {
            "label": f"{agent.contract.title} (Regent agent {agent.name} v{agent.version})",
            "url": f"{base}/agents/{agent.name}/model-card",
        },
    }
    if p.suggestion:
        card["suggestions"] = [{"label": p.suggestion, "uuid": str(uuid.uuid4()), "isRecommended": True}]
        card["selectionBehavior"] = "at-most-one"
    return card


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    app = FastAPI(
        title="Regent agent server", version="1", description="CDS Hooks 2.0 and REST for Regent agents"
    )
    app.state.settings = settings
    app.state.agents = load_agents(settings.agents_dir)
    app.state.feedback_lock = threading.Lock()
    _install_error_handlers(app)

    def agent_or_404(agent_id: str) -> Agent:
        a = app.state.agents.get(agent_id)
        if a is None:
            raise AgentError(f"unknown agent {agent_id!r}")
        return a

    def base_url(request: Request) -> str:
        return settings.base_url or str(request.base_url).rstrip("/")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        ready = bool(app.state.agents)
        return JSONResponse(
            {"ready": ready, "agents": sorted(app.state.agents)}, status_code=200 if ready else 503
        )

    @app.get("/cds-services")
    def discovery() -> dict[str, Any]:
        services = []
        for a in app.state.agents.values():
            for hook in a.contract.hooks:
                services.append(
                    {
                        "hook": hook,
                        "title": a.contract.title,
                        "description": a.contract.description,
                        "id": a.name if hook == "patient-view" else f"{a.name}--{hook}",
                        "prefetch": prefetch_templates(a.contract),
                    }
                )
        return {"services": services}

    @app.post("/cds-services/{service_id}")
    async def cds_service(service_id: str, request: Request) -> JSONResponse:
        name = service_id.split("--")[0]
        agent = agent_or_404(name)
        body = await _json_body(request, settings)
        for key in ("hook", "hookInstance", "context"):
            if key not in body:
                raise InputValidationError(f"CDS Hooks request: '{key}' is required")
        resources = resources_of(body.get("prefetch"))
        values, used = map_inputs(agent.contract, resources)
        try:
            p = agent.predict(values)
        except MissingDataError as exc:
            return JSONResponse(
                {
                    "error": "missing prefetch data",
                    "missing": list(exc.fields),
                    "prefetch": prefetch_templates(agent.contract),
                },
                status_code=412,
            )
        return JSONResponse({"cards": [card_for(agent, p, used, base_url(request))]})

    @app.post("/cds-services/{service_id}/feedback")
    async def feedback(service_id: str, request: Request) -> JSONResponse:
        agent_or_404(service_id.split("--")[0])
        body = await _json_body(request, settings)
        items = body.get("feedback")
        if not isinstance(items, list) or not items:
            raise InputValidationError("feedback: expected a non-empty 'feedback' list")
        for i, f in enumerate(items):
            if (
                not isinstance(f, dict)
                or "card" not in f
                or f.get("outcome") not in ("accepted", "overridden")
            ):
                raise InputValidationError(
                    f"feedback[{i}]: needs 'card' and outcome 'accepted' or 'overridden'"
                )
        if settings.feedback_path is not None:
            with app.state.feedback_lock, settings.feedback_path.open("a", encoding="utf-8") as fh:
                for f in items:
                    rec = {
                        "time": time.time(),
                        "service": service_id,
                        "card": f["card"],
                        "outcome": f["outcome"],
                        "overrideReason": (f.get("overrideReason") or {}).get("reason", {}).get("code")
                        if isinstance(f.get("overrideReason"), dict)
                        else None,
                    }
                    fh.write(json.dumps(rec) + "\n")
        return JSONResponse({}, status_code=200)

    @app.get("/agents")
    def agents() -> list[dict[str, Any]]:
        return [
            {"name": a.name, "version": a.version, "title": a.contract.title, "bundle_sha256": a.bundle_hash}
            for a in app.state.agents.values()
        ]

    @app.get("/agents/{agent_id}")
    def agent_info(agent_id: str) -> dict[str, Any]:
        a = agent_or_404(agent_id)
        return {"manifest": a.manifest, "model_card": (a.path / "model_card.md").read_text(encoding="utf-8")}

    @app.get("/agents/{agent_id}/model-card")
    def model_card(agent_id: str) -> JSONResponse:
        a = agent_or_404(agent_id)
        return JSONResponse({"markdown": (a.path / "model_card.md").read_text(encoding="utf-8")})

    @app.post("/agents/{agent_id}/predict")
    async def predict(agent_id: str, request: Request) -> dict[str, Any]:
        a = agent_or_404(agent_id)
        body = await _json_body(request, settings)
        return a.predict(body.get("inputs", body)).to_dict()

    @app.post("/agents/{agent_id}/explain")
    async def explain(agent_id: str, request: Request) -> dict[str, Any]:
        a = agent_or_404(agent_id)
        body = await _json_body(request, settings)
        return a.explain(body.get("inputs", body)).to_dict()

    return app


async def _json_body(request: Request, settings: Settings) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > settings.max_body_bytes:
        raise _TooLarge()
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise InputValidationError("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InputValidationError("request body must be a JSON object")
    return body


class _TooLarge(ToolkitError):
    pass


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MissingDataError)
    async def _missing(request: Request, exc: MissingDataError) -> JSONResponse:
        return JSONResponse({"error": str(exc), "missing": list(exc.fields)}, status_code=412)

    @app.exception_handler(InputValidationError)
    async def _invalid(request: Request, exc: InputValidationError) -> JSONResponse:
        return JSONResponse({"error": str(exc), "fields": list(exc.fields)}, status_code=422)

    @app.exception_handler(AgentError)
    async def _agent(request: Request, exc: AgentError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=404)

    @app.exception_handler(_TooLarge)
    async def _large(request: Request, exc: _TooLarge) -> JSONResponse:
        return JSONResponse({"error": "request body too large"}, status_code=413)
