"""CDS Hooks data handling: fetching missing data from the client's FHIR server, order-sign,
malformed FHIR, size limits and timeouts — against real servers on loopback."""

from __future__ import annotations

import asyncio
import copy
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.serve.helpers import PATIENT, gbsg2_observations, hook_request, running
from toolkit.agents.bundle import write_sums
from toolkit.serve.app import create_app
from toolkit.serve.settings import Settings

FHIR_TOKEN = "fhir-access-token-xyz"


def fake_fhir() -> FastAPI:
    """A FHIR server that pages the Observation search and checks the bearer token."""
    app = FastAPI()
    obs = gbsg2_observations()

    def bundle(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
        b: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r} for r in resources],
        }
        if next_url:
            b["link"] = [{"relation": "next", "url": next_url}]
        return b

    @app.middleware("http")
    async def token(request: Request, call_next):  # type: ignore[no-untyped-def]
        if request.headers.get("authorization") != f"Bearer {FHIR_TOKEN}":
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=401)
        return await call_next(request)

    @app.get("/fhir/Patient/{pid}")
    def patient(pid: str) -> dict[str, Any]:
        return {**PATIENT, "id": pid}

    @app.get("/fhir/Observation")
    def observations(request: Request, page: int = 1) -> dict[str, Any]:
        if page == 1:  # the search Regent builds from the prefetch template
            assert request.query_params["patient"] == "p1"
            assert "http://loinc.org|21889-1" in request.query_params["code"]
            base = str(request.base_url).rstrip("/")
            return bundle(obs[:3], f"{base}/fhir/Observation?patient=p1&page=2")
        return bundle(obs[3:])

    @app.get("/fhir/MedicationStatement")
    def meds() -> dict[str, Any]:
        return bundle([])

    @app.get("/slow/{path:path}")
    async def slow(path: str) -> dict[str, Any]:
        await asyncio.sleep(8)
        return {}

    return app


@pytest.fixture(scope="module")
def fhir() -> Iterator[str]:
    with running(fake_fhir()) as url:
        yield url


@pytest.fixture(scope="module")
def two_hooks_bundle(gbsg2_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gbsg2 bundle re-packaged declaring order-sign too (hashes rewritten, as packaging does)."""
    dst = tmp_path_factory.mktemp("dist2") / gbsg2_bundle.name
    shutil.copytree(gbsg2_bundle, dst)
    contract = yaml.safe_load((dst / "agent.yaml").read_text())
    contract["hooks"] = ["patient-view", "order-sign"]
    (dst / "agent.yaml").write_text(yaml.safe_dump(contract, sort_keys=False))
    write_sums(dst)
    return dst


@pytest.fixture(scope="module")
def regent(two_hooks_bundle: Path, fhir: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(
        agents_dir=two_hooks_bundle.parent,
        auth="off",
        fhir_servers=[f"{fhir}/fhir", f"{fhir}/slow"],
        audit_path=tmp_path_factory.mktemp("a") / "audit.sqlite",
        max_body_bytes=200_000,
        request_timeout_s=3.0,  # generous: normal calls on a loaded CI machine stay far below
    )
    with running(create_app(settings)) as url:
        yield url


def _no_prefetch(fhir_server: str, token: str = FHIR_TOKEN) -> dict[str, Any]:
    req = hook_request()
    del req["prefetch"]
    req["fhirServer"] = fhir_server
    req["fhirAuthorization"] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "regent",
    }
    return req


def test_missing_prefetch_is_fetched_from_the_fhir_server(regent: str, fhir: str) -> None:
    url = f"{regent}/cds-services/gbsg2-recurrence"
    with_prefetch = httpx.post(url, json=hook_request()).json()["cards"][0]
    fetched = httpx.post(url, json=_no_prefetch(f"{fhir}/fhir"))
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["cards"][0]["summary"] == with_prefetch["summary"]  # both pages were read


def test_fhir_server_not_allowed_or_failing_answers_412(regent: str, fhir: str) -> None:
    url = f"{regent}/cds-services/gbsg2-recurrence"
    other = httpx.post(url, json=_no_prefetch("http://127.0.0.1:9/fhir"))  # not in fhir_servers
    assert other.status_code == 412 and "tumor_size" in other.json()["missing"]
    bad_token = httpx.post(url, json=_no_prefetch(f"{fhir}/fhir", token="wrong"))
    assert bad_token.status_code == 422 and "HTTP 401" in bad_token.json()["error"]


def test_missing_data_without_fhir_server_answers_412_naming_inputs(regent: str) -> None:
    req = hook_request(gbsg2_observations()[:2])
    reply = httpx.post(f"{regent}/cds-services/gbsg2-recurrence", json=req)
    assert reply.status_code == 412
    assert set(reply.json()["missing"]) == {"tumor_grade", "positive_nodes"}


def test_discovery_lists_each_declared_hook(regent: str) -> None:
    services = {s["id"]: s for s in httpx.get(f"{regent}/cds-services").json()["services"]}
    assert services["gbsg2-recurrence"]["hook"] == "patient-view"
    assert services["gbsg2-recurrence--order-sign"]["hook"] == "order-sign"
    assert services["gbsg2-recurrence--order-sign"]["prefetch"] == services["gbsg2-recurrence"]["prefetch"]


def test_order_sign_needs_draft_orders(regent: str) -> None:
    url = f"{regent}/cds-services/gbsg2-recurrence--order-sign"
    req = hook_request(hook="order-sign")
    missing = httpx.post(url, json=req)
    assert missing.status_code == 422 and missing.json()["fields"] == ["context.draftOrders"]
    req["context"]["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": []}
    reply = httpx.post(url, json=req)
    assert reply.status_code == 200 and reply.json()["cards"][0]["summary"]
    wrong = httpx.post(f"{regent}/cds-services/gbsg2-recurrence", json=req)
    assert wrong.status_code == 422 and wrong.json()["fields"] == ["hook"]


def _mutate(path: list[Any], value: Any = None, delete: bool = False):  # type: ignore[no-untyped-def]
    def apply(req: dict[str, Any]) -> None:
        target = req
        for p in path[:-1]:
            target = target[p]
        if delete:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return apply


ENTRY = ["prefetch", "observation", "entry"]
MALFORMED = {
    "wrong resource type": (
        _mutate(["prefetch", "patient"], {"resourceType": "Observation", "status": "final"}),
        422,
        r"prefetch\.patient\.code: required element missing",
    ),
    "missing value": (
        _mutate([*ENTRY, 1, "resource", "valueQuantity"], delete=True),
        422,
        r"tumor_size: prefetch\.observation\.entry\[1\]\.resource has no numeric valueQuantity",
    ),
    "unknown unit": (
        _mutate([*ENTRY, 1, "resource", "valueQuantity"], {"value": 3, "unit": "furlong", "code": "furlong"}),
        422,
        r"tumor_size: prefetch\.observation\.entry\[1\]\.resource\.valueQuantity has a unit that cannot",
    ),
    "text for a number": (
        _mutate([*ENTRY, 3, "resource", "valueQuantity", "value"], "three"),
        422,
        r"prefetch\.observation\.entry\[3\]\.resource\.valueQuantity\.value: not a valid FHIR decimal",
    ),
    "no resourceType": (_mutate(["prefetch", "patient"], {"gender": "female"}), 422, "resourceType"),
    "entry not an object": (_mutate([*ENTRY, 0], "x"), 422, r"entry\[0\]"),
    "prefetch not an object": (_mutate(["prefetch"], [1, 2]), 422, "prefetch"),
    "no context": (_mutate(["context"], delete=True), 422, "'context' is required"),
    "value out of range": (
        _mutate([*ENTRY, 1, "resource", "valueQuantity", "value"], 5000),
        422,
        "tumor_size",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_fhir_is_a_4xx_naming_the_problem(regent: str, case: str) -> None:
    import re

    mutate, status, pattern = MALFORMED[case]
    req = copy.deepcopy(hook_request())
    mutate(req)
    reply = httpx.post(f"{regent}/cds-services/gbsg2-recurrence", json=req)
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert re.search(pattern, body["error"] + " ".join(body.get("missing", []))), body
    assert not {"5000", "furlong", "three"} & set(re.findall(r"\w+", reply.text))  # no value echoed


def test_oversized_body_is_413(regent: str) -> None:
    req = hook_request()
    req["extension"] = {"padding": "x" * 300_000}
    assert httpx.post(f"{regent}/cds-services/gbsg2-recurrence", json=req).status_code == 413


def test_a_request_past_the_timeout_is_504(regent: str, fhir: str) -> None:
    reply = httpx.post(
        f"{regent}/cds-services/gbsg2-recurrence", json=_no_prefetch(f"{fhir}/slow"), timeout=20
    )
    assert reply.status_code == 504


def test_metrics_count_requests_latency_and_errors_per_agent(regent: str) -> None:
    httpx.post(f"{regent}/cds-services/gbsg2-recurrence", json=hook_request())
    httpx.post(f"{regent}/cds-services/gbsg2-recurrence", json={"hook": "patient-view"})
    text = httpx.get(f"{regent}/metrics").text
    assert (
        'regent_requests_total{agent="gbsg2-recurrence",endpoint="/cds-services/{service_id}",status="200"}'
        in text
    )
    assert (
        'regent_request_duration_seconds_bucket{agent="gbsg2-recurrence",endpoint="/cds-services/{service_id}",le="0.05"}'
        in text
    )
    assert (
        'regent_errors_total{agent="gbsg2-recurrence",endpoint="/cds-services/{service_id}",kind="client"}'
        in text
    )
    httpx.post(f"{regent}/cds-services/not-an-agent-{'x' * 10}", json=hook_request())
    assert (
        "not-an-agent" not in httpx.get(f"{regent}/metrics").text
    )  # caller-chosen names never become labels
