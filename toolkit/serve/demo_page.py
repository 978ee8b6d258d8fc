"""The demo page: the CDSS side of a CDS Hooks call, for synthetic patients only.

Enabled by ``demo_dir`` (``regent serve --demo agents``): each ``<demo_dir>/<agent>/examples/*.json``
is a synthetic CDS Hooks request.  The page lists them, sends the chosen one through the same
service code as ``POST /cds-services/{id}`` (audited, with auth method ``none`` and client
``demo``), shows the FHIR data and the cards, and records accept / override feedback.  It
takes no patient data from the browser: only the name of an example file.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import Field

from toolkit.errors import AgentError
from toolkit.serve.auth import Principal
from toolkit.serve.cds_hooks import base_url, call_service
from toolkit.serve.schemas import HookRequest, Model
from toolkit.serve.service import OVERRIDE_CODES, OVERRIDE_SYSTEM, Runtime

DEMO = Principal("none", subject="demo")


class DemoCall(Model):
    agent: str = Field(pattern=r"^[a-z0-9-]+$")
    patient: str = Field(pattern=r"^[A-Za-z0-9_-]+$")


class DemoFeedback(Model):
    agent: str = Field(pattern=r"^[a-z0-9-]+$")
    card: uuid.UUID
    outcome: Literal["accepted", "overridden"]
    reason: str | None = Field(None, max_length=64)


DATE_KEYS = ("effectiveDateTime", "issued", "recordedDate", "onsetDateTime", "authoredOn", "dateAsserted")


def recent_dates(obj: Any) -> Any:
    """The example with its clinical dates moved so the latest is a week ago: the data stay
    inside the contract's lookback windows whenever the demo runs (birth dates are kept)."""
    found: list[dt.date] = []

    def collect(o: Any) -> None:
        if isinstance(o, dict):
            for k, v in o.items():
                if k in DATE_KEYS and isinstance(v, str):
                    found.append(dt.date.fromisoformat(v[:10]))
                collect(v)
        elif isinstance(o, list):
            for v in o:
                collect(v)

    collect(obj)
    if not found:
        return obj
    shift = (dt.date.today() - dt.timedelta(days=7)) - max(found)

    def move(o: Any) -> Any:
        if isinstance(o, dict):
            return {
                k: (dt.date.fromisoformat(v[:10]) + shift).isoformat()
                if k in DATE_KEYS and isinstance(v, str)
                else move(v)
                for k, v in o.items()
            }
        return [move(v) for v in o] if isinstance(o, list) else o

    return move(obj)


def examples(rt: Runtime, demo_dir: Path) -> dict[tuple[str, str], Path]:
    found: dict[tuple[str, str], Path] = {}
    for name in rt.agents:
        for f in sorted((demo_dir / name / "examples").glob("*.json")):
            found[(name, f.stem)] = f
    return found


def demo_router(rt: Runtime, demo_dir: Path) -> APIRouter:
    router = APIRouter(tags=["demo"], include_in_schema=False)
    page = (Path(__file__).parent / "static" / "demo.html").read_text(encoding="utf-8")

    @router.get("/demo", response_class=HTMLResponse)
    def demo() -> HTMLResponse:
        return HTMLResponse(
            page,
            headers={
                "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
            },
        )

    @router.get("/demo/api/patients")
    def patients() -> list[dict[str, str]]:
        return [
            {
                "agent": a,
                "id": p,
                "label": p.split("-", 1)[-1].replace("-", " "),
                "title": rt.agents[a].contract.title,
            }
            for (a, p) in examples(rt, demo_dir)
        ]

    @router.post("/demo/api/call")
    async def call(body: DemoCall, request: Request) -> JSONResponse:
        path = examples(rt, demo_dir).get((body.agent, body.patient))
        if path is None:
            raise AgentError(f"no demo patient {body.patient!r} for agent {body.agent!r}")
        raw: dict[str, Any] = recent_dates(json.loads(path.read_text(encoding="utf-8")))
        raw["hookInstance"] = str(uuid.uuid4())
        req = HookRequest.model_validate(raw)
        sid = body.agent if req.hook == "patient-view" else f"{body.agent}--{req.hook}"
        reply = await call_service(rt, sid, req, DEMO, base_url(rt, request))
        return JSONResponse(
            {"status": reply.status_code, "request": raw, "response": json.loads(bytes(reply.body))}
        )

    @router.post("/demo/api/feedback")
    def feedback(body: DemoFeedback) -> dict[str, Any]:
        agent = rt.agent(body.agent)
        rt.record(
            kind="feedback",
            call="patient-view",
            agent=agent.name,
            version=agent.version,
            card_uuid=str(body.card),
            outcome=body.outcome,
            # a code the card offered, else 'unlisted': never text as sent
            override_reason=None
            if body.reason is None
            else body.reason
            if (OVERRIDE_SYSTEM, body.reason) in OVERRIDE_CODES
            else "unlisted",
            auth=DEMO.method,
            client=DEMO.subject,
        )
        return {"recorded": body.outcome, "card": str(body.card)}

    return router
