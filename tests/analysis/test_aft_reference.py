"""Parametric AFT models (Weibull, log-normal, log-logistic) against R's ``survreg``.

The values in ``tests/data/survival/aft_reference.json`` were written by
``Rscript tests/_scripts/make_aft_reference.R`` (R survival 3.5.3) from the CSVs beside it; each
entry records the R call that produced it.  These tests need no R.

Tolerances: coefficients, SEs, z and scale relative 1e-10, log-likelihood 1e-12 (measured ~1e-13);
absolute risk at a horizon absolute 1e-9 (against ``psurvreg`` and each distribution's own CDF).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from toolkit.analysis.survival.aft import fit_aft
from toolkit.errors import AnalysisError

DATA = Path(__file__).resolve().parents[1] / "data" / "survival"
REL = 1e-10
RISK_ABS = 1e-9


@cache
def _reference() -> dict[str, Any]:
    with (DATA / "aft_reference.json").open() as fh:
        ref: dict[str, Any] = json.load(fh)
    return ref


@cache
def _frame(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / _reference()["datasets"][name])


def _cases() -> list[Any]:
    return [pytest.param(case, id=case["id"]) for case in _reference()["aft"]]


def test_reference_covers_every_distribution_and_records_calls() -> None:
    cases = _reference()["aft"]
    assert {c["dist"] for c in cases} == {"weibull", "lognormal", "loglogistic"}
    for case in cases:
        assert case["call"].startswith("fit <- survreg("), case["id"]
        assert case["risk_call"].strip(), case["id"]


@pytest.mark.parametrize("case", _cases())
def test_aft_matches_survreg(case: dict[str, Any]) -> None:
    # R: fit <- survreg(Surv(time, event) ~ <covariates>, data, dist = <dist>,
    #                   control = survreg.control(rel.tolerance = 1e-13)); summary(fit)$table;
    #    fit$loglik[2]; fit$scale   (exact call in case["call"])
    res = fit_aft(_frame(case["dataset"]), covariates=case["covariates"], dist=case["dist"])
    out = res.to_dict()
    assert list(out) == ["type", "dist", "n", "events", "loglik", "scale", "coefficients"]
    assert (out["type"], out["dist"], out["n"], out["events"]) == (
        "aft",
        case["dist"],
        case["n"],
        case["events"],
    )
    coefs = res.to_dict()["coefficients"]
    assert isinstance(coefs, list)
    assert [c["term"] for c in coefs] == case["terms"]
    assert all(list(c) == ["term", "coef", "se", "z", "p"] for c in coefs)
    np.testing.assert_allclose([c["coef"] for c in coefs], case["coef"], rtol=REL, atol=1e-12)
    np.testing.assert_allclose([c["se"] for c in coefs], case["se"], rtol=REL)
    np.testing.assert_allclose([c["z"] for c in coefs], case["z"], rtol=REL, atol=1e-10)
    np.testing.assert_allclose([c["p"] for c in coefs], case["p"], rtol=1e-6, atol=1e-300)
    assert res.loglik == pytest.approx(case["loglik"], rel=1e-12)
    assert res.scale == pytest.approx(case["scale"], rel=REL)


@pytest.mark.parametrize("case", _cases())
def test_aft_risk_at_horizon_matches_psurvreg(case: dict[str, Any]) -> None:
    # R: lp <- predict(fit, newdata = data[rows, ], type = "lp");
    #    psurvreg(h, mean = lp, scale = fit$scale, distribution = <dist>) and the distribution's
    #    own CDF (pweibull / plnorm / plogis)   (exact calls in case["risk_call"])
    frame = _frame(case["dataset"])
    res = fit_aft(frame, covariates=case["covariates"], dist=case["dist"])
    rows = frame.iloc[case["rows"]]
    np.testing.assert_allclose(res.linear_predictor(rows), case["lp"], rtol=1e-10)
    for k, h in enumerate(case["horizons"]):
        risk = res.predict_risk(rows, h)
        np.testing.assert_allclose(risk, case["risk"][k], rtol=0, atol=RISK_ABS)
        np.testing.assert_allclose(risk, case["risk_direct"][k], rtol=0, atol=RISK_ABS)
    matrix = res.predict_risk_at(rows, case["horizons"])
    np.testing.assert_allclose(matrix.T, case["risk"], rtol=0, atol=RISK_ABS)


# --------------------------------------------------------------------------------------
# behaviour that does not need R
# --------------------------------------------------------------------------------------


def test_risk_is_zero_at_time_zero_and_rises_with_the_horizon() -> None:
    lung = _frame("lung")
    res = fit_aft(lung, covariates=["age", "sex"], dist="loglogistic")
    m = res.predict_risk_at(lung, [0.0, 30.0, 365.0, 2000.0])
    assert (m[:, 0] == 0).all()
    assert (np.diff(m, axis=1) > 0).all()


def test_rows_with_missing_values_are_left_out_with_a_warning() -> None:
    lung = _frame("lung").copy()
    lung.loc[[3, 10], "age"] = np.nan
    res = fit_aft(lung, covariates=["age", "sex"])
    ref = fit_aft(lung.dropna(), covariates=["age", "sex"])
    assert res.n == len(lung) - 2
    assert res.to_dict() == ref.to_dict()
    assert any("2 rows with missing values" in w for w in res.warnings)


def test_new_rows_with_an_unseen_level_are_refused() -> None:
    vet = _frame("veteran")
    res = fit_aft(vet, covariates=["celltype", "karno"])
    new = vet.head(3).assign(celltype=["adeno", "other", "large"])
    with pytest.raises(AnalysisError, match="'celltype' has 1 rows with a level not seen"):
        res.predict_risk(new, 100.0)


def test_non_positive_times_are_refused_by_count() -> None:
    lung = _frame("lung").copy()
    lung.loc[:1, "time"] = 0.0
    with pytest.raises(AnalysisError, match="has 2 times <= 0"):
        fit_aft(lung, covariates=["age"])


def test_no_events_constant_and_unknown_distribution_are_errors() -> None:
    lung = _frame("lung")
    with pytest.raises(AnalysisError, match="no events"):
        fit_aft(lung.assign(event=0), covariates=["age"])
    with pytest.raises(AnalysisError, match="constant"):
        fit_aft(lung.assign(one=1.0), covariates=["age", "one"])
    with pytest.raises(AnalysisError, match="dist must be one of"):
        fit_aft(lung, covariates=["age"], dist="gompertz")  # type: ignore[arg-type]


def test_weibull_with_scale_one_is_the_exponential_mle(rng: np.random.Generator) -> None:
    # Known truth: with Weibull data of shape 1 (exponential) and no covariates, the MLE of the
    # intercept is log(total time / events) when the scale is fixed at 1; the free-scale fit is
    # close to it, and its risk at h is near 1 - exp(-h * rate).
    n = 4000
    t = rng.exponential(100.0, n)
    c = rng.exponential(200.0, n)
    frame = pd.DataFrame({"time": np.minimum(t, c), "event": (t <= c).astype(int)})
    res = fit_aft(frame, dist="weibull")
    assert res.scale == pytest.approx(1.0, abs=0.05)
    rate = frame["event"].sum() / frame["time"].sum()
    assert res.predict_risk(frame.head(1), 50.0)[0] == pytest.approx(1 - np.exp(-50 * rate), abs=0.02)
