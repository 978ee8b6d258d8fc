"""Censoring-aware metrics against scikit-survival, brute force and known identities.

scikit-survival estimates the censoring distribution on ``survival_train``; we pass the same
data as train and test.  Times are continuous (no event tied with a censoring), where its
``G(T_i)`` and our ``G(T_i-)`` coincide.  The tie conventions are pinned by hand-checked cases.
"""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.metrics import (
    brier_score,
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.util import Surv

from toolkit.analysis.predict import censored as cz
from toolkit.analysis.predict import metrics as mx
from toolkit.analysis.predict.concordance import harrell_c, uno_c
from toolkit.analysis.survival.concordance import concordance_index
from toolkit.analysis.survival.km import km_curve
from toolkit.errors import AnalysisError


def _surv_data(rng: np.random.Generator, n: int = 500) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = rng.normal(size=n)
    t_event = rng.exponential(np.exp(-0.8 * x) * 400)
    t_cens = rng.uniform(50, 900, n)
    time = np.minimum(t_event, t_cens)
    event = (t_event <= t_cens).astype(int)
    risk = 1 - np.exp(-(200 / 400) * np.exp(0.8 * x + rng.normal(0, 0.3, n)))
    return time, event, risk


def test_harrell_c_matches_fenwick_and_sksurv_with_ties(rng: np.random.Generator) -> None:
    for n in (7, 60, 700):
        time = np.round(rng.exponential(10, n))  # many tied times, events tied with censorings
        event = (rng.random(n) < 0.6).astype(int)
        event[0] = 1
        score = np.round(rng.normal(size=n), 1)  # tied scores
        assert harrell_c(time, event, score) == pytest.approx(
            concordance_index(time, event, score), abs=1e-12
        )
    time, event, risk = _surv_data(rng)
    ref = concordance_index_censored(event.astype(bool), time, risk)[0]
    assert harrell_c(time, event, risk) == pytest.approx(ref, abs=1e-12)


def test_harrell_c_bootstrap_weights_equal_resampled_rows(rng: np.random.Generator) -> None:
    n = 120
    time = np.round(rng.exponential(10, n))
    event = (rng.random(n) < 0.5).astype(int)
    score = np.round(rng.normal(size=n), 1)
    W = rng.multinomial(n, np.full(n, 1 / n), size=8).astype(float)
    got = harrell_c(time, event, score, W)
    for b in range(len(W)):
        idx = np.repeat(np.arange(n), W[b].astype(int))
        assert got[b] == pytest.approx(concordance_index(time[idx], event[idx], score[idx]), abs=1e-12)


def test_uno_c_matches_sksurv(rng: np.random.Generator) -> None:
    time, event, risk = _surv_data(rng)
    y = Surv.from_arrays(event.astype(bool), time)
    for tau in (200.0, 500.0):
        assert uno_c(time, event, risk, tau) == pytest.approx(
            concordance_index_ipcw(y, y, risk, tau=tau)[0], abs=1e-10
        )


def test_auc_td_brier_ibs_match_sksurv(rng: np.random.Generator) -> None:
    time, event, risk = _surv_data(rng)
    y = Surv.from_arrays(event.astype(bool), time)
    for h in (100.0, 300.0):
        ref_auc = cumulative_dynamic_auc(y, y, risk, [h])[0][0]
        assert cz.auc_td(time, event, risk, h) == pytest.approx(ref_auc, abs=1e-10)
        ref_bs = brier_score(y, y, 1 - risk, h)[1][0]
        assert cz.brier_ipcw(time, event, risk, h) == pytest.approx(ref_bs, abs=1e-12)
    times = np.array([60.0, 120, 180, 240, 300])
    lp = np.log(-np.log(1 - risk))
    matrix = 1 - np.exp(-np.exp(lp)[:, None] * (times / 200)[None, :])
    ref = integrated_brier_score(y, y, 1 - matrix, times)
    assert cz.integrated_brier(time, event, matrix, times) == pytest.approx(ref, abs=1e-12)


def test_ipa_is_one_minus_brier_ratio_to_km_null(rng: np.random.Generator) -> None:
    time, event, risk = _surv_data(rng)
    null = cz.km_risk(time, event, 250.0)
    expected = 1 - cz.brier_ipcw(time, event, risk, 250.0) / cz.brier_ipcw(
        time, event, np.full(len(time), null), 250.0
    )
    assert cz.ipa(time, event, risk, 250.0) == pytest.approx(expected, abs=1e-12)


def test_ipcw_bootstrap_weights_equal_resampled_rows(rng: np.random.Generator) -> None:
    time, event, risk = _surv_data(rng, n=150)
    W = rng.multinomial(150, np.full(150, 1 / 150), size=6).astype(float)
    auc, bs, c = (
        cz.auc_td(time, event, risk, 200.0, W),
        cz.brier_ipcw(time, event, risk, 200.0, W),
        uno_c(time, event, risk, 200.0, W),
    )
    for b in range(len(W)):
        idx = np.repeat(np.arange(150), W[b].astype(int))
        assert auc[b] == pytest.approx(cz.auc_td(time[idx], event[idx], risk[idx], 200.0), abs=1e-10)
        assert bs[b] == pytest.approx(cz.brier_ipcw(time[idx], event[idx], risk[idx], 200.0), abs=1e-12)
        assert c[b] == pytest.approx(uno_c(time[idx], event[idx], risk[idx], 200.0), abs=1e-10)


def test_ipcw_tie_convention_censoring_at_an_event_time_happens_after_it() -> None:
    # persons: event at 2, censored at 2, event at 3, alive at 5 (horizon 4)
    time = np.array([2.0, 2.0, 3.0, 5.0])
    event = np.array([1, 0, 1, 0])
    case, control, w = cz.censoring_weights(time, event, 4.0, np.ones((1, 4)))
    assert case.tolist() == [True, False, True, False] and control.tolist() == [False, False, False, True]
    # G(2-) = 1 (the tied censoring comes after the event); at 2 the event has left, so 3 are at
    # risk of censoring: G(3-) = G(4) = 1 - 1/3
    assert w[0].tolist() == pytest.approx([1.0, 0.0, 1.5, 1.5])


def test_pseudo_observations_match_brute_force_leave_one_out(rng: np.random.Generator) -> None:
    n = 80
    time = np.round(rng.exponential(10, n))  # ties between events and censorings
    event = np.where(rng.random(n) < 0.6, 1, np.where(rng.random(n) < 0.2, 2, 0))
    h = 8.0
    full = 1 - km_curve(time, (event == 1).astype(int)).at(h)[0]
    brute = np.empty(n)
    for i in range(n):
        keep = np.arange(n) != i
        loo = 1 - km_curve(time[keep], (event[keep] == 1).astype(int)).at(h)[0]
        brute[i] = n * full - (n - 1) * loo
    assert cz.pseudo_observations(time, event, h) == pytest.approx(brute, abs=1e-10)


def test_pseudo_observations_are_the_label_without_censoring_before_the_horizon(
    rng: np.random.Generator,
) -> None:
    n = 200
    time = rng.exponential(10, n)
    event = (time < 12).astype(int)  # censored only after the horizon
    time = np.where(event == 1, time, np.maximum(time, 12.0))
    po = cz.pseudo_observations(time, event, 8.0)
    assert po == pytest.approx(mx.horizon_label(time, event, 8.0), abs=1e-10)


def test_km_threshold_table_equals_binary_without_censoring(rng: np.random.Generator) -> None:
    n = 300
    risk = rng.uniform(0.02, 0.8, n)
    dead = rng.random(n) < risk
    time = np.where(dead, rng.uniform(1, 365, n), 400.0)
    event = dead.astype(int)
    thr = np.array([0.1, 0.2, 0.4, 0.6])
    km_rows = cz.threshold_table_km(time, event, risk, 365.0, thr)
    bin_rows = mx.threshold_table_binary(dead.astype(float), risk, thr)
    for a, b in zip(km_rows, bin_rows, strict=True):
        for k in ("sensitivity", "specificity", "ppv", "npv", "net_benefit", "positive_fraction"):
            assert a[k] == pytest.approx(b[k], abs=1e-12), k


def test_km_net_benefit_is_vickers_formula(rng: np.random.Generator) -> None:
    time, event, risk = _surv_data(rng)
    (row,) = cz.threshold_table_km(time, event, risk, 250.0, np.array([0.3]))
    high = risk >= 0.3
    r_high = 1 - km_curve(time[high], event[high]).at(250.0)[0]
    f = high.mean()
    assert row["net_benefit"] == pytest.approx(r_high * f - (1 - r_high) * f * 0.3 / 0.7, abs=1e-12)
    assert row["ppv"] == pytest.approx(r_high, abs=1e-12)


def test_degenerate_censored_inputs() -> None:
    time = np.array([5.0, 6.0, 7.0])
    with pytest.raises(AnalysisError, match="no comparable pairs"):
        harrell_c(time, np.zeros(3), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(AnalysisError, match="need both"):
        cz.auc_td(time, np.zeros(3), np.array([0.1, 0.2, 0.3]), 6.5)
    with pytest.raises(AnalysisError, match="differ in length"):
        cz.km_risk(time, np.zeros(2), 5.0)
