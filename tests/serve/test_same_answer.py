"""One patient, four routes: CDS Hooks with prefetch, CDS Hooks fetching from the EHR's FHIR
server, REST and MCP give the same inputs and the same risk, on a contract with a wildcard code,
against a real Regent server and a loopback FHIR server that searches codes exactly."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serve.fhir_server import TOKEN, fhir_app, prefetch_for
from tests.serve.helpers import GBSG2_INPUTS, running
from toolkit.agents.load import Agent
from toolkit.serve.app import create_app
from toolkit.serve.audit import read_records
from toolkit.serve.settings import Settings

LOINC = "http://loinc.org"
SERVICE = "/cds-services/gbsg2-recurrence"


def _born_55_years_ago() -> str:
    d = dt.date.today() - dt.timedelta(days=30)
    return (d.replace(day=28) if (d.month, d.day) == (2, 29) else d).replace(year=d.year - 55).isoformat()


def _obs(pid: str, code: str, value: Any, unit: str | None = None) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"{pid}-{code}",
        "status": "final",
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": (dt.date.today() - dt.timedelta(days=20)).isoformat(),
        "code": {"coding": [{"system": LOINC, "code": code}]},
    }
    if isinstance(value, str):
        res["valueCodeableConcept"] = {"coding": [{"code": value}]}
    else:
        res["valueQuantity"] = {"value": value, "unit": unit, "code": unit}
    return res


def gbsg2_record() -> list[dict[str, Any]]:
    """The FHIR record of GBSG2_INPUTS' patient (p1), and another patient's data."""
    return [
        {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": _born_55_years_ago()},
        _obs("p1", "63889-4", "Post"),
        _obs("p1", "21889-1", 2.5, "cm"),  # 25 mm
        _obs("p1", "21858-7", "II"),
        _obs("p1", "21893-3", 3),
        _obs("p1", "40557-1", 40, "fmol/mg"),
        _obs("p1", "40556-3", 60, "fmol/mg"),
        {
            "resourceType": "MedicationStatement",
            "id": "tam",
            "status": "active",
            "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": {
                "coding": [{"system": "http://www.whocc.no/atc", "code": "L02BA01"}]
            },
            "effectivePeriod": {"start": "2025-02-01"},
        },
        {"resourceType": "Patient", "id": "p2", "gender": "female", "birthDate": "1950-01-01"},
        _obs("p2", "21893-3", 20),
    ]


@dataclass(frozen=True)
class Servers:
    regent: str
    fhir: str
    audit: Path


@pytest.fixture(scope="module")
def servers(variant_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    audit = tmp_path_factory.mktemp("same") / "audit.sqlite"
    with running(fhir_app(gbsg2_record(), page_size=2)) as fhir:
        settings = Settings(
            agents_dir=variant_bundle.parent, auth="off", audit_path=audit, fhir_servers=[f"{fhir}/fhir"]
        )
        with running(create_app(settings)) as regent:
            yield Servers(regent, f"{fhir}/fhir", audit)


def _hook(prefetch: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    req: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/1", "patientId": "p1"},
        **extra,
    }
    if prefetch is not None:
        req["prefetch"] = prefetch
    return req


def _mcp(url: str, inputs: dict[str, Any]) -> dict[str, Any]:
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "gbsg2-recurrence.predict", "arguments": inputs},
    }
    reply = httpx.post(f"{url}/mcp", json=call, headers=headers, timeout=30)
    assert reply.status_code == 200, reply.text
    return dict(reply.json()["result"]["structuredContent"])


def test_every_route_gives_the_same_inputs_and_risk(servers: Servers, variant_bundle: Path) -> None:
    url = servers.regent
    services = httpx.get(f"{url}/cds-services").json()["services"]
    templates = next(s["prefetch"] for s in services if s["id"] == "gbsg2-recurrence")
    assert templates["medicationstatement"] == "MedicationStatement?patient={{context.patientId}}"

    by_prefetch = httpx.post(url + SERVICE, json=_hook(prefetch_for(servers.fhir, templates, "p1")))
    auth = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300, "scope": "x", "subject": "r"}
    by_fetch = httpx.post(url + SERVICE, json=_hook(fhirServer=servers.fhir, fhirAuthorization=auth))
    by_rest = httpx.post(f"{url}/agents/gbsg2-recurrence/predict", json={"inputs": GBSG2_INPUTS})
    by_mcp = _mcp(url, GBSG2_INPUTS)
    assert by_prefetch.status_code == by_fetch.status_code == by_rest.status_code == 200, by_fetch.text

    records = [r for r in read_records(servers.audit, last=4)]
    assert [r["kind"] for r in records] == ["cds-hooks", "cds-hooks", "rest", "mcp"]
    assert len({r["inputs_sha256"] for r in records}) == 1  # the same validated inputs
    truth = Agent.load(variant_bundle).predict(GBSG2_INPUTS).risk
    assert [r["risk"] for r in records] == [pytest.approx(truth, abs=1e-12)] * 4
    assert by_rest.json()["risk"] == by_mcp["risk"] == pytest.approx(truth, abs=1e-12)
    card = by_prefetch.json()["cards"][0]
    assert card["summary"] == by_fetch.json()["cards"][0]["summary"]
    assert "Hormonal therapy: MedicationStatement http://www.whocc.no/atc|L02BA01" in card["detail"]


def test_an_invalid_value_is_imputed_when_the_contract_says_so_and_the_card_says_which(
    servers: Servers,
) -> None:
    from tests.serve.fhir_server import run_search

    prefetch = {
        "patient": run_search(servers.fhir, "Patient/p1"),
        "observation": run_search(servers.fhir, "Observation?patient=p1"),
        "medicationstatement": run_search(servers.fhir, "MedicationStatement?patient=p1"),
    }
    er = next(e["resource"] for e in prefetch["observation"]["entry"] if e["resource"]["id"] == "p1-40556-3")
    er["valueQuantity"]["value"] = 10**400  # a decimal no float holds: not a finite number
    reply = httpx.post(servers.regent + SERVICE, json=_hook(prefetch))
    assert reply.status_code == 200, reply.text
    detail = reply.json()["cards"][0]["detail"]
    assert "Estrogen receptor was not a finite number; imputed 36 fmol/mg" in detail
    assert "Estrogen receptor: not available, imputed" in detail
    assert "Observation http://loinc.org|40556-3" not in detail  # the card does not contradict itself
    pr = next(e["resource"] for e in prefetch["observation"]["entry"] if e["resource"]["id"] == "p1-40557-1")
    pr["valueQuantity"]["value"] = 10**400  # this input's contract refuses invalid values
    refused = httpx.post(servers.regent + SERVICE, json=_hook(prefetch))
    assert refused.status_code == 422 and refused.json()["fields"] == ["progesterone_receptor"]
    assert "finite" in refused.json()["error"] and "1000000" not in refused.text


def test_prefetch_of_another_patient_is_a_412_naming_it(servers: Servers) -> None:
    from tests.serve.fhir_server import run_search

    prefetch = {
        "patient": run_search(servers.fhir, "Patient/p1"),
        "observation": run_search(servers.fhir, "Observation?patient=p2"),
        "medicationstatement": run_search(servers.fhir, "MedicationStatement?patient=p1"),
    }
    reply = httpx.post(servers.regent + SERVICE, json=_hook(prefetch))
    assert reply.status_code == 412, reply.text
    assert reply.json()["fields"] == ["prefetch.observation.entry[0].resource"]
    (last,) = read_records(servers.audit, last=1)
    assert last["kind"] == "refused" and last["status"] == 412 and last["agent"] == "gbsg2-recurrence"


def test_a_partial_prefetch_search_is_fetched_or_refused(servers: Servers) -> None:
    from tests.serve.fhir_server import run_search

    first_page = httpx.get(
        f"{servers.fhir}/Observation?patient=p1", headers={"Authorization": f"Bearer {TOKEN}"}
    ).json()
    assert any(lk["relation"] == "next" for lk in first_page["link"])
    prefetch = {
        "patient": run_search(servers.fhir, "Patient/p1"),
        "observation": first_page,  # an EHR that sent only the first page
        "medicationstatement": run_search(servers.fhir, "MedicationStatement?patient=p1"),
    }
    refused = httpx.post(servers.regent + SERVICE, json=_hook(prefetch))
    assert refused.status_code == 412 and "partial" in refused.json()["error"]
    auth = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300, "scope": "x", "subject": "r"}
    fetched = httpx.post(
        servers.regent + SERVICE, json=_hook(prefetch, fhirServer=servers.fhir, fhirAuthorization=auth)
    )
    assert fetched.status_code == 200, fetched.text
