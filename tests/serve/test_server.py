"""The real server on loopback, called over HTTP."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import httpx
import pytest

from tests.serve.helpers import days_ago


def obs(code: str, value: Any, unit: str | None = None, coded: bool = False) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "effectiveDateTime": days_ago(27),
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": "Patient/p1"},
    }
    if coded:
        res["valueCodeableConcept"] = {"coding": [{"code": value}]}
    else:
        res["valueQuantity"] = {"value": value, "unit": unit, "code": unit}
    return res


def request(observations: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/1", "patientId": "p1"},
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1970-05-05"},
            "observation": {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": o} for o in observations],
            },
            # the MedicationStatement search was run and found nothing: hormone therapy "no"
            "medicationstatement": {"resourceType": "Bundle", "type": "searchset", "entry": []},
        },
    }


FULL = [
    obs("63889-4", "Post", coded=True),
    obs("21889-1", 25, "mm"),
    obs("21858-7", "II", coded=True),
    obs("21893-3", 3),
    obs("40557-1", 40, "fmol/mg"),
    obs("40556-3", 60, "fmol/mg"),
]


def test_discovery(server: str) -> None:
    services = httpx.get(f"{server}/cds-services").json()["services"]
    (svc,) = [s for s in services if s["id"] == "gbsg2-recurrence"]
    assert svc["hook"] == "patient-view" and svc["title"] and svc["description"]
    assert svc["prefetch"]["patient"] == "Patient/{{context.patientId}}"
    assert "http://loinc.org|21889-1" in svc["prefetch"]["observation"]


def test_patient_view_returns_a_spec_valid_card(server: str) -> None:
    reply = httpx.post(f"{server}/cds-services/gbsg2-recurrence", json=request(FULL))
    assert reply.status_code == 200, reply.text
    (card,) = reply.json()["cards"]
    assert len(card["summary"]) < 140 and "5-year risk of recurrence or death" in card["summary"]
    assert card["indicator"] in {"info", "warning", "critical"}
    assert card["source"]["label"] and card["source"]["url"].endswith("/agents/gbsg2-recurrence/model-card")
    uuid.UUID(card["uuid"])
    assert (
        "Top contributing factors" in card["detail"] and f"({FULL[0]['effectiveDateTime']})" in card["detail"]
    )
    assert "Hormonal therapy" in card["detail"] or "hormone" in card["detail"].lower()


def test_missing_data_answers_412_naming_inputs(server: str) -> None:
    reply = httpx.post(f"{server}/cds-services/gbsg2-recurrence", json=request(FULL[:2]))
    assert reply.status_code == 412
    assert set(reply.json()["missing"]) == {"tumor_grade", "positive_nodes"}


@pytest.mark.parametrize(
    ("mutate", "status", "text"),
    [
        (
            lambda r: r["prefetch"]["observation"]["entry"][1]["resource"]["valueQuantity"].update(
                {"unit": "furlong", "code": "furlong"}
            ),
            422,
            "tumor_size: .*valueQuantity has a unit that cannot be converted to 'mm'",
        ),
        (
            lambda r: r["prefetch"]["observation"]["entry"][1]["resource"].pop("valueQuantity"),
            422,
            r"tumor_size: prefetch\.observation\.entry\[1\]\.resource has no numeric valueQuantity",
        ),
        (lambda r: r["prefetch"].update({"patient": {"gender": "female"}}), 422, "resourceType"),
        (lambda r: r.pop("hookInstance"), 422, "'hookInstance' is required"),
    ],
)
def test_malformed_fhir_is_a_4xx_naming_the_problem(server: str, mutate, status: int, text: str) -> None:  # type: ignore[no-untyped-def]
    import re

    req = copy.deepcopy(request(FULL))
    mutate(req)
    reply = httpx.post(f"{server}/cds-services/gbsg2-recurrence", json=req)
    assert reply.status_code == status
    assert re.search(text, reply.json()["error"])


def test_unit_conversion_cm_to_mm(server: str) -> None:
    cm = [o if o["code"]["coding"][0]["code"] != "21889-1" else obs("21889-1", 2.5, "cm") for o in FULL]
    a = httpx.post(f"{server}/cds-services/gbsg2-recurrence", json=request(FULL)).json()["cards"][0][
        "summary"
    ]
    b = httpx.post(f"{server}/cds-services/gbsg2-recurrence", json=request(cm)).json()["cards"][0]["summary"]
    assert a == b


def test_rest_predict_explain_and_health(server: str) -> None:
    patient = {
        "age_years": 55,
        "hormone_therapy": "yes",
        "menopausal_status": "Post",
        "tumor_size": 25,
        "tumor_grade": "II",
        "positive_nodes": 3,
        "progesterone_receptor": 40,
        "estrogen_receptor": 60,
    }
    p = httpx.post(f"{server}/agents/gbsg2-recurrence/predict", json={"inputs": patient}).json()
    assert 0 < p["risk"] < 1 and len(p["contributions"]) == 3
    e = httpx.post(f"{server}/agents/gbsg2-recurrence/explain", json={"inputs": patient}).json()
    assert len(e["contributions"]) == 8 and e["risk"] == p["risk"]
    bad = httpx.post(
        f"{server}/agents/gbsg2-recurrence/predict", json={"inputs": {**patient, "tumor_size": "big"}}
    )
    assert bad.status_code == 422 and bad.json()["fields"] == ["tumor_size"]
    assert httpx.post(f"{server}/agents/nope/predict", json={}).status_code == 404
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server}/readyz").json()["ready"] is True
    (a,) = httpx.get(f"{server}/agents").json()
    assert a["name"] == "gbsg2-recurrence" and len(a["bundle_sha256"]) == 64


def test_feedback_is_stored(server: str) -> None:
    card = httpx.post(f"{server}/cds-services/gbsg2-recurrence", json=request(FULL)).json()["cards"][0]
    fb = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {"reason": {"code": "not-relevant"}},
                "outcomeTimestamp": "2026-11-28",
            }
        ]
    }
    assert httpx.post(f"{server}/cds-services/gbsg2-recurrence/feedback", json=fb).status_code == 200
    bad = httpx.post(f"{server}/cds-services/gbsg2-recurrence/feedback", json={"feedback": [{"card": "x"}]})
    assert bad.status_code == 422


def test_prediction_dict_equals_to_dict(gbsg2_bundle) -> None:  # type: ignore[no-untyped-def]
    from tests.serve.helpers import GBSG2_INPUTS
    from toolkit.agents.load import Agent
    from toolkit.serve.service import prediction_dict

    agent = Agent.load(gbsg2_bundle)
    for p in (agent.predict(GBSG2_INPUTS), agent.explain({**GBSG2_INPUTS, "estrogen_receptor": None})):
        assert prediction_dict(p) == p.to_dict()
