"""Property tests of the cohort engine on random small registries and random specifications."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cohort.builders import make_registry
from toolkit.cohort.run import run_cohort
from toolkit.cohort.spec import cohort_from_dict
from toolkit.registry import Registry

CODES = [
    "ICD10:I50.9",
    "ICD10:I50.1",
    "ICD10:E11.9",
    "ICD10:Z99.2",
    "LOINC:33762-6",
    "DEATH",
    "SNOMED:32413006",
]
BASE_DAY = pd.Timestamp("2015-01-01")


@st.composite
def registries(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    n = draw(st.integers(1, 12))
    persons, events = [], []
    for pid in range(1, n + 1):
        start = draw(st.integers(-2000, 0))
        length = draw(st.integers(0, 3000))
        persons.append(
            {
                "person_id": pid,
                "birth_date": str((BASE_DAY - pd.Timedelta(days=draw(st.integers(5000, 32000)))).date()),
                "sex": draw(st.sampled_from(["F", "M"])),
                "site_id": draw(st.sampled_from(["A", "B"])),
                "obs": (
                    str(BASE_DAY + pd.Timedelta(days=start)),
                    str(BASE_DAY + pd.Timedelta(days=start + length)),
                ),
            }
        )
        for _ in range(draw(st.integers(0, 8))):
            day = draw(st.integers(-2500, 3500))
            code = draw(st.sampled_from(CODES))
            value = draw(st.floats(10, 5000)) if code.startswith("LOINC") else None
            text = draw(st.sampled_from(["ICD10:I21.9", "ICD10:C34.9"])) if code == "DEATH" else None
            events.append((pid, str(BASE_DAY + pd.Timedelta(days=day)), code, value, text))
    return persons, events


EXCLUSIONS = [
    {"name": "dialysis", "occurs": {"codes": ["ICD10:Z99.2"], "window": ["-365d", "0d"]}},
    {"name": "diabetes", "occurs": {"codes": ["ICD10:E11*"], "window": ["all", "0d"]}},
    {
        "name": "high bnp",
        "latest": {"codes": ["LOINC:33762-6"], "window": ["all", "0d"], "range": {"min": 2000}},
    },
    {"name": "men at site B", "all": [{"sex": ["M"]}, {"site": ["B"]}]},
]


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "name": "p",
        "entry": {
            "codes": ["ICD10:I50*"],
            "occurrence": draw(st.sampled_from(["first", "all"])),
            "prior_observation": f"{draw(st.sampled_from([0, 30, 365]))}d",
            "age": {"min": draw(st.sampled_from([0, 18, 60]))},
        },
        "exclusion": draw(st.lists(st.sampled_from(EXCLUSIONS), max_size=3, unique_by=lambda c: c["name"])),
        "outcome": {
            "codes": ["DEATH"],
            "text": {"prefix": ["ICD10:I"]},
            "competing": [{"name": "other death", "codes": ["DEATH"], "text": {"not_prefix": ["ICD10:I"]}}],
            "censor": {"events": {"codes": ["SNOMED:32413006"]}},
            "time_at_risk": {"end": draw(st.sampled_from(["end_of_observation", "730d"]))},
            "washout": draw(st.booleans()),
            "horizons": ["365d"],
        },
    }


def _run(persons: list[dict[str, Any]], events: list[tuple[Any, ...]], spec: dict[str, Any]):  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as tmp:
        path = make_registry(Path(tmp) / "r.duckdb", persons, events)
        with Registry(path) as reg:
            return run_cohort(cohort_from_dict(spec), reg)


PROPERTY_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(registries(), specs())
def test_attrition_accounts_for_everyone_and_times_are_sane(reg: Any, spec: dict[str, Any]) -> None:
    persons, events = reg
    res = _run(persons, events, spec)
    table = res.attrition.table
    assert table["n"].iloc[0] == len(persons)
    # every step's removals add up: registry count = final n + all removed
    assert table["n"].iloc[0] == table["n"].iloc[-1] + table["removed"].iloc[1:].sum()
    assert (table["n"].diff().dropna() <= 0).all()
    assert len(res.provenance) == len(persons)
    assert set(res.provenance.loc[res.provenance["status"] == "included", "person_id"]) == set(
        res.cohort["person_id"]
    )
    c = res.cohort
    if c.empty:
        return
    assert (c["time"] >= 0).all()
    assert set(c["event"].astype(int)) <= {0, 1, 2}
    obs = {p["person_id"]: (pd.Timestamp(p["obs"][0]), pd.Timestamp(p["obs"][1])) for p in persons}
    for pid, t in zip(c["person_id"], c["index_time"], strict=True):
        assert obs[pid][0] <= t <= obs[pid][1]
    # the label never counts a censored-before-horizon person as a negative
    censored_early = (c["event"] == 0) & (c["time"] < 365)
    assert c.loc[censored_early, "label_365d"].isna().all()
    assert (c.loc[(c["event"] == 1) & (c["time"] <= 365), "label_365d"] == 1).all()


@PROPERTY_SETTINGS
@given(registries(), specs(), st.sampled_from(EXCLUSIONS))
def test_adding_an_exclusion_never_increases_n(reg: Any, spec: dict[str, Any], extra: dict[str, Any]) -> None:
    persons, events = reg
    before = _run(persons, events, spec)
    if extra["name"] in {e["name"] for e in spec["exclusion"]}:
        return
    after = _run(persons, events, {**spec, "exclusion": [*spec["exclusion"], extra]})
    assert after.n <= before.n
    assert set(after.cohort["person_id"]) <= set(before.cohort["person_id"])


@PROPERTY_SETTINGS
@given(registries(), specs())
def test_event_is_the_first_of_outcome_and_competing(reg: Any, spec: dict[str, Any]) -> None:
    """A person is never both outcome and competing event: the event is whichever came first."""
    persons, events = reg
    res = _run(persons, events, spec)
    deaths = pd.DataFrame([e for e in events if e[2] == "DEATH"], columns=["pid", "t", "code", "v", "cause"])
    for row in res.cohort.itertuples():
        if row.event == 0:
            continue
        mine = deaths[(deaths["pid"] == row.person_id) & (pd.to_datetime(deaths["t"]) >= row.index_time)]
        first = mine.assign(t=pd.to_datetime(mine["t"])).sort_values("t").iloc[0]
        expected = 1 if str(first["cause"]).startswith("ICD10:I") else 2
        # ties at the same time: the outcome wins
        same_time = mine[pd.to_datetime(mine["t"]) == first["t"]]
        if (same_time["cause"].str.startswith("ICD10:I")).any():
            expected = 1
        assert row.event == expected
