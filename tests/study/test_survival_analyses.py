"""The study runner's survival and competing-risks analyses: spec parsing, reference checks and
the results.json entries they produce (with disclosure control), without running a registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import TypeAdapter, ValidationError

from toolkit.disclosure import COUNT_KEYS, DisclosurePolicy
from toolkit.errors import StudySpecError
from toolkit.study.kinds import KINDS, Analysis, run_analysis
from toolkit.study.kinds.cif import CIFAnalysis
from toolkit.study.kinds.cox import CoxAnalysis
from toolkit.study.kinds.fine_gray import FineGrayAnalysis
from toolkit.study.kinds.logrank import LogRankAnalysis
from toolkit.study.kinds.rmst import RMSTAnalysis
from toolkit.study.spec import load_study, validate_references

REPO = Path(__file__).resolve().parents[2]
MGUS2 = REPO / "tests" / "data" / "survival" / "mgus2.csv"
PARSE = TypeAdapter(Analysis)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    # event: 0 censored, 1 progression, 2 death first (the shape of a cohort with competing events)
    return pd.read_csv(MGUS2)


def test_every_new_analysis_type_parses_and_has_a_runner() -> None:
    specs: list[dict[str, Any]] = [
        {"type": "logrank", "name": "lr", "by": "sex", "strata": "agegrp"},
        {"type": "rmst", "name": "rm", "tau": "120d", "by": "sex"},
        {"type": "cumulative_incidence", "name": "ci", "by": "sex", "times": [60, 120]},
        {"type": "fine_gray", "name": "fg", "covariates": ["age", "sex"], "cause": 2},
        {"type": "cox", "name": "cs", "covariates": ["age"], "cause": 2},
    ]
    parsed = [PARSE.validate_python(s) for s in specs]
    assert [type(p) for p in parsed] == [
        LogRankAnalysis,
        RMSTAnalysis,
        CIFAnalysis,
        FineGrayAnalysis,
        CoxAnalysis,
    ]
    assert all(type(p) is KINDS[p.type].spec for p in parsed)
    assert parsed[1].tau_days == 120.0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "rmst", "name": "r", "tau": 0}, "tau must be a positive time"),
        ({"type": "rmst", "name": "r"}, "tau"),
        ({"type": "fine_gray", "name": "f", "covariates": ["age"], "cause": 0}, "greater than or equal to 1"),
        ({"type": "cox", "name": "c", "covariates": ["age"], "cause": 0}, "greater than or equal to 1"),
        ({"type": "cumulative_incidence", "name": "c", "tims": [1]}, "Extra inputs are not permitted"),
    ],
)
def test_bad_specs_are_rejected(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PARSE.validate_python(spec)


def test_unknown_columns_are_named_with_their_key() -> None:
    spec, _ = load_study(REPO / "studies" / "gbsg2_recurrence")
    analyses = [
        PARSE.validate_python({"type": "logrank", "name": "lr", "by": "sexx"}),
        PARSE.validate_python({"type": "cumulative_incidence", "name": "ci", "strata": "nope"}),
        PARSE.validate_python({"type": "fine_gray", "name": "fg", "covariates": ["age", "agee"]}),
        PARSE.validate_python({"type": "rmst", "name": "rm", "tau": 365, "by": "grp"}),
    ]
    with pytest.raises(StudySpecError) as err:
        validate_references(
            spec.model_copy(update={"analyses": analyses, "models": []}),
            source="study.yaml",
            cohort_columns=["time", "event", "age", "sex"],
        )
    text = str(err.value)
    for needle in (
        "analyses[0].by: unknown column 'sexx'",
        "analyses[1].strata: unknown column 'nope'",
        "analyses[2].covariates[1]: unknown column 'agee'",
        "analyses[3].by: unknown column 'grp'",
    ):
        assert needle in text


def _released(entry: dict[str, Any], policy: DisclosurePolicy) -> dict[str, Any]:
    out: dict[str, Any] = policy.scrub(entry, COUNT_KEYS)
    json.dumps(out, allow_nan=False)
    return out


def test_runner_entries_and_plots(frame: pd.DataFrame) -> None:
    policy = DisclosurePolicy(min_cell=10)
    ci, plots = run_analysis(
        PARSE.validate_python(
            {"type": "cumulative_incidence", "name": "ci", "by": "sex", "times": [60, 330]}
        ),
        frame,
        policy,
    )
    assert ci["type"] == "cumulative_incidence" and ci["causes"] == [1, 2]
    assert [t["cause"] for t in ci["gray"]] == [1, 2]
    assert set(plots) == {"cif_ci"} and plots["cif_ci"].startswith(b"\x89PNG")
    released = _released(ci, policy)
    at_330 = [a for g in released["groups"] for c in g["causes"] for a in c["at"] if a["time"] == 330]
    # 1-9 are still at risk at 330 months in each group: the curve has stopped there, so the
    # estimate is withheld with its count, and the row says why (issue 15)
    assert at_330 and all(a["n_risk"] is None and a["cif"] is None for a in at_330)
    assert all(a["suppressed"] == "fewer than 10 at risk" for a in at_330)

    fg, plots = run_analysis(
        PARSE.validate_python({"type": "fine_gray", "name": "fg", "covariates": ["age", "sex"], "cause": 1}),
        frame,
        policy,
    )
    assert fg["type"] == "fine_gray" and fg["cause"] == 1 and plots == {}
    assert [c["term"] for c in fg["coefficients"]] == ["age", "sex=M"]
    assert _released(fg, DisclosurePolicy(min_cell=1000))["competing"]["events"] is None

    cs, plots = run_analysis(
        PARSE.validate_python({"type": "cox", "name": "cs", "covariates": ["age", "sex"], "cause": 2}),
        frame,
        policy,
    )
    assert cs["cause"] == 2 and cs["events"] == int((frame["event"] == 2).sum())
    assert cs["ph_test"]["global"]["df"] == 2 and "forest_cs" in plots

    lr, _ = run_analysis(PARSE.validate_python({"type": "logrank", "name": "lr", "by": "sex"}), frame, policy)
    assert lr["type"] == "logrank" and lr["df"] == 1
    assert sum(g["observed"] for g in lr["groups"]) == int((frame["event"] == 1).sum())  # event 1 only

    rm, _ = run_analysis(
        PARSE.validate_python({"type": "rmst", "name": "rm", "tau": "120d", "by": "sex"}), frame, policy
    )
    assert rm["type"] == "rmst" and rm["tau"] == 120.0
    assert [c["group"] for c in rm["contrasts"]] == ["M"] and rm["contrasts"][0]["reference"] == "F"


def test_report_renders_each_entry(frame: pd.DataFrame) -> None:
    from toolkit.study.dictionary import DataDictionary
    from toolkit.study.report import _env
    from toolkit.study.report_context import kind_context

    policy = DisclosurePolicy(min_cell=10)
    specs = [
        ({"type": "logrank", "name": "lr", "by": "sex"}, "Log-rank test"),
        ({"type": "rmst", "name": "rm", "tau": 120, "by": "sex"}, "M vs F"),
        (
            {"type": "cumulative_incidence", "name": "ci", "by": "sex", "times": [60]},
            "Gray's test, cause 2: χ² = 11.65",
        ),
        (
            {"type": "fine_gray", "name": "fg", "covariates": ["age"]},
            "Fine–Gray subdistribution hazards, cause 1",
        ),
        ({"type": "cox", "name": "cx", "covariates": ["age", "sex"]}, "Proportional-hazards test"),
        (
            {"type": "aft", "name": "wb", "covariates": ["age", "sex"]},
            "Accelerated failure time model (weibull)",
        ),
        ({"type": "logrank", "name": "pp", "by": "sex", "rho": 1}, "weighted observed"),
    ]
    for spec, needle in specs:
        template = _env().get_template("kinds/" + (KINDS[spec["type"]].template or ""))  # each kind's partial
        entry, plots = run_analysis(PARSE.validate_python(spec), frame, policy)
        images = {k: "data:image/png;base64,AAAA" for k in plots}
        html = template.render(
            a=_released(entry, policy),
            a_spec=PARSE.validate_python(spec),
            name=spec["name"],
            p=f"analyses.{spec['name']}",
            images=images,
            min_cell=10,
            **kind_context(DataDictionary()),
        )
        assert needle in html, spec["type"]
