"""Hand-checked cohorts on registries small enough to verify every row by eye."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cohort.builders import make_registry
from toolkit.cohort.run import run_cohort
from toolkit.cohort.spec import cohort_from_dict
from toolkit.errors import CohortSpecError
from toolkit.registry import Registry
from toolkit.registry.store import Attribute

P = dict  # readability

PERSONS = [
    P(person_id=1, birth_date="1950-03-01", sex="F", site_id="A", bmi=31.0, obs=("2010-01-01", "2020-12-31")),
    P(person_id=2, birth_date="1940-01-01", sex="M", site_id="B", bmi=22.0, obs=("2014-06-01", "2020-12-31")),
    P(person_id=3, birth_date="2005-01-01", sex="M", site_id="A", bmi=20.0, obs=("2010-01-01", "2020-12-31")),
    P(person_id=4, birth_date="1960-01-01", sex="F", site_id="B", bmi=None, obs=("2010-01-01", "2016-06-30")),
    P(person_id=5, birth_date="1955-01-01", sex="M", site_id="A", bmi=27.0, obs=("2010-01-01", "2020-12-31")),
    P(person_id=6, birth_date="1950-01-01", sex="F", site_id="A", bmi=25.0, obs=("2010-01-01", "2020-12-31")),
]
EVENTS = [
    # person 1: HF 2015-01-10 (then again 2016); NT-proBNP before; dies (CV) 2015-06-01
    (1, "2015-01-10", "ICD10:I50.9"),
    (1, "2016-01-01", "ICD10:I50.9"),
    (1, "2014-12-01", "LOINC:33762-6", 900.0, None, "pg/mL"),
    (1, "2015-01-09", "LOINC:33762-6", 2400.0, None, "pg/mL"),
    (1, "2015-06-01", "DEATH", None, "ICD10:I21.9"),
    # person 2: HF 2015-02-01 but only 245 days of prior observation
    (2, "2015-02-01", "ICD10:I50.1"),
    # person 3: HF at age 10
    (3, "2015-03-01", "ICD10:I50.9"),
    # person 4: HF 2015-04-01, heart transplant 2016-01-01, observation ends 2016-06-30
    (4, "2015-04-01", "ICD10:I50.9"),
    (4, "2016-01-01", "SNOMED:32413006"),
    (4, "2015-03-01", "LOINC:33762-6", 300.0, None, "pg/mL"),
    # person 5: HF 2015-05-01, dialysis 2014-12-01 (exclusion), non-CV death 2017
    (5, "2015-05-01", "ICD10:I50.9"),
    (5, "2014-12-01", "ICD10:Z99.2"),
    (5, "2017-01-01", "DEATH", None, "ICD10:C34.9"),
    # person 6: no heart failure at all
    (6, "2015-05-01", "ICD10:E11.9"),
]


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return make_registry(tmp_path / "r.duckdb", PERSONS, EVENTS, (Attribute("bmi", "float"),))


def run(registry: Path, spec: dict[str, Any]):  # type: ignore[no-untyped-def]
    with Registry(registry) as reg:
        return run_cohort(cohort_from_dict(spec), reg)


BASE: dict[str, Any] = {
    "name": "hf",
    "entry": {"codes": ["ICD10:I50*"], "age": {"min": 18}, "prior_observation": "365d"},
    "exclusion": [{"name": "dialysis", "occurs": {"codes": ["ICD10:Z99.2"], "window": ["-365d", "0d"]}}],
    "outcome": {
        "name": "cv death",
        "codes": ["DEATH"],
        "text": {"prefix": ["ICD10:I"]},
        "competing": [{"name": "other death", "codes": ["DEATH"], "text": {"not_prefix": ["ICD10:I"]}}],
        "censor": {"events": {"codes": ["SNOMED:32413006"]}},
        "horizons": ["365d", "730d"],
    },
    "subgroups": ["sex", "age_band", "bmi"],
}


def test_attrition_and_provenance_account_for_everyone(registry: Path) -> None:
    res = run(registry, BASE)
    steps = res.attrition.table.set_index("step")
    assert steps.loc["registry persons", "n"] == 6
    assert steps.loc["entry event", "n"] == 5 and steps.loc["entry event", "removed"] == 1
    assert steps.loc["age at index", "removed"] == 1  # person 3
    assert steps.loc["prior observation >= 365d", "removed"] == 1  # person 2
    assert steps.loc["dialysis", "removed"] == 1  # person 5
    assert res.cohort["person_id"].tolist() == [1, 4]
    prov = res.provenance.set_index("person_id")
    assert prov.loc[6, "step"] == "entry event"
    assert prov.loc[3, "step"] == "age at index"
    assert prov.loc[2, "step"] == "prior observation >= 365d"
    assert prov.loc[5, "step"] == "dialysis"
    assert prov.loc[1, "status"] == "included" and prov.loc[1, "entry_code"] == "ICD10:I50.9"
    assert len(prov) == 6


def test_time_to_event_with_censoring_and_labels(registry: Path) -> None:
    c = run(registry, BASE).cohort.set_index("person_id")
    # person 1: CV death 142 days after the first HF code (2015-01-10 -> 2015-06-01)
    assert c.loc[1, "event"] == 1 and c.loc[1, "time"] == pytest.approx(142.0)
    assert c.loc[1, "label_365d"] == 1 and c.loc[1, "label_730d"] == 1
    # person 4: censored at the transplant, 275 days after index; not evaluable at either horizon
    assert c.loc[4, "event"] == 0 and c.loc[4, "censor_reason"] == "censoring_event"
    assert c.loc[4, "time"] == pytest.approx(275.0)
    assert c.loc[4, "label_365d"] is None or str(c.loc[4, "label_365d"]) == "<NA>"
    assert c.loc[1, "age"] == 64 and c.loc[4, "age"] == 55
    assert c.loc[1, "age_band"] == "<65" and c.loc[4, "bmi"] != c.loc[4, "bmi"]  # NaN bmi carried


def test_competing_event(registry: Path) -> None:
    spec = {**BASE, "exclusion": []}
    c = run(registry, spec).cohort.set_index("person_id")
    # person 5: non-CV death 611 days after index: competing event 2; label 0 at 730d, 0 at 365d
    assert c.loc[5, "event"] == 2 and c.loc[5, "time"] == pytest.approx(611.0)
    assert c.loc[5, "label_365d"] == 0 and c.loc[5, "label_730d"] == 0


def test_occurs_count_latest_and_trend(registry: Path) -> None:
    def n_with(criterion: dict[str, Any]) -> list[int]:
        spec = {"name": "x", "entry": {"codes": ["ICD10:I50*"]}, "inclusion": [{"name": "c", **criterion}]}
        return run(registry, spec).cohort["person_id"].tolist()

    assert n_with({"occurs": {"codes": ["LOINC:33762-6"], "window": ["-60d", "0d"]}}) == [1, 4]
    assert n_with(
        {"occurs": {"codes": ["LOINC:33762-6"], "window": ["-60d", "0d"], "count": {"at_least": 2}}}
    ) == [1]
    assert n_with(
        {"occurs": {"codes": ["LOINC:33762-6"], "window": ["all", "0d"], "count": {"exactly": 0}}}
    ) == [2, 3, 5]
    assert n_with(
        {
            "latest": {
                "codes": ["LOINC:33762-6"],
                "window": ["-365d", "0d"],
                "range": {"min": 1000, "unit": "pg/mL"},
            }
        }
    ) == [1]
    assert n_with(
        {"trend": {"codes": ["LOINC:33762-6"], "window": ["-365d", "0d"], "change": {"min": 1000}}}
    ) == [1]
    assert n_with({"sex": ["M"]}) == [2, 3, 5]
    assert n_with({"site": ["B"]}) == [2, 4]
    assert n_with({"attribute": {"name": "bmi", "min": 26}}) == [1, 5]
    assert n_with({"attribute": {"name": "bmi", "in": [22, 20.0]}}) == [2, 3]  # numeric 'in' compares numbers
    # at_most without at_least includes persons with none
    assert n_with(
        {"occurs": {"codes": ["LOINC:33762-6"], "window": ["all", "0d"], "count": {"at_most": 1}}}
    ) == [2, 3, 4, 5]
    # a unit on the range narrows, and never replaces, the filter's own value conditions:
    # 'value' picks which measurements count (person 1's latest <= 2000 is 900), 'range' judges it
    assert n_with(
        {
            "latest": {
                "codes": ["LOINC:33762-6"],
                "window": ["-365d", "0d"],
                "value": {"max": 2000},
                "range": {"min": 500, "unit": "pg/mL"},
            }
        }
    ) == [1]
    assert n_with({"age": {"max": 18}}) == [3]
    assert n_with({"any": [{"sex": ["M"]}, {"site": ["B"]}]}) == [2, 3, 4, 5]
    assert n_with({"all": [{"sex": ["M"]}, {"site": ["A"]}]}) == [3, 5]
    assert n_with({"not": {"sex": ["M"]}}) == [1, 4]


def test_all_occurrences_with_gap(registry: Path) -> None:
    spec = {"name": "x", "entry": {"codes": ["ICD10:I50*"], "occurrence": "all", "min_gap": "300d"}}
    c = run(registry, spec).cohort
    assert c[c["person_id"] == 1].shape[0] == 2  # 2015-01-10 and 2016-01-01 are 356 days apart
    spec["entry"]["min_gap"] = "400d"
    c = run(registry, spec).cohort
    assert c[c["person_id"] == 1].shape[0] == 1


def test_washout_excludes_prior_outcome(registry: Path) -> None:
    spec = {"name": "x", "entry": {"codes": ["LOINC:33762-6"]}, "outcome": {"codes": ["ICD10:I50*"]}}
    res = run(registry, spec)
    # person 1's first NT-proBNP (2014-12-01) precedes HF; person 4's (2015-03-01) too: both kept
    assert res.cohort["person_id"].tolist() == [1, 4]
    spec = {"name": "x", "entry": {"codes": ["DEATH"]}, "outcome": {"codes": ["ICD10:I50*"]}}
    res = run(registry, spec)
    assert res.cohort.empty  # everyone who died had heart failure before


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"entry": {"codes": ["ICD10:I5*0"]}}, r"entry.codes: .*'\*' is allowed only at the end"),
        ({"entry": {"codes": [" ICD10:I50"]}}, r"entry.codes: .*without surrounding spaces"),
        (
            {"inclusion": [{"name": "w", "occurs": {"codes": ["LOINC:1-1"], "window": ["30d", "-30d"]}}]},
            r"inclusion\[0\].occurs.window: .*must end after it starts; got start=30d, end=-30d",
        ),
        (
            {"outcome": {"codes": ["DEATH"], "time_at_risk": {"end": "365d"}, "horizons": ["730d"]}},
            r"outcome.horizons\[0\]: horizon 730d lies outside the time at risk",
        ),
        (
            {"outcome": {"codes": ["DEATH"], "competing": [{"name": "c", "codes": ["DEATH"]}]}},
            r"outcome.competing\[0\]: codes overlap",
        ),
        (
            {"exclusion": [{"name": "t", "occurs": {"concept": "transplant", "window": ["all", "0d"]}}]},
            r"exclusion\[0\].occurs.concept: unknown concept set 'transplant'",
        ),
        (
            {"inclusion": [{"occurs": {"codes": ["DEATH"], "window": ["all", "0d"]}}]},
            r"inclusion\[0\].name: a top-level",
        ),
        ({"entry": {"codes": ["DEATH"], "occurence": "first"}}, r"entry.occurence: unknown key"),
    ],
)
def test_spec_errors_name_the_key(patch: dict[str, Any], message: str) -> None:
    spec = {"name": "x", "entry": {"codes": ["ICD10:I50*"]}, **patch}
    with pytest.raises(CohortSpecError, match=message):
        cohort_from_dict(spec, source="cohort.yaml")


def test_compiling_twice_gives_the_same_sql() -> None:
    from toolkit.cohort.compile import compile_cohort

    spec = cohort_from_dict(BASE)
    assert compile_cohort(spec, attributes={"bmi": "float"}).sql_for("duckdb") == compile_cohort(
        spec, attributes={"bmi": "float"}
    ).sql_for("duckdb")
