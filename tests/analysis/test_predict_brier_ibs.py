"""IPCW Brier score and integrated Brier score (IBS) on data where an event and a censoring share a
time: a hand-computed case, R's riskRegression (same IPCW convention, 1/G(T-)) and scikit-survival
(1/G(T): it differs, by exactly the amount the convention predicts).

riskRegression's values are in ``tests/data/survival/brier_reference.json``, written by
``Rscript tests/_scripts/make_brier_reference.R`` (riskRegression 2022.11.28); each entry records
its call.  These tests need no R.
"""

from __future__ import annotations

import json
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sksurv.metrics import brier_score, integrated_brier_score
from sksurv.util import Surv

from toolkit.analysis.predict import censored as cz
from toolkit.analysis.predict.assess import ibs_times, point_metrics
from toolkit.analysis.predict.develop import ModelPlan, develop_model
from toolkit.errors import AnalysisError

DATA = Path(__file__).resolve().parents[1] / "data" / "survival"

# The hand-made set (also in brier_reference.json as "hand_ties"): an event and a censoring at 2.
HAND_TIME = np.array([1.0, 2, 2, 3, 4, 5])
HAND_EVENT = np.array([1, 1, 0, 0, 1, 0])


def _hand_risk(times: np.ndarray) -> np.ndarray:
    return np.tile(np.asarray(times, float) / 5, (len(HAND_TIME), 1))  # risk(t) = t/5 for everyone


@cache
def _reference() -> dict[str, Any]:
    with (DATA / "brier_reference.json").open() as fh:
        ref: dict[str, Any] = json.load(fh)
    return ref


def _case_data(case: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """time, event and the risk matrix at case["times"], evaluated as the R script did."""
    times = np.asarray(case["times"], float)
    if "risk" in case:
        return (
            np.asarray(case["data"]["time"], float),
            np.asarray(case["data"]["event"]),
            np.array(case["risk"]),
        )
    frame = pd.read_csv(DATA / f"{case['dataset']}.csv")
    lp = np.asarray(case["lp"], float)
    risk = 1 - np.exp(-((times[None, :] / case["scale"]) ** case["shape"]) * np.exp(lp)[:, None])
    return frame["time"].to_numpy(float), frame["event"].to_numpy(), risk


def _cases() -> list[Any]:
    return [pytest.param(c, id=c["id"]) for c in _reference()["brier"]]


# --------------------------------------------------------------------------------------
# known truth, by hand
# --------------------------------------------------------------------------------------


def test_brier_and_ibs_by_hand_with_an_event_tied_to_a_censoring() -> None:
    # Censoring KM G (an event at a censoring's time happens first): at 2, 4 at risk of
    # censoring (5 with time >= 2, less the event at 2), 1 censored: G(2) = 3/4; at 3,
    # G = 3/4 * 2/3 = 1/2; G(4) = 1/2.  Case weights 1/G(T-): T = 1, 2 -> 1; T = 4 -> 2.
    # With p = t/5, 6 * Brier(t) = sum_cases (1-p)^2 w + sum_controls p^2 / G(t):
    #   t=0: 0;  t=1: .64 + 5(.04) = .84;  t=2: 2(.36) + 3(.16)/(3/4) = 1.36;
    #   t=3: 2(.16) + 2(.36)/(1/2) = 1.76;  t=4: .04 + .04 + 2(.04) + .64/(1/2) = 1.44.
    six_brier = [Fraction(0), Fraction(84, 100), Fraction(136, 100), Fraction(176, 100), Fraction(144, 100)]
    grid = ibs_times(4.0, k=4, from_zero=True)
    assert grid.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    m = _hand_risk(grid)
    for k, t in enumerate(grid):
        assert cz.brier_ipcw(HAND_TIME, HAND_EVENT, m[:, k], t) == pytest.approx(
            float(six_brier[k] / 6), abs=1e-15
        )
    # trapezoid, unit steps: [0, 4] -> (0/2 + .84 + 1.36 + 1.76 + 1.44/2) / 6 / 4 = 0.195
    #                        [1, 4] -> (.84/2 + 1.36 + 1.76 + 1.44/2) / 6 / 3 = 4.26 / 18
    from_zero = (six_brier[0] / 2 + sum(six_brier[1:4]) + six_brier[4] / 2) / 6 / 4
    from_one = (six_brier[1] / 2 + sum(six_brier[2:4]) + six_brier[4] / 2) / 6 / 3
    assert from_zero == Fraction(195, 1000)
    assert cz.integrated_brier(HAND_TIME, HAND_EVENT, m, grid) == pytest.approx(float(from_zero), abs=1e-15)
    default = ibs_times(4.0, k=4)
    assert default.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert cz.integrated_brier(HAND_TIME, HAND_EVENT, m[:, 1:], default) == pytest.approx(
        float(from_one), abs=1e-15
    )


def test_sksurv_weights_the_tied_case_by_g_at_t_and_differs_by_that_amount() -> None:
    # scikit-survival weights the case at T = 2 by 1/G(2) = 4/3 instead of 1/G(2-) = 1: each Brier
    # from t = 2 on gains (1 - p)^2 (4/3 - 1) / 6 -> +.36/18 = .02, +.16/18, +.04/18; the IBS over
    # [1, 4] gains (0/2 + .02 + .16/18 + .04/36) / 3 = 0.01 exactly.
    grid = ibs_times(4.0, k=4)
    m = _hand_risk(grid)
    y = Surv.from_arrays(HAND_EVENT.astype(bool), HAND_TIME)
    ours = np.array([cz.brier_ipcw(HAND_TIME, HAND_EVENT, m[:, k], t) for k, t in enumerate(grid)])
    theirs = brier_score(y, y, 1 - m, grid)[1]
    np.testing.assert_allclose(theirs - ours, [0, 0.36 / 18, 0.16 / 18, 0.04 / 18], atol=1e-15)
    gap = integrated_brier_score(y, y, 1 - m, grid) - cz.integrated_brier(HAND_TIME, HAND_EVENT, m, grid)
    assert gap == pytest.approx(0.01, abs=1e-15)


# --------------------------------------------------------------------------------------
# riskRegression: the same convention, to rounding
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases())
def test_brier_matches_riskregression_at_every_time(case: dict[str, Any]) -> None:
    # R: Score(list(m = risk), Hist(time, event) ~ 1, data, times, metrics = "brier",
    #          summary = "ibs", cens.model = "km")$Brier$score   (exact call in case["call"])
    time, event, risk = _case_data(case)
    assert case["cases_tied_with_a_censoring"] > 0  # the data exercise the convention
    ours = [cz.brier_ipcw(time, event, risk[:, k], t) for k, t in enumerate(case["times"])]
    np.testing.assert_allclose(ours, case["brier"], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case", _cases())
def test_riskregression_ibs_is_the_left_riemann_sum_of_the_same_brier_curve(case: dict[str, Any]) -> None:
    # riskRegression's "IBS" at t_K is sum_{k<K} Brier(t_k)(t_{k+1} - t_k) / t_K: only the
    # integration rule differs from Regent's trapezoid (documented in docs/analyses.md)
    time, event, risk = _case_data(case)
    times = np.asarray(case["times"], float)
    brier = np.array([cz.brier_ipcw(time, event, risk[:, k], t) for k, t in enumerate(times)])
    area = np.concatenate([[0.0], np.cumsum(brier[:-1] * np.diff(times))])
    pos = times > 0
    np.testing.assert_allclose(area[pos] / times[pos], np.asarray(case["ibs"])[pos], rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------------------
# scikit-survival: equal where the conventions agree, the predicted gap where they do not
# --------------------------------------------------------------------------------------


def _integer_data(rng: np.random.Generator, n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer times with many ties among events and among censorings, but no censoring at any
    event's time (there the two conventions agree); risk(t) from a Weibull with a score."""
    score = rng.normal(size=n)
    t_event = np.ceil(rng.weibull(1.2, n) * 300 * np.exp(-0.5 * score))
    t_cens = np.ceil(rng.uniform(50, 900, n))
    event = (t_event <= t_cens).astype(int)
    time = np.minimum(t_event, t_cens)
    clash = (event == 0) & np.isin(time, time[event == 1])
    time[clash] += 0.5  # move censorings off event times
    return time, event, score


def _weibull_risk(score: np.ndarray, times: np.ndarray) -> np.ndarray:
    return 1 - np.exp(-((np.asarray(times)[None, :] / 300) ** 1.2) * np.exp(0.5 * score)[:, None])


def test_ibs_equals_sksurv_where_no_censoring_coincides_with_an_event(rng: np.random.Generator) -> None:
    time, event, score = _integer_data(rng)
    assert len(np.unique(time[event == 1])) < (event == 1).sum()  # tied events
    y = Surv.from_arrays(event.astype(bool), time)
    grid = ibs_times(365.0)
    m = _weibull_risk(score, grid)
    assert cz.integrated_brier(time, event, m, grid) == pytest.approx(
        integrated_brier_score(y, y, 1 - m, grid), abs=1e-14
    )
    # [0, tau]: sksurv refuses t = 0 (before the first follow-up time); nobody has the event by
    # 0 and every risk at 0 is 0, so Brier(0) = 0 and the first trapezoid is Brier(t1) * t1 / 2
    grid0 = ibs_times(365.0, from_zero=True)
    m0 = _weibull_risk(score, grid0)
    first = brier_score(y, y, 1 - m0[:, 1:2], grid0[1:2])[1][0]
    expected = (integrated_brier_score(y, y, 1 - m, grid) * (365.0 - grid0[1]) + first * grid0[1] / 2) / 365.0
    assert cz.integrated_brier(time, event, m0, grid0) == pytest.approx(expected, abs=1e-14)


@pytest.mark.parametrize("case", [c for c in _cases() if c.id in ("gbsg", "lung")])
def test_sksurv_gap_on_real_data_is_the_tied_cases_reweighting(case: dict[str, Any]) -> None:
    # gbsg (38 cases share a day with a censoring) and lung: sksurv - Regent equals, at each t,
    # (1/n) sum over those cases with T_i <= t of (1 - p_i(t))^2 (1/G(T_i) - 1/G(T_i-))
    time, event, risk = _case_data(case)
    times = np.asarray(case["times"], float)[1:]  # sksurv refuses t = 0
    risk = risk[:, 1:]
    y = Surv.from_arrays(event.astype(bool), time)
    status = (event == 1).astype(float)
    one = np.ones((1, len(time)))
    cases = status == 1
    g_at = cz.censoring_survival(time, status, one, time[cases])[0]
    g_before = cz.censoring_survival(time, status, one, time[cases], left=True)[0]
    extra = np.zeros(len(time))
    extra[cases] = 1 / g_at - 1 / g_before
    assert (extra > 0).sum() == case["cases_tied_with_a_censoring"]
    predicted = [float(np.mean(extra * (time <= t) * (1 - risk[:, k]) ** 2)) for k, t in enumerate(times)]
    ours = np.array([cz.brier_ipcw(time, event, risk[:, k], t) for k, t in enumerate(times)])
    np.testing.assert_allclose(brier_score(y, y, 1 - risk, times)[1] - ours, predicted, rtol=1e-9, atol=1e-15)
    gap = integrated_brier_score(y, y, 1 - risk, times) - cz.integrated_brier(time, event, risk, times)
    assert gap == pytest.approx(np.trapezoid(predicted, times) / (times[-1] - times[0]), rel=1e-9)
    assert 0 < gap < 1e-4


# --------------------------------------------------------------------------------------
# the [0, tau] option in the predictive layer
# --------------------------------------------------------------------------------------


def test_point_metrics_ibs_from_zero_uses_the_grid_from_zero_and_checks_the_matrix() -> None:
    grid0 = ibs_times(4.0, from_zero=True)
    assert len(grid0) == 11 and grid0[0] == 0 and grid0[-1] == 4.0
    risk = np.full(len(HAND_TIME), 0.8)
    m0 = _hand_risk(grid0)
    out, _ = point_metrics(HAND_TIME, HAND_EVENT, risk, 4.0, risk_matrix=m0, ibs_from_zero=True, smooth=False)
    assert out["ibs"] == pytest.approx(cz.integrated_brier(HAND_TIME, HAND_EVENT, m0, grid0), abs=1e-15)
    with pytest.raises(AnalysisError, match=r"expected \(6, 10\)"):
        point_metrics(HAND_TIME, HAND_EVENT, risk, 4.0, risk_matrix=m0, smooth=False)


def test_develop_model_ibs_from_zero_changes_only_the_ibs(rng: np.random.Generator) -> None:
    n = 500
    x = rng.normal(size=n)
    t_event = rng.exponential(365 / (0.4 * np.exp(x)))
    t_cens = rng.uniform(200, 1000, n)
    frame = pd.DataFrame(
        {"x": x, "time": np.ceil(np.minimum(t_event, t_cens)), "event": (t_event <= t_cens).astype(int)}
    )
    runs = [
        develop_model(
            frame,
            ModelPlan(
                name="m",
                kind="cox",
                features=("x",),
                horizon=365.0,
                cv_folds=3,
                bootstrap=10,
                optimism=0,
                ibs_from_zero=flag,
            ),
        )[1]
        for flag in (False, True)
    ]
    default, zero = (r["metrics"] for r in runs)
    assert "ibs_from_zero" not in runs[0]["validation"] and runs[1]["validation"]["ibs_from_zero"] is True
    assert set(default) == set(zero)
    ibs_keys = {k for k in default if "ibs" in k}
    assert ibs_keys >= {"oof_ibs", "apparent_ibs"}
    assert {k: v for k, v in default.items() if k not in ibs_keys} == {
        k: v for k, v in zero.items() if k not in ibs_keys
    }
    for k in ibs_keys:  # the Brier score is smallest early on: [0, h] reads lower than [h/10, h]
        assert 0 < zero[k] < default[k], k
