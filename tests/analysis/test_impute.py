"""Multiple imputation: Rubin's rules against R's mice::pool.scalar, and a known-truth simulation
(missingness depending on the outcome and the covariate) in which imputation with the outcome in
the imputation model recovers the estimate the full data give, with a CI that covers it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from toolkit.analysis.impute import impute, nelson_aalen, rubin_pool
from toolkit.analysis.survival.cox import fit_cox

REF = json.loads((Path(__file__).parents[1] / "data" / "impute" / "pool_scalar.json").read_text())


@pytest.mark.parametrize("case", REF["cases"], ids=lambda c: c["name"])
def test_rubin_pool_matches_mice_pool_scalar(case: dict) -> None:  # type: ignore[type-arg]
    dfc = float(case["df_complete"])
    p = rubin_pool(case["Q"], case["U"], df_complete=dfc)
    assert p.estimate == pytest.approx(case["qbar"], rel=1e-12)
    assert p.within == pytest.approx(case["ubar"], rel=1e-12)
    assert p.between == pytest.approx(case["b"], rel=1e-9, abs=1e-15)
    assert p.total == pytest.approx(case["t"], rel=1e-12)
    assert p.df == pytest.approx(case["df"], rel=1e-9)
    assert p.riv == pytest.approx(case["r"], rel=1e-9, abs=1e-15)
    assert p.fmi == pytest.approx(case["fmi"], rel=1e-9)


def test_nelson_aalen_by_hand() -> None:
    # times 1, 2, 2, 3 with events 1, 1, 0, 1: H(1) = 1/4, H(2) = 1/4 + 1/3, H(3) = ... + 1/1
    h = nelson_aalen(np.array([2.0, 1.0, 3.0, 2.0]), np.array([1, 1, 1, 0]))
    assert h == pytest.approx([0.25 + 1 / 3, 0.25, 0.25 + 1 / 3 + 1.0, 0.25 + 1 / 3])


def test_imputation_recovers_the_true_hazard_ratio_where_complete_cases_do_not(
    rng: np.random.Generator,
) -> None:
    """x has a true log hazard ratio of 0.7 (z: 0.5); x is missing at random given the outcome and
    z (far more often in survivors with a high z)."""
    n = 3000
    z = rng.normal(size=n)
    x = 0.6 * z + rng.normal(scale=0.8, size=n)
    t = rng.exponential(1 / (0.1 * np.exp(0.7 * x + 0.5 * z)))
    c = rng.uniform(0, 15, n)
    time, event = np.minimum(t, c), (t <= c).astype(int)
    miss = rng.random(n) < np.where(event == 1, 0.1, 0.5) * np.where(z > 0, 1.5, 0.5)  # MAR: outcome, z
    frame = pd.DataFrame({"time": time, "event": event, "x": np.where(miss, np.nan, x), "z": z})
    truth = fit_cox(frame.assign(x=x), covariates=["x", "z"]).terms[0].coef  # no data missing
    cc = fit_cox(frame, covariates=["x", "z"]).terms[0]
    outcome = {"event": event.astype(float), "cumhaz": nelson_aalen(time, event)}
    done = impute(frame, ["x", "z"], outcome=outcome, m=10, iterations=5, seed=3)
    fits = [fit_cox(d, covariates=["x", "z"]) for d in done]
    pooled = rubin_pool(
        [f.terms[0].coef for f in fits], [f.terms[0].se ** 2 for f in fits], df_complete=n - 2
    )
    assert abs(pooled.estimate - truth) < 0.06
    assert abs(pooled.estimate - truth) < abs(cc.coef - truth)  # complete cases are further off
    lo, hi = pooled.interval()
    assert lo < truth < hi and pooled.fmi > 0.05
    assert all(d["x"].notna().all() for d in done) and (done[0]["x"][~miss] == x[~miss]).all()
    # reproducible from the seed
    again = impute(frame, ["x", "z"], outcome=outcome, m=2, iterations=5, seed=3)
    assert np.array_equal(again[0]["x"], done[0]["x"])


def test_text_covariates_are_imputed_as_levels_that_occur(rng: np.random.Generator) -> None:
    n = 400
    g = rng.choice(["a", "b", "c"], n).astype(object)
    g[rng.random(n) < 0.2] = None
    frame = pd.DataFrame({"g": g, "x": rng.normal(size=n), "sex": rng.choice(["F", "M"], n)})
    done = impute(frame, ["g", "x", "sex"], outcome={"y": rng.normal(size=n)}, m=2, iterations=3, seed=1)
    assert set(done[0]["g"]) <= {"a", "b", "c"} and done[0]["g"].notna().all()
