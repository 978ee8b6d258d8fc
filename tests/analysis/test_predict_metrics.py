"""Binary metrics of predicted risk against independent implementations.

References: scikit-learn (``roc_auc_score``, ``average_precision_score``, ``brier_score_loss``,
with and without ``sample_weight``) and statsmodels GLM (logistic recalibration: coefficients,
model-based and HC0 sandwich standard errors).  Bootstrap replicates given as weights must equal
the statistic of the resampled rows.
"""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from toolkit.analysis.predict import metrics as mx
from toolkit.errors import AnalysisError


def _data(rng: np.random.Generator, n: int = 400, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    p = rng.uniform(0.02, 0.9, n)
    if ties:
        p = np.round(p, 1)  # many tied scores
    y = (rng.random(n) < p).astype(float)
    return y, p


@pytest.mark.parametrize("ties", [False, True])
def test_auroc_auprc_brier_match_sklearn(rng: np.random.Generator, ties: bool) -> None:
    y, p = _data(rng, ties=ties)
    assert mx.auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert mx.auprc(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert mx.brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    prev = y.mean()
    assert mx.scaled_brier(y, p) == pytest.approx(1 - brier_score_loss(y, p) / (prev * (1 - prev)), abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_weighted_metrics_match_sklearn_sample_weight(rng: np.random.Generator, ties: bool) -> None:
    y, p = _data(rng, ties=ties)
    w = rng.uniform(0, 3, len(y))
    assert mx.auroc(y, p, w) == pytest.approx(roc_auc_score(y, p, sample_weight=w), abs=1e-12)
    assert mx.auprc(y, p, w) == pytest.approx(average_precision_score(y, p, sample_weight=w), abs=1e-12)
    assert mx.brier(y, p, w) == pytest.approx(brier_score_loss(y, p, sample_weight=w), abs=1e-12)


def test_bootstrap_weights_equal_resampled_rows(rng: np.random.Generator) -> None:
    y, p = _data(rng, n=150, ties=True)
    W = rng.multinomial(len(y), np.full(len(y), 1 / len(y)), size=25).astype(float)
    got = {f.__name__: f(y, p, W) for f in (mx.auroc, mx.auprc, mx.brier, mx.scaled_brier)}
    for b in range(len(W)):
        idx = np.repeat(np.arange(len(y)), W[b].astype(int))
        assert got["auroc"][b] == pytest.approx(roc_auc_score(y[idx], p[idx]), abs=1e-12)
        assert got["auprc"][b] == pytest.approx(average_precision_score(y[idx], p[idx]), abs=1e-12)
        assert got["brier"][b] == pytest.approx(brier_score_loss(y[idx], p[idx]), abs=1e-12)
        assert got["scaled_brier"][b] == pytest.approx(mx.scaled_brier(y[idx], p[idx]), abs=1e-12)


def test_recalibration_matches_statsmodels_glm(rng: np.random.Generator) -> None:
    n = 800
    lp = rng.normal(-1, 1.2, n)
    y = (rng.random(n) < mx.expit(0.3 + 0.7 * lp)).astype(float)  # true intercept 0.3, slope 0.7
    p = mx.expit(lp)
    rc = mx.recalibration(y, p)
    x = sm.add_constant(lp)
    fit = sm.GLM(y, x, family=sm.families.Binomial()).fit()
    assert rc.intercept == pytest.approx(fit.params[0], abs=1e-7)
    assert rc.slope == pytest.approx(fit.params[1], abs=1e-7)
    assert rc.slope_se == pytest.approx(fit.bse[1], rel=1e-6)
    offset = sm.GLM(y, np.ones((n, 1)), family=sm.families.Binomial(), offset=lp).fit()
    assert rc.citl == pytest.approx(offset.params[0], abs=1e-7)
    assert rc.citl_se == pytest.approx(offset.bse[0], rel=1e-6)
    assert not rc.robust


def test_recalibration_with_pseudo_values_uses_sandwich_se(rng: np.random.Generator) -> None:
    """Non-0/1 outcomes (here proportions in [0, 1]) give the quasi-likelihood fit with HC0 SEs."""
    n = 600
    lp = rng.normal(-0.5, 1.0, n)
    y = np.clip(mx.expit(0.2 + 0.8 * lp) + rng.normal(0, 0.1, n), 0, 1)
    rc = mx.recalibration(y, mx.expit(lp))
    fit = sm.GLM(y, sm.add_constant(lp), family=sm.families.Binomial()).fit(cov_type="HC0")
    assert rc.robust
    assert rc.slope == pytest.approx(fit.params[1], abs=1e-7)
    assert rc.slope_se == pytest.approx(fit.bse[1], rel=1e-6)


def test_recalibration_slopes_per_replicate_equal_single_fits(rng: np.random.Generator) -> None:
    y, p = _data(rng, n=300)
    W = rng.multinomial(len(y), np.full(len(y), 1 / len(y)), size=5).astype(float)
    citl, slope = mx.recalibration_slopes(y, p, W)
    for b in range(5):
        rc = mx.recalibration(y, p, W[b])
        assert slope[b] == pytest.approx(rc.slope, abs=1e-8) and citl[b] == pytest.approx(rc.citl, abs=1e-8)


def test_threshold_table_binary_by_hand() -> None:
    y = np.array([1, 1, 0, 0, 0, 1, 0, 0], float)
    p = np.array([0.9, 0.6, 0.6, 0.3, 0.1, 0.2, 0.05, 0.4])
    (row,) = mx.threshold_table_binary(y, p, np.array([0.35]))
    # positives: 0.9(1) 0.6(1) 0.6(0) 0.4(0) -> TP 2, FP 2; negatives: 0.3(0) 0.1(0) 0.2(1) 0.05(0) -> FN 1, TN 3
    assert row["sensitivity"] == pytest.approx(2 / 3)
    assert row["specificity"] == pytest.approx(3 / 5)
    assert row["ppv"] == pytest.approx(0.5) and row["npv"] == pytest.approx(0.75)
    assert row["net_benefit"] == pytest.approx(2 / 8 - 2 / 8 * 0.35 / 0.65)
    assert mx.net_benefit_treat_all(3 / 8, np.array([0.35]))[0] == pytest.approx(3 / 8 - 5 / 8 * 0.35 / 0.65)


def test_degenerate_inputs_raise_clear_errors() -> None:
    y1 = np.ones(20)
    p = np.linspace(0.1, 0.9, 20)
    for fn in (mx.auroc, mx.auprc, mx.scaled_brier):
        with pytest.raises(AnalysisError, match="only one outcome class"):
            fn(y1, p)
    y = np.tile([0.0, 1.0], 10)
    with pytest.raises(AnalysisError, match="predictions are constant"):
        mx.recalibration(y, np.full(20, 0.3))
    with pytest.raises(AnalysisError, match="did not converge"):  # perfect separation
        mx.recalibration(np.r_[np.zeros(10), np.ones(10)], np.r_[np.full(10, 0.2), np.full(10, 0.8)])
    with pytest.raises(AnalysisError, match=r"must lie in \[0, 1\]"):
        mx.brier(y, np.full(20, 1.5))
    with pytest.raises(AnalysisError, match="non-finite"):
        mx.brier(y, np.r_[np.full(19, 0.3), np.nan])
    with pytest.raises(AnalysisError, match="must be 0/1"):
        mx.auroc(np.r_[y[:-1], np.nan], p)
    # constant predictions are a valid (uninformative) AUROC of exactly one half
    assert mx.auroc(y, np.full(20, 0.3)) == 0.5


def test_horizon_label_never_counts_censored_as_negative() -> None:
    time = np.array([10.0, 50, 100, 100, 200, 30])
    event = np.array([1, 0, 1, 0, 0, 2])
    lab = mx.horizon_label(time, event, 100.0)
    assert lab[0] == 1 and np.isnan(lab[1]) and lab[2] == 1 and lab[3] == 0 and lab[4] == 0 and lab[5] == 0
