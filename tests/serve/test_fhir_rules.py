"""The FHIR rules (codes, dates, windows, whose data) on the flagship hf-mortality contract, whose
codes are wildcards (E11*, N18*, C07AB*), against a loopback FHIR server with exact-code search."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.serve.fhir_server import TOKEN, fhir_app, prefetch_for, run_search
from tests.serve.helpers import running
from toolkit.agents.contract import AgentContract, load_contract
from toolkit.agents.fhir import inputs_from_fhir, prefetch_templates
from toolkit.agents.fhir_model import PatientMismatchError
from toolkit.errors import InputValidationError
from toolkit.serve.fhir_fetch import fetch_prefetch

REPO = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
LOINC, ICD10, ATC = "http://loinc.org", "http://hl7.org/fhir/sid/icd-10", "http://www.whocc.no/atc"


def ago(days: int) -> str:
    return (NOW - dt.timedelta(days=days)).date().isoformat()


def lab(pid: str, code: str, value: Any, unit: str, when: str | None, rid: str) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "subject": {"reference": f"Patient/{pid}"},
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    }
    if when is not None:
        res["effectiveDateTime"] = when
    return res


def condition(pid: str, code: str, rid: str, status: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": rid,
        "subject": {"reference": f"Patient/{pid}"},
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]
        },
        "code": {"coding": [{"system": ICD10, "code": code}]},
        "onsetDateTime": "2019-05",
    }


def hf_record() -> list[dict[str, Any]]:
    """Patient p7 (and another patient's data that must never be used for p7)."""
    p = "p7"
    return [
        {"resourceType": "Patient", "id": p, "gender": "male", "birthDate": "1948-03-02"},
        lab(p, "33762-6", 4200, "pg/mL", ago(5), "bnp1"),
        lab(p, "33762-6", 9000, "pg/mL", ago(60), "bnp0"),  # outside the 30-day window
        lab(p, "10230-1", 35, "%", ago(100), "ef1"),
        lab(p, "2160-0", 1.4, "mg/dL", ago(3), "cr1"),
        lab(p, "2951-2", 134, "mmol/L", ago(3), "na1"),
        lab(p, "8480-6", 110, "mm[Hg]", ago(2), "sbp1"),
        lab(p, "718-7", 118, "g/L", ago(3), "hb1"),  # g/L -> 11.8 g/dL
        lab(p, "2345-7", 99, "mg/dL", ago(3), "glu1"),  # a lab no input uses
        condition(p, "E11.9", "dm"),
        condition(p, "N18.3", "ckd"),
        condition(p, "I48.0", "af"),
        condition(p, "J45.9", "asthma"),  # not COPD
        condition(p, "J44.9", "copd-old", status="resolved"),
        {
            "resourceType": "MedicationStatement",
            "id": "bb",
            "status": "active",
            "subject": {"reference": f"Patient/{p}"},
            "medicationCodeableConcept": {"coding": [{"system": ATC, "code": "C07AB07"}]},
            "effectivePeriod": {"start": "2024-01-10"},  # ongoing: inside the 90-day window
        },
        {"resourceType": "Patient", "id": "p8", "gender": "female", "birthDate": "1960"},
        condition("p8", "J44.9", "copd-p8"),
        lab("p8", "33762-6", 100, "pg/mL", ago(1), "bnp-p8"),
    ]


def expected_age(born: dt.date, today: dt.date) -> float:
    return float(today.year - born.year - ((today.month, today.day) < (born.month, born.day)))


EXPECTED = {
    "age": expected_age(dt.date(1948, 3, 2), NOW.date()),
    "sex": "M",
    "nt_probnp": 4200.0,
    "lvef": 35.0,
    "creatinine": 1.4,
    "sodium": 134.0,
    "sbp": 110.0,
    "hemoglobin": pytest.approx(11.8),
    "diabetes": 1.0,
    "ckd": 1.0,
    "copd": 0.0,
    "af": 1.0,
    "beta_blocker": 1.0,
}


@pytest.fixture(scope="module")
def hf() -> AgentContract:
    return load_contract(REPO / "agents/hf-mortality")


@pytest.fixture(scope="module")
def fhir() -> Iterator[str]:
    with running(fhir_app(hf_record(), page_size=3)) as url:
        yield f"{url}/fhir"


def test_the_fhir_server_searches_codes_exactly_as_real_ones_do(fhir: str) -> None:
    """Why a wildcard may never become a code= search: E11 does not find E11.9."""
    exact = run_search(fhir, f"Condition?patient=p7&code={ICD10}|E11")
    below = run_search(fhir, f"Condition?patient=p7&code:below={ICD10}|E11")
    assert exact is not None and exact["entry"] == []
    assert below is not None and [e["resource"]["id"] for e in below["entry"]] == ["dm"]
    later = run_search(fhir, "Observation?patient=p7&_lastUpdated=ge2026-01-01T05:00:00Z")
    assert later is not None and 0 < len(later["entry"]) < 8  # _lastUpdated filters


@pytest.mark.parametrize("code_below", [False, True])
def test_wildcard_codes_become_searches_that_find_them(hf: AgentContract, code_below: bool) -> None:
    templates = prefetch_templates(hf, code_below=code_below)
    assert "E11" not in templates["condition"].split("code=")[-1] or code_below
    if code_below:
        assert f"code:below={ICD10}|E11," in templates["condition"]
    else:  # no code filter: every Condition of the patient, matched by Regent
        assert templates["condition"] == "Condition?patient={{context.patientId}}"
    assert "*" not in "".join(templates.values())
    assert f"code={LOINC}|10230-1," in templates["observation"]  # exact codes stay exact


@pytest.mark.parametrize("code_below", [False, True])
def test_discovery_prefetch_and_fetch_give_the_true_inputs(
    hf: AgentContract, fhir: str, code_below: bool
) -> None:
    templates = prefetch_templates(hf, code_below=code_below)
    prefetch = prefetch_for(fhir, templates, "p7")  # what the EHR sends from discovery
    by_prefetch = inputs_from_fhir(hf, prefetch, patient_id="p7", now=NOW)

    async def fetch() -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            return await fetch_prefetch(client, fhir, TOKEN, templates, {"patientId": "p7"}, max_pages=10)

    by_fetch = inputs_from_fhir(hf, anyio.run(fetch), patient_id="p7", now=NOW, where="fhirServer")
    assert by_prefetch.values == EXPECTED
    assert by_fetch.values == by_prefetch.values
    assert by_fetch.used == by_prefetch.used
    assert any("look-back" in n for n in by_prefetch.notes["nt_probnp"])  # the 60-day-old value


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def _map(hf: AgentContract, *resources: dict[str, Any], now: dt.datetime = NOW) -> Any:
    return inputs_from_fhir(hf, {"all": _bundle(*resources)}, patient_id="p7", now=now)


def test_a_partial_date_is_the_start_of_its_period_in_the_window(hf: AgentContract) -> None:
    may = lab("p7", "33762-6", 4200, "pg/mL", "2026-05", "b")
    # the window of 30 days before 2026-06-15 starts on 2026-05-16: 2026-05 (the 1st) is older
    late = _map(hf, may)
    assert "nt_probnp" not in late.values and "look-back" in late.notes["nt_probnp"][0]
    early = _map(hf, may, now=dt.datetime(2026, 5, 20, tzinfo=dt.UTC))
    assert early.values["nt_probnp"] == 4200.0
    assert early.used[[u.input for u in early.used].index("nt_probnp")].date == "2026-05"


def test_a_value_without_a_date_is_never_used(hf: AgentContract) -> None:
    m = _map(hf, lab("p7", "33762-6", 4200, "pg/mL", None, "b"))
    assert "nt_probnp" not in m.values and "no date" in m.notes["nt_probnp"][0]


def test_a_value_dated_in_the_future_is_not_used(hf: AgentContract) -> None:
    m = _map(
        hf,
        lab("p7", "33762-6", 4200, "pg/mL", ago(3), "old"),
        lab("p7", "33762-6", 99999, "pg/mL", (NOW + dt.timedelta(days=3)).date().isoformat(), "future"),
        lab("p7", "2160-0", 1.4, "mg/dL", (NOW + dt.timedelta(hours=2)).isoformat(), "cr-future"),
    )
    assert m.values["nt_probnp"] == 4200.0  # the latest value that is not in the future
    assert "dated in the future" in m.notes["nt_probnp"][0] and "creatinine" not in m.values


@pytest.mark.parametrize("when", ["2026-02-30", "yesterday", "2026-13"])
def test_an_impossible_date_is_a_4xx_naming_the_path(hf: AgentContract, when: str) -> None:
    with pytest.raises(
        InputValidationError, match=r"prefetch\.all\.entry\[0\]\.resource\.effectiveDateTime"
    ) as e:
        _map(hf, lab("p7", "33762-6", 4200, "pg/mL", when, "b"))
    assert when not in str(e.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "NaN"])
def test_a_value_that_is_not_a_number_is_a_4xx_naming_the_path(hf: AgentContract, value: Any) -> None:
    with pytest.raises(
        InputValidationError, match=r"entry\[0\]\.resource\.valueQuantity\.value: not a valid"
    ):
        _map(hf, lab("p7", "33762-6", value, "pg/mL", ago(1), "b"))


def test_resources_of_another_patient_are_refused_naming_them(hf: AgentContract) -> None:
    other = lab("p8", "33762-6", 100, "pg/mL", ago(1), "x")
    no_subject = {k: v for k, v in lab("p7", "2160-0", 1.4, "mg/dL", ago(1), "y").items() if k != "subject"}
    with pytest.raises(PatientMismatchError) as e:
        _map(hf, lab("p7", "33762-6", 4200, "pg/mL", ago(1), "ok"), other, no_subject)
    assert e.value.fields == ("prefetch.all.entry[1].resource", "prefetch.all.entry[2].resource")
    with pytest.raises(PatientMismatchError, match=r"prefetch\.patient"):
        inputs_from_fhir(hf, {"patient": {"resourceType": "Patient", "id": "p8"}}, patient_id="p7")


@pytest.mark.parametrize(("born", "precision"), [("1948", "year"), ("1948-03", "month")])
def test_a_partial_birth_date_gives_the_age_from_its_first_day(
    hf: AgentContract, born: str, precision: str
) -> None:
    m = _map(hf, {"resourceType": "Patient", "id": "p7", "birthDate": born, "gender": "male"})
    first = dt.date(1948, 1 if precision == "year" else 3, 1)
    assert m.values["age"] == expected_age(first, NOW.date())
    assert precision in m.notes["age"][0]


def test_medication_by_reference_and_refuted_conditions(hf: AgentContract) -> None:
    statement = {
        "resourceType": "MedicationStatement",
        "status": "active",
        "subject": {"reference": "Patient/p7"},
        "contained": [
            {
                "resourceType": "Medication",
                "id": "m",
                "code": {"coding": [{"system": ATC, "code": "C07AB02"}]},
            }
        ],
        "medicationReference": {"reference": "#m"},
        "effectiveDateTime": ago(10),
    }
    refuted = condition("p7", "E11.9", "dm")
    refuted["verificationStatus"] = {"coding": [{"code": "refuted"}]}
    m = _map(hf, statement, refuted)
    assert m.values["beta_blocker"] == 1.0 and m.values["diabetes"] == 0.0


def test_a_bound_is_not_a_measurement(hf: AgentContract) -> None:
    bound = lab("p7", "33762-6", 35000, "pg/mL", ago(1), "b")
    bound["valueQuantity"]["comparator"] = ">"
    with pytest.raises(InputValidationError, match="comparator"):
        _map(hf, bound)


def test_an_unsent_search_is_missing_not_absent(hf: AgentContract) -> None:
    """A Condition input is 'absent' only when the Condition search was sent (prefetch key)."""
    from toolkit.agents.fhir import map_inputs
    from toolkit.agents.fhir_model import parse_prefetch

    found = parse_prefetch({"patient": {"resourceType": "Patient", "id": "p7"}})
    m = map_inputs(hf, found, now=NOW, searched={"Patient", "Observation"})
    assert "diabetes" not in m.values and "no complete Condition search" in m.notes["diabetes"][0]
