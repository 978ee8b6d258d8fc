"""CDS Hooks 2.0: discovery, service calls (patient-view, order-sign) and feedback."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from toolkit.agents.fhir import map_inputs, prefetch_templates, resources_of
from toolkit.agents.load import Agent
from toolkit.errors import InputValidationError, MissingDataError
from toolkit.serve.auth import ANONYMOUS, Principal
from toolkit.serve.fhir_fetch import allowed_server, fetch_prefetch
from toolkit.serve.limits import PRINCIPAL
from toolkit.serve.schemas import CardsOut, Discovery, ErrorOut, FeedbackRequest, HookRequest
from toolkit.serve.service import Runtime, card_for

log = logging.getLogger("regent.serve")

#: context fields each supported hook requires (CDS Hooks 2.0 hook definitions)
HOOK_CONTEXT = {"patient-view": ("userId", "patientId"), "order-sign": ("userId", "patientId", "draftOrders")}

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid credentials (empty body)."},
    404: {"model": ErrorOut, "description": "Unknown service."},
    412: {"model": ErrorOut, "description": "Required data missing: 'missing' names the inputs."},
    422: {"model": ErrorOut, "description": "Malformed request or FHIR data: names the field."},
}


def service_id(agent: Agent, hook: str) -> str:
    return agent.name if hook == "patient-view" else f"{agent.name}--{hook}"


def principal_of(request: Request) -> Principal:
    p = request.scope.get(PRINCIPAL)
    return p if isinstance(p, Principal) else ANONYMOUS


def base_url(rt: Runtime, request: Request) -> str:
    return rt.settings.base_url.rstrip("/") if rt.settings.base_url else str(request.base_url).rstrip("/")


def resolve(rt: Runtime, sid: str) -> tuple[Agent, str]:
    name, _, hook = sid.partition("--")
    agent = rt.agent(name)
    hook = hook or "patient-view"
    if hook not in agent.contract.hooks:
        raise InputValidationError(f"service {sid!r}: agent {agent.name} does not declare hook {hook!r}")
    return agent, hook


async def call_service(
    rt: Runtime, sid: str, req: HookRequest, principal: Principal, base: str
) -> JSONResponse:
    """One CDS Hooks call: FHIR prefetch -> inputs -> audited prediction -> one card (or 412)."""
    agent, hook = resolve(rt, sid)
    if req.hook != hook:
        raise InputValidationError(f"hook: this service answers {hook!r}", fields=("hook",))
    missing_ctx = [k for k in HOOK_CONTEXT.get(hook, ()) if k not in req.context]
    if missing_ctx:
        raise InputValidationError(
            f"context: {hook} requires {missing_ctx}", fields=tuple(f"context.{k}" for k in missing_ctx)
        )
    templates = prefetch_templates(agent.contract)
    prefetch = dict(req.prefetch or {})
    values, used = map_inputs(agent.contract, resources_of(prefetch))
    if _missing(agent, values) and req.fhirServer and req.fhirAuthorization:
        absent = {k: t for k, t in templates.items() if prefetch.get(k) is None}
        if absent and allowed_server(req.fhirServer, rt.settings.fhir_servers):
            timeout = httpx.Timeout(rt.settings.fhir_timeout_s)
            try:
                async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
                    fetched = await fetch_prefetch(
                        client, req.fhirServer, req.fhirAuthorization.access_token, absent, req.context
                    )
            except httpx.HTTPError as exc:  # unreachable or slow: answer 412 with what is missing
                log.warning("FHIR fetch failed (%s)", type(exc).__name__)
                fetched = {}
            prefetch.update(fetched)
            values, used = map_inputs(agent.contract, resources_of(prefetch))
    card_uuid = str(uuid.uuid4())
    try:
        p = rt.predict(
            agent,
            values,
            principal=principal,
            kind="cds-hooks",
            call=hook,
            hook_instance=req.hookInstance,
            card_uuid=card_uuid,
        )
    except MissingDataError as exc:
        return JSONResponse(
            {
                "error": f"required data missing for {list(exc.fields)}; send them in prefetch "
                "(templates in discovery) or give fhirServer and fhirAuthorization",
                "missing": list(exc.fields),
                "fields": list(exc.fields),
            },
            status_code=412,
        )
    return JSONResponse({"cards": [card_for(agent, p, used, base, card_uuid)]})


def _missing(agent: Agent, values: dict[str, Any]) -> bool:
    return any(i.missing == "refuse" and i.name not in values for i in agent.contract.inputs)


def cds_router(rt: Runtime) -> APIRouter:
    router = APIRouter(tags=["CDS Hooks 2.0"])

    @router.get("/cds-services", response_model=Discovery, response_model_exclude_none=True)
    def discovery() -> dict[str, Any]:
        """Every loaded agent, once per hook it declares, with prefetch templates from its FHIR mapping."""
        return {
            "services": [
                {
                    "hook": hook,
                    "title": a.contract.title,
                    "description": a.contract.description,
                    "id": service_id(a, hook),
                    "prefetch": prefetch_templates(a.contract),
                }
                for a in rt.agents.values()
                for hook in a.contract.hooks
            ]
        }

    @router.post(
        "/cds-services/{service_id}",
        response_model=CardsOut,
        response_model_exclude_none=True,
        responses=ERRORS,
    )
    async def service(service_id: str, body: HookRequest, request: Request) -> JSONResponse:
        """Cards for the patient in context (JWT bearer authentication; aud = this URL)."""
        return await call_service(rt, service_id, body, principal_of(request), base_url(rt, request))

    @router.post("/cds-services/{service_id}/feedback", responses=ERRORS)
    def feedback(service_id: str, body: FeedbackRequest, request: Request) -> dict[str, Any]:
        """Store accepted and overridden outcomes, linked to the card in the audit log."""
        agent, hook = resolve(rt, service_id)
        p = principal_of(request)
        for item in body.feedback:
            reason = item.overrideReason.reason if item.overrideReason else None
            rt.record(
                kind="feedback",
                call=hook,
                agent=agent.name,
                version=agent.version,
                card_uuid=item.card,
                outcome=item.outcome,
                outcome_time=item.outcomeTimestamp,
                override_reason=reason.get("code") if isinstance(reason, dict) else None,
                accepted_suggestions=[
                    s.get("id") for s in item.acceptedSuggestions or [] if isinstance(s, dict)
                ],
                auth=p.method,
                issuer=p.issuer,
                tenant=p.tenant,
                jti=p.jti,
            )
        return {}

    return router
