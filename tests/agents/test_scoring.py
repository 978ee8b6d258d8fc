"""The pandas-free row scorer reproduces the model's frame path exactly (it is the serving path)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.agents.scoring import compile_row_scorer, verified_row_scorer
from toolkit.analysis.predict.models import make_model


@pytest.fixture(scope="module")
def cox():  # type: ignore[no-untyped-def]
    """A Cox risk model with a log-scale input, a three-level category and a boolean."""
    rng = np.random.default_rng(7)
    n = 400
    x = pd.DataFrame(
        {
            "age": rng.normal(65, 10, n),
            "bnp": rng.lognormal(7, 1, n),
            "grade": rng.choice(["I", "II", "III"], n),
            "diabetes": rng.integers(0, 2, n).astype(float),
        }
    )
    lp = 0.03 * (x.age - 65) + 0.4 * np.log(x.bnp / 1000) + 0.5 * (x.grade == "III") + 0.3 * x.diabetes
    time = rng.exponential(1000 * np.exp(-lp))
    event = (time < 1500).astype(int)
    model = make_model("cox", horizon=365, params={"log": ["bnp"]})
    return model.fit(x, np.minimum(time, 1500), event)


rows = st.fixed_dictionaries(
    {
        "age": st.floats(18, 110),
        "bnp": st.floats(5, 70000),
        "grade": st.sampled_from(["I", "II", "III", "IV"]),  # IV: a level unseen in training
        "diabetes": st.sampled_from([0.0, 1.0]),
    }
)


@settings(max_examples=200, deadline=None)
@given(row=rows)
def test_row_scorer_matches_the_frame_path(cox, row) -> None:  # type: ignore[no-untyped-def]
    scorer = verified_row_scorer(cox)
    assert scorer is not None
    frame = pd.DataFrame([row])
    risk, contrib = scorer.score(row)
    assert risk == pytest.approx(float(cox.predict_risk(frame)[0]), rel=1e-12, abs=1e-15)
    expected = cox.contributions(frame).iloc[0]
    assert list(contrib) == list(expected.index)
    for k in expected.index:
        assert contrib[k] == pytest.approx(float(expected[k]), rel=1e-10, abs=1e-12)


def test_other_models_keep_the_frame_path(cox) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    x = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    t, e = rng.exponential(100, 200), rng.integers(0, 2, 200)
    xgb = make_model("xgboost_survival", horizon=50, params={"num_boost_round": 5}).fit(x, t, e)
    assert compile_row_scorer(xgb) is None and verified_row_scorer(xgb) is None


def test_a_scorer_that_disagrees_is_not_used(cox) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    scorer = compile_row_scorer(cox)
    assert scorer is not None
    broken = dataclasses.replace(scorer, coef=scorer.coef * 1.001)
    assert not broken.agrees_with(cox, {"age": 70.0, "bnp": 900.0, "grade": "II", "diabetes": 1.0})


def test_contract_codes_accept_regent_and_meds_spellings() -> None:
    from toolkit.agents.fhir_codes import CodeRef

    regent, meds, fhir = (
        CodeRef.parse(c) for c in ("LOINC:33762-6", "LOINC//33762-6", "http://loinc.org|33762-6")
    )
    assert regent == meds == fhir
    assert CodeRef.parse("ICD10//E11*") == CodeRef("http://hl7.org/fhir/sid/icd-10", "E11", prefix=True)
