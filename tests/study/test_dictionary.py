"""The data dictionary (labels, units, level order), the missing-data policy and how both reach
the analyses: a wrong name is refused at load, terms read as readers expect, complete-case
analyses state who was left out, and multiple imputation pools by Rubin's rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import TypeAdapter

from toolkit.disclosure import DisclosurePolicy
from toolkit.errors import StudySpecError
from toolkit.study.dictionary import DataDictionary, Variable, dictionary_of
from toolkit.study.kinds import Analysis, RunContext, run_analysis
from toolkit.study.missing import MissingSpec

REPO = Path(__file__).resolve().parents[2]
PARSE: TypeAdapter = TypeAdapter(Analysis)  # type: ignore[type-arg]


def test_terms_labels_units_and_level_order() -> None:
    d = DataDictionary(
        {
            "sex": Variable(label="Sex", levels={"F": "Female", "M": "Male"}),
            "nt_probnp": Variable(label="NT-proBNP", unit="pg/mL"),
            "age_band": Variable(label="Age band", unit="years"),
        },
        frozenset({"diabetes"}),
    )
    assert d.term("sex=M") == "Sex: Male"
    assert d.term("nt_probnp") == "NT-proBNP (pg/mL)"
    assert d.term("log(nt_probnp)") == "log NT-proBNP (pg/mL)"
    assert d.term("diabetes") == "diabetes (yes vs no)"
    assert d.term("age") == "Age (years)"  # the registry's own columns have defaults
    assert d.order("sex", ["M", "F"]) == ["F", "M"]
    assert d.order("age_band", ["85+", "<65", "75-84", "65-74"]) == ["<65", "65-74", "75-84", "85+"]
    assert d.time_label == "Time since cohort entry"


def test_yaml_codes_and_yes_no_are_read_as_text() -> None:
    v = Variable.model_validate(yaml.safe_load("levels: {1: yes, 0: no}"))
    assert v.levels == {"1": "yes", "0": "no"}


def test_the_flagship_dictionary_reaches_every_place() -> None:
    from toolkit.study.plan import plan_study

    plan = plan_study(REPO / "studies" / "hf_mortality")
    d = plan.context.dictionary
    assert d.with_unit("nt_probnp") == "NT-proBNP (pg/mL)" and d.level("sex", "F") == "Female"
    assert d.term("diabetes") == "Diabetes (yes vs no)"  # a 'present' feature is yes/no
    assert plan.context.horizon == 365.0
    assert dictionary_of(plan.spec).fingerprint() == d.fingerprint()


def test_an_unknown_dictionary_name_is_refused_naming_the_key(tmp_path: Path, data_dir: Path) -> None:
    from toolkit.study.runner import run_study

    spec = yaml.safe_load((REPO / "studies/gbsg2_recurrence/study.yaml").read_text())
    spec["dictionary"]["tumour_grade"] = {"label": "Grade"}
    study = tmp_path / "s"
    study.mkdir()
    (study / "study.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(StudySpecError, match=r"dictionary\.tumour_grade: unknown variable 'tumour_grade'"):
        run_study(study, out=tmp_path / "out")
    spec["dictionary"]["age_years"] = {"lable": "Age"}
    (study / "study.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(StudySpecError, match=r"dictionary\.age_years\.lable"):
        run_study(study, out=tmp_path / "out")


def _frame(rng: np.random.Generator, n: int = 800) -> pd.DataFrame:
    x = rng.normal(size=n)
    sex = rng.choice(["F", "M"], n)
    t = rng.exponential(1 / (0.2 * np.exp(0.5 * x + 0.3 * (sex == "M"))))
    c = rng.uniform(0, 8, n)
    lab = np.where(rng.random(n) < 0.25, np.nan, x + rng.normal(scale=0.5, size=n))
    return pd.DataFrame(
        {"time": np.minimum(t, c), "event": (t <= c).astype(int), "x": x, "sex": sex, "lab": lab}
    )


def test_complete_case_entries_state_who_was_left_out(rng: np.random.Generator) -> None:
    frame = _frame(rng)
    spec = PARSE.validate_python({"type": "cox", "name": "c", "covariates": ["x", "sex", "lab"]})
    entry, plots = run_analysis(spec, frame, DisclosurePolicy(), RunContext())
    md = entry["missing_data"]
    lacking = int(frame["lab"].isna().sum())
    assert md == {"method": "complete_case", "n": 800, "variables": [{"variable": "lab", "missing": lacking}],
                  "removed": lacking}  # fmt: skip
    assert entry["n"] == 800 - lacking
    assert "forest_c" in plots and plots["forest_c"].svg  # type: ignore[attr-defined]


def test_multiple_imputation_pools_every_coefficient(rng: np.random.Generator) -> None:
    frame = _frame(rng)
    spec = PARSE.validate_python({"type": "cox", "name": "c", "covariates": ["x", "sex", "lab"]})
    mi = RunContext(missing=MissingSpec(method="multiple_imputation", imputations=5, iterations=3), seed=4)
    entry, _ = run_analysis(spec, frame, DisclosurePolicy(), mi)
    md = entry["missing_data"]
    assert md["method"] == "multiple_imputation" and md["removed"] == 0 and entry["n"] == 800
    assert md["imputations"] == 5 and "MICEData" in md["library"]
    assert [p["term"] for p in md["pooled"]] == [c["term"] for c in entry["coefficients"]]
    lab = next(c for c in entry["coefficients"] if c["term"] == "lab")
    assert lab["hr"] == pytest.approx(np.exp(lab["coef"]))
    assert lab["hr_lower"] < lab["hr"] < lab["hr_upper"]
    assert "lr_test" not in entry and "ph_test" not in entry  # not poolable by Rubin's rules
    again, _ = run_analysis(spec, frame, DisclosurePolicy(), mi)
    assert again == entry  # seeded
    for kind, extra in (("logistic", {"outcome": "event"}), ("aft", {}), ("fine_gray", {})):
        e, _ = run_analysis(PARSE.validate_python({"type": kind, "name": kind, "covariates": ["x", "lab"], **extra}),
                            frame, DisclosurePolicy(), mi)  # fmt: skip
        assert e["missing_data"]["method"] == "multiple_imputation", kind


def test_table1_shows_a_yes_no_variable_in_one_row_with_its_test(rng: np.random.Generator) -> None:
    """diabetes (0/1) takes one row, its "yes" counts, labelled by the dictionary; the chi-squared
    p of the variable stays with it; a three-level variable keeps its rows; missing rows stay."""
    from toolkit.analysis.describe import table1
    from toolkit.study.report_context import table1_view

    n = 400
    frame = pd.DataFrame(
        {
            "sex": rng.choice(["F", "M"], n),
            "diabetes": rng.choice([0, 1], n).astype(float),
            "nyha": rng.choice(["I", "II", "III"], n),
        }
    )
    frame.loc[:30, "diabetes"] = np.nan
    entry = table1(frame, ["diabetes", "nyha"], by="sex", tests=True).to_dict()
    d = DataDictionary({"diabetes": Variable(label="Diabetes")}, frozenset())
    view = table1_view(entry, d)
    labels = [r["label"] for r in view["rows"]]
    diabetes = [r for r in view["rows"] if r.get("variable") == "diabetes" and r.get("level") is not None]
    assert len(diabetes) == 1 and diabetes[0]["level"] in ("1", "1.0", 1, 1.0)
    assert diabetes[0]["label"] == "Diabetes, n (%)"
    assert diabetes[0]["p"] is not None and diabetes[0]["test"] == "chi-squared"
    yes = int(((frame["diabetes"] == 1) & (frame["sex"] == "F")).sum())
    assert diabetes[0]["cells"]["sex=F"].startswith(f"{yes} (")
    assert sum(r.get("variable") == "nyha" and r.get("level") is not None for r in view["rows"]) == 3
    assert any(label.startswith("Diabetes") and "missing" in label for label in labels)
