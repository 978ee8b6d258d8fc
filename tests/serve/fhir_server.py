"""A loopback FHIR R4 server that searches as real ones do (HAPI-like), for the FHIR tests.

No maintained Python FHIR server installs from PyPI with search semantics we could run offline
(fhirsnake serves files without search parameters; the npm node-fhir-server-core is a framework
that leaves search to its user), so this follows the FHIR R4 search spec for what Regent uses:

- ``GET [base]/Patient/{id}``: read (404 with an OperationOutcome when unknown);
- ``GET [base]/{type}?patient=...``: search, AND across parameters, OR across commas;
- ``code``: token search, **exact** (``system|code``, ``code``, ``system|``); ``code:below``:
  subsumption, here a code-prefix match within the system (ICD-10 and ATC are prefix
  hierarchies);
- ``_lastUpdated`` with ``eq``/``ge``/``gt``/``le``/``lt`` prefixes on ``meta.lastUpdated``;
- ``_count`` and paging by ``next`` links (HAPI's ``_getpagesoffset``), absolute URLs;
- an unknown search parameter is a 400 (strict handling), so a query Regent builds wrong fails;
- a Bearer token is required.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

TOKEN = "fhir-access-token-xyz"

#: the element each resource type's ``code`` search parameter reads (FHIR R4 SearchParameter)
CODE_ELEMENT = {
    "Observation": "code",
    "Condition": "code",
    "MedicationStatement": "medicationCodeableConcept",
    "MedicationRequest": "medicationCodeableConcept",
}
ALLOWED = {"patient", "code", "code:below", "_count", "_lastUpdated", "_getpagesoffset"}


def _outcome(status: int, text: str) -> JSONResponse:
    issue = {"severity": "error", "code": "invalid", "diagnostics": text}
    return JSONResponse({"resourceType": "OperationOutcome", "issue": [issue]}, status_code=status)


def _codings(res: dict[str, Any]) -> list[dict[str, Any]]:
    concept = res.get(CODE_ELEMENT.get(res["resourceType"], "code")) or {}
    return list(concept.get("coding") or [])


def _token_match(res: dict[str, Any], tokens: Iterable[str], *, below: bool) -> bool:
    for token in tokens:
        system, sep, code = token.rpartition("|") if "|" in token else ("", "", token)
        for c in _codings(res):
            if sep and system and c.get("system") != system:
                continue
            value = str(c.get("code", ""))
            if code == "" or (value.startswith(code) if below else value == code):
                return True
    return False


def _date_match(value: str, spec: str) -> bool:
    prefix, date = (spec[:2], spec[2:]) if spec[:2] in ("eq", "ge", "gt", "le", "lt") else ("eq", spec)
    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    bound = dt.datetime.fromisoformat(date.replace("Z", "+00:00"))
    if bound.tzinfo is None:
        bound = bound.replace(tzinfo=dt.UTC)
    return {
        "eq": when == bound,
        "ge": when >= bound,
        "gt": when > bound,
        "le": when <= bound,
        "lt": when < bound,
    }[prefix]


def fhir_app(resources: list[dict[str, Any]], *, page_size: int = 3, token: str = TOKEN) -> FastAPI:
    """A FHIR server holding ``resources`` (each gets ``meta.lastUpdated`` if it has none)."""
    store = [copy.deepcopy(r) for r in resources]
    for i, r in enumerate(store):
        r.setdefault("meta", {}).setdefault(
            "lastUpdated", (dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=i)).isoformat()
        )
    app = FastAPI()
    app.state.requests = []  # (path, query) of every request, for the tests

    @app.middleware("http")
    async def bearer(request: Request, call_next):  # type: ignore[no-untyped-def]
        app.state.requests.append((request.url.path, str(request.url.query)))
        if request.headers.get("authorization") != f"Bearer {token}":
            return _outcome(401, "not authorised")
        return await call_next(request)

    @app.get("/fhir/Patient/{pid}")
    def read_patient(pid: str) -> Any:
        for r in store:
            if r["resourceType"] == "Patient" and r.get("id") == pid:
                return r
        return _outcome(404, "unknown Patient")

    @app.get("/fhir/{rtype}")
    def search(rtype: str, request: Request) -> Any:
        params = request.query_params
        unknown = sorted(set(params) - ALLOWED)
        if unknown:
            return _outcome(400, f"unknown search parameter(s) {unknown}")
        hits = [r for r in store if r["resourceType"] == rtype]
        if "patient" in params:
            hits = [
                r for r in hits if (r.get("subject") or {}).get("reference") == f"Patient/{params['patient']}"
            ]
        if "code" in params:
            hits = [r for r in hits if _token_match(r, params["code"].split(","), below=False)]
        if "code:below" in params:
            hits = [r for r in hits if _token_match(r, params["code:below"].split(","), below=True)]
        for spec in params.getlist("_lastUpdated"):
            hits = [r for r in hits if _date_match(r["meta"]["lastUpdated"], spec)]
        count = int(params.get("_count", page_size))
        offset = int(params.get("_getpagesoffset", 0))
        page = hits[offset : offset + count]
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(hits),
            "link": [{"relation": "self", "url": str(request.url)}],
            "entry": [
                {
                    "fullUrl": f"{request.base_url}fhir/{rtype}/{r.get('id')}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for r in page
            ],
        }
        if offset + count < len(hits):
            nxt = request.url.include_query_params(_getpagesoffset=offset + count, _count=count)
            bundle["link"].append({"relation": "next", "url": str(nxt)})
        return bundle

    return app


def run_search(base: str, query: str, *, token: str = TOKEN) -> dict[str, Any] | None:
    """Run one prefetch query as an EHR does for CDS Hooks prefetch: every page, one Bundle."""
    import httpx

    url: str | None = f"{base.rstrip('/')}/{query}"
    entries: list[Any] = []
    headers = {"Authorization": f"Bearer {token}"}
    while url is not None:
        reply = httpx.get(url, headers=headers, timeout=10)
        if reply.status_code == 404:
            return None
        reply.raise_for_status()
        data = reply.json()
        if data["resourceType"] != "Bundle":
            return dict(data)
        entries += data.get("entry") or []
        url = next((lk["url"] for lk in data.get("link", []) if lk["relation"] == "next"), None)
    return {"resourceType": "Bundle", "type": "searchset", "entry": entries}


def prefetch_for(base: str, templates: dict[str, str], patient_id: str) -> dict[str, Any]:
    """The prefetch an EHR sends: each discovery template filled in and run on its server."""
    return {
        key: run_search(base, t.replace("{{context.patientId}}", patient_id)) for key, t in templates.items()
    }
