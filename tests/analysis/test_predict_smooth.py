"""Loess and the smoothed calibration metrics (ICI, E50, E90, Emax).

References: R's ``loess(y ~ x, surface = "direct")`` (stored by
``tests/_scripts/make_predict_reference.R`` in ``tests/data/predict/loess_reference.csv``) and
statsmodels' ``lowess`` (local linear, ``it=0``, ``delta=0``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.nonparametric.smoothers_lowess import lowess

from toolkit.analysis.predict.smooth import loess, smoothed_calibration
from toolkit.errors import AnalysisError

REF = Path(__file__).resolve().parents[1] / "data" / "predict" / "loess_reference.csv"


@pytest.mark.parametrize(
    ("column", "span", "degree"), [("d2_s075", 0.75, 2), ("d2_s050", 0.5, 2), ("d1_s075", 0.75, 1)]
)
def test_loess_matches_r_direct(column: str, span: float, degree: int) -> None:
    ref = pd.read_csv(REF)
    got = loess(ref["x"].to_numpy(), ref["y"].to_numpy(float), span=span, degree=degree)
    assert got == pytest.approx(ref[column].to_numpy(), abs=1e-10)


@pytest.mark.parametrize("frac", [0.3, 2 / 3, 1.0])
def test_loess_degree_one_matches_statsmodels_lowess_with_ties(rng: np.random.Generator, frac: float) -> None:
    x = np.round(rng.uniform(0, 1, 500), 2)  # tied x values
    y = (rng.random(500) < x).astype(float)
    ref = lowess(y, x, frac=frac, it=0, delta=0.0, return_sorted=False)
    assert loess(x, y, span=frac, degree=1) == pytest.approx(ref, abs=1e-10)


def test_ici_e50_e90_emax_equal_a_direct_lowess_computation(rng: np.random.Generator) -> None:
    n = 600  # fewer distinct predictions than the grid limit: the smoother is exact at every point
    p = rng.uniform(0.02, 0.7, n)
    y = (rng.random(n) < np.clip(p * 1.3, 0, 1)).astype(float)  # miscalibrated: risk under-predicted
    sc = smoothed_calibration(p, y, span=2 / 3, degree=1, max_points=n)
    smooth = lowess(y, p, frac=2 / 3, it=0, delta=0.0, return_sorted=False)
    diff = np.abs(smooth - p)
    assert sc.ici == pytest.approx(diff.mean(), abs=1e-10)
    assert sc.e50 == pytest.approx(np.median(diff), abs=1e-10)
    assert sc.e90 == pytest.approx(np.quantile(diff, 0.9), abs=1e-10)
    assert sc.emax == pytest.approx(diff.max(), abs=1e-10)


def test_ici_matches_r_value_and_grid_interpolation_is_close() -> None:
    ref = pd.read_csv(REF)
    x, y = ref["x"].to_numpy(), ref["y"].to_numpy(float)
    exact = smoothed_calibration(x, y, max_points=len(x))
    assert exact.ici == pytest.approx(0.083101792470, abs=1e-9)  # printed by the R script
    coarse = smoothed_calibration(x, y, max_points=50)  # 50 quantiles, linear interpolation
    assert coarse.ici == pytest.approx(exact.ici, abs=2e-4)


def test_perfect_calibration_has_small_ici(rng: np.random.Generator) -> None:
    p = rng.uniform(0.05, 0.6, 20_000)
    y = (rng.random(len(p)) < p).astype(float)
    sc = smoothed_calibration(p, y)
    assert sc.ici < 0.01 and sc.e90 < 0.02


def test_smoothing_degenerate_inputs() -> None:
    with pytest.raises(AnalysisError, match="predictions are constant"):
        smoothed_calibration(np.full(10, 0.2), np.tile([0.0, 1.0], 5))
    with pytest.raises(AnalysisError, match="need more data"):
        loess(np.arange(3.0), np.arange(3.0), span=0.5)
    with pytest.raises(AnalysisError, match="span"):
        loess(np.arange(10.0), np.arange(10.0), span=1.5)
