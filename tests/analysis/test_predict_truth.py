"""Known truth: the calibration slope of the true-risk model of the synthetic registry.

``_draw_persons`` gives each person's true 1-year risk (``risk_1y``, from the Weibull model that
generates the death times, ignoring censoring) and latent death time.  Recalibrating
``logit(risk_1y)`` against the observed 1-year death indicator must give a slope of 1: over 200
simulated data sets the mean slope lies in 0.9-1.1 and each data set's 95% interval covers 1 at
the nominal rate.  The same holds with independent censoring before the horizon, where the
outcome enters as Kaplan-Meier pseudo-observations (robust intervals).
"""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.analysis.predict.assess import point_metrics
from toolkit.analysis.predict.metrics import recalibration
from toolkit.registry.synth.heart_failure import _draw_persons

DATASETS = 200
N = 1500
H = 365.25


@pytest.mark.slow
def test_true_risk_model_has_calibration_slope_one() -> None:
    rng = np.random.default_rng(20261128)
    slopes, covered, pseudo_slopes, pseudo_covered = [], [], [], []
    for k in range(DATASETS):
        p = _draw_persons(rng, N, 3, 0, np.random.default_rng(10_000 + k))
        death = p["death_years"].to_numpy() * 365.25
        risk = p["risk_1y"].to_numpy()
        # no censoring before one year: follow-up ends at death or at two years
        time = np.minimum(death, 2 * 365.25)
        event = (death <= 2 * 365.25).astype(int)
        rc = recalibration((death <= H).astype(float), risk)
        lo, hi = rc.ci("slope")
        slopes.append(rc.slope)
        covered.append(lo <= 1 <= hi)
        # the study path: point_metrics sees nobody censored before h and uses the 0/1 outcome
        m, _ = point_metrics(time, event, risk, H, smooth=False)
        assert m["calibration_slope"] == pytest.approx(rc.slope, abs=1e-8)
        # independent censoring, a third of persons before one year: pseudo-observations
        cens = rng.uniform(0, 3 * 365.25, N)
        m, _ = point_metrics(np.minimum(death, cens), (death <= cens).astype(int), risk, H, smooth=False)
        pseudo_slopes.append(m["calibration_slope"])
        pseudo_covered.append(m["calibration_slope_lower"] <= 1 <= m["calibration_slope_upper"])
    slopes_a = np.array(slopes)
    assert 0.9 <= slopes_a.mean() <= 1.1
    assert 0.9 <= np.median(slopes_a) <= 1.1
    assert 0.92 <= np.mean(covered) <= 0.98  # nominal 95%: binomial sd over 200 sets is 1.5 points
    assert 0.9 <= np.mean(pseudo_slopes) <= 1.1
    assert 0.90 <= np.mean(pseudo_covered) <= 0.99
