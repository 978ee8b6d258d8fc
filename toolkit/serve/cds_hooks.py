"""CDS Hooks 2.0: discovery, service calls (patient-view, order-sign) and feedback."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import anyio
import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from toolkit.agents.fhir import Mapped, incomplete_keys, map_inputs, prefetch_templates
from toolkit.agents.fhir_model import check_patient, parse_prefetch, parse_resource
from toolkit.agents.load import Agent
from toolkit.errors import InputValidationError, MissingDataError
from toolkit.serve.auth import ANONYMOUS, Principal
from toolkit.serve.fhir_fetch import allowed_server, fetch_prefetch
from toolkit.serve.limits import PRINCIPAL
from toolkit.serve.schemas import CardsOut, Discovery, ErrorOut, FeedbackOut, FeedbackRequest, HookRequest
from toolkit.serve.service import OVERRIDE_CODES, Runtime, card_for

log = logging.getLogger("regent.serve")

#: context fields each supported hook requires (CDS Hooks 2.0 hook definitions)
HOOK_CONTEXT = {"patient-view": ("userId", "patientId"), "order-sign": ("userId", "patientId", "draftOrders")}

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid credentials (empty body)."},
    404: {"model": ErrorOut, "description": "Unknown service."},
    412: {"model": ErrorOut, "description": "Required data missing: 'missing' names the inputs."},
    422: {"model": ErrorOut, "description": "Malformed request or FHIR data: names the field."},
    413: {"model": ErrorOut, "description": "Request body over max_body_bytes."},
    500: {"model": ErrorOut, "description": "Unexpected error: 'error_id' names the log line."},
    504: {"model": ErrorOut, "description": "Request still running after request_timeout_s."},
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
        raise InputValidationError(
            f"service_id: agent {agent.name} declares the hooks {agent.contract.hooks} only",
            fields=("service_id",),
        )
    return agent, hook


FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def patient_of(context: dict[str, Any]) -> str:
    """``context.patientId``, which must be a FHIR id (it goes into search URLs)."""
    pid = context.get("patientId")
    if not isinstance(pid, str) or not FHIR_ID.fullmatch(pid) or set(pid) == {"."}:
        raise InputValidationError(
            "context.patientId: expected a FHIR id (1-64 letters, digits, '-' or '.')",
            fields=("context.patientId",),
        )
    return pid


def _searched(templates: dict[str, str], keys: set[str]) -> set[str]:
    """The resource types whose searches (prefetch keys) are complete."""
    return {re.split(r"[/?]", t, maxsplit=1)[0] for k, t in templates.items() if k in keys}


async def _fetch(rt: Runtime, req: HookRequest, wanted: dict[str, str], pid: str) -> dict[str, Any]:
    """The searches the client did not prefetch, from its FHIR server ({} if it is unreachable)."""
    s = rt.settings
    assert req.fhirServer is not None and req.fhirAuthorization is not None
    try:
        with anyio.fail_after(s.fhir_timeout_s):
            async with httpx.AsyncClient(
                timeout=httpx.Timeout(s.fhir_timeout_s), follow_redirects=False, trust_env=False
            ) as client:
                return await fetch_prefetch(
                    client,
                    req.fhirServer,
                    req.fhirAuthorization.access_token,
                    wanted,
                    {**req.context, "patientId": pid},
                    max_bytes=s.fhir_max_bytes,
                    max_pages=s.fhir_max_pages,
                )
    except (httpx.HTTPError, TimeoutError) as exc:  # unreachable or slow: 412 naming what is missing
        log.warning("FHIR fetch failed (%s)", type(exc).__name__)
        return {}


async def gather_inputs(rt: Runtime, agent: Agent, req: HookRequest) -> tuple[Mapped, list[str]]:
    """FHIR from prefetch (and the client's FHIR server for searches not sent) -> inputs.

    Returns the mapping and the prefetch keys still not sent (or partial) after fetching.
    """
    pid = patient_of(req.context)
    templates = prefetch_templates(agent.contract, code_below=rt.settings.fhir_code_below)
    prefetch = dict(req.prefetch or {})
    found = parse_prefetch(prefetch, where="prefetch")
    check_patient(found, pid)
    partial = set(incomplete_keys(prefetch))
    complete = {k for k in templates if prefetch.get(k) is not None and k not in partial}
    wanted = {k: t for k, t in templates.items() if k not in complete}
    if wanted and req.fhirServer and req.fhirAuthorization:
        if allowed_server(req.fhirServer, rt.settings.fhir_servers):
            fetched = await _fetch(rt, req, wanted, pid)
            replaced = [f"prefetch.{k}" for k in fetched]
            found = [f for f in found if not any(f.path.startswith(r + ".") or f.path == r for r in replaced)]
            found += parse_prefetch(fetched, where="fhirServer")
            check_patient(found, pid)
            complete |= set(fetched)
        else:
            log.warning("fhirServer is not under a configured fhir_servers base: not fetched")
    mapped = map_inputs(agent.contract, found, searched=_searched(templates, complete))
    return mapped, sorted(set(templates) - complete)


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
    if hook == "order-sign":
        parse_resource(req.context["draftOrders"], "context.draftOrders")
    mapped, not_sent = await gather_inputs(rt, agent, req)
    card_uuid = str(uuid.uuid4())
    try:
        p = rt.predict(
            agent,
            mapped.values,
            principal=principal,
            kind="cds-hooks",
            call=hook,
            hook_instance=str(req.hookInstance),
            card_uuid=card_uuid,
            patient_ref=rt.patient_ref(patient_of(req.context)),
        )
    except MissingDataError as exc:
        why = [n for name in exc.fields for n in mapped.notes.get(name, [])]
        if not_sent:
            why.append(f"prefetch not sent, partial or not fetched: {not_sent}")
        return JSONResponse(
            {
                "error": f"required data missing for {list(exc.fields)}"
                + "".join(f"; {w}" for w in why)
                + "; send them in prefetch (templates in discovery) or give fhirServer and fhirAuthorization",
                "missing": list(exc.fields),
                "fields": list(exc.fields),
            },
            status_code=412,
        )
    notes = dict(mapped.notes)
    notice = rt.card_notice(agent)
    if notice is not None:  # the contract asked: cards say so while calibration alerts
        notes["monitoring"] = [notice]
    return JSONResponse({"cards": [card_for(agent, p, mapped.used, base, card_uuid, notes=notes)]})


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
                    "prefetch": prefetch_templates(a.contract, code_below=rt.settings.fhir_code_below),
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

    @router.post("/cds-services/{service_id}/feedback", responses=ERRORS, response_model=FeedbackOut)
    def feedback(service_id: str, body: FeedbackRequest, request: Request) -> dict[str, Any]:
        """Store accepted and overridden outcomes, linked to the card in the audit log."""
        agent, hook = resolve(rt, service_id)
        p = principal_of(request)
        for item in body.feedback:
            # structured fields only: free text (userComment, a reason's display) is never stored,
            # and a reason code Regent did not offer is stored as 'unlisted', not as sent
            reason = item.overrideReason.reason if item.overrideReason else None
            code = None
            if reason is not None and reason.code is not None:
                code = reason.code if (reason.system, reason.code) in OVERRIDE_CODES else "unlisted"
            rt.record(
                kind="feedback",
                call=hook,
                agent=agent.name,
                version=agent.version,
                card_uuid=str(item.card),
                outcome=item.outcome,
                override_reason=code,
                comment_given=bool(item.overrideReason and item.overrideReason.userComment),
                accepted_suggestions=[str(s.id) for s in item.acceptedSuggestions or []],
                auth=p.method,
                issuer=p.issuer,
                tenant=p.tenant,
                jti=p.jti,
                status=200,
            )
        return {}

    return router
