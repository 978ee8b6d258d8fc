"""Known truth: Cox confidence intervals cover the synthetic registry's true log hazard ratios.

Data come from the synthetic heart-failure generator's data-generating model
(``toolkit.registry.synth.heart_failure._draw_persons``): per-person covariates, a Weibull
proportional-hazards death time whose linear predictor is ``TRUE_LOG_HR`` over the structured
terms plus ``MULTIMODAL_LOG_HR`` over the note/image-only terms, a loss-to-follow-up time, and the
index date (administrative censoring at the data cut-off).  We censor at min(death, loss, cut-off)
ourselves; no registry files are written.  The Cox model uses every term of the true linear
predictor (leaving one out would bias the others: hazard ratios are not collapsible).

Persons are independent and identically distributed, so one generator call for many persons,
cut into consecutive blocks of N, gives independent data sets of N (and is ~10x faster than one
call per data set).  Each replicate is fitted by the same ``cox_stats``/``newton_raphson`` path
``fit_cox`` uses, skipping its concordance and PH test; for the first replicates the test checks
that ``fit_cox`` gives the same coefficients and confidence limits.

How many replicates: with R replicates the coverage of a correct 95% interval has SD
sqrt(0.95 * 0.05 / R).  The bar is 93-97% for every one of the 17 coefficients: with R = 200 a
correct method would fail it most of the time (about 80% per coefficient), with R = 1000 (SD
0.7%, the bar at ±2.9 SD) it passes for all 17 with probability ~0.94.  The pooled coverage over
all coefficients is also required to be within 94-96%.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from toolkit.analysis.survival.cox import cox_stats, fit_cox, newton_raphson
from toolkit.registry.synth import heart_failure as hf
from toolkit.registry.synth.multimodal import MULTIMODAL_CENTRE, MULTIMODAL_LOG_HR

N = 2000  # persons per data set
REPLICATES = 1000
BATCH = 100  # data sets drawn per generator call
TRUTH = {**hf.TRUE_LOG_HR, **MULTIMODAL_LOG_HR}
TERMS = list(TRUTH)


def _analysis_frame(p: pd.DataFrame) -> pd.DataFrame:
    """Follow-up in years to death, loss to follow-up or the data cut-off; the model's terms."""
    admin = (hf._secs(hf.DATA_CUTOFF) - p["index_s"].to_numpy()) / (hf.YEAR_DAYS * hf.DAY)
    death = p["death_years"].to_numpy()
    censor = np.minimum(p["ltfu_years"].to_numpy(), admin)
    return p.assign(
        time=np.minimum(death, censor),
        event=(death <= censor).astype(int),
        log_nt_probnp=np.log(p["nt_probnp"].to_numpy(float)),
    )


def _true_lp(frame: pd.DataFrame) -> np.ndarray:
    centre = {**hf.CENTRE, **MULTIMODAL_CENTRE}
    return sum(
        (beta * (frame[t].to_numpy(float) - centre.get(t, 0.0)) for t, beta in TRUTH.items()),
        start=np.zeros(len(frame)),
    )


@pytest.mark.slow
def test_cox_confidence_intervals_cover_the_true_log_hazard_ratios() -> None:
    z = stats.norm.ppf(0.975)
    covered = np.zeros((REPLICATES, len(TERMS)), dtype=bool)
    seeds = np.random.SeedSequence(20261128).spawn(REPLICATES // BATCH)
    for b, seed in enumerate(seeds):
        main, latent = (np.random.default_rng(s) for s in seed.spawn(2))
        people = _analysis_frame(hf._draw_persons(main, N * BATCH, 3, 0, latent))
        if b == 0:
            # the model we fit is the model that generated the data: the same linear predictor
            np.testing.assert_allclose(_true_lp(people), people["lp"].to_numpy(), atol=1e-9)
            assert 0.3 < people["event"].mean() < 0.8
        x_all = people[TERMS].to_numpy(float)
        t_all = people["time"].to_numpy(float)
        d_all = people["event"].to_numpy(float)
        for j in range(BATCH):
            sl = slice(j * N, (j + 1) * N)
            x, t, d = x_all[sl], t_all[sl], d_all[sl]
            xc = x - x.mean(axis=0)
            beta, final, _ = newton_raphson(lambda bb: cox_stats(xc, t, d, None, bb), len(TERMS))  # noqa: B023
            se = np.sqrt(np.diag(np.linalg.inv(final.information)))
            truth = np.array([TRUTH[k] for k in TERMS])
            covered[b * BATCH + j] = np.abs(beta - truth) <= z * se
            if b == 0 and j < 2:  # the lean path is fit_cox's computation
                res = fit_cox(people.iloc[sl], covariates=TERMS)
                np.testing.assert_allclose([r.coef for r in res.terms], beta, rtol=1e-10, atol=1e-12)
                np.testing.assert_allclose([r.hr_lower for r in res.terms], np.exp(beta - z * se), rtol=1e-10)
                np.testing.assert_allclose([r.hr_upper for r in res.terms], np.exp(beta + z * se), rtol=1e-10)
    coverage = covered.mean(axis=0)
    report = ", ".join(f"{k} {c:.3f}" for k, c in zip(TERMS, coverage, strict=True))
    assert np.all((coverage >= 0.93) & (coverage <= 0.97)), report
    assert 0.94 <= covered.mean() <= 0.96, f"pooled {covered.mean():.4f}; {report}"
