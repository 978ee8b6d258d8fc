"""Regent's survival statistics against stored reference values from R's ``survival`` package.

The values in ``tests/data/survival/reference.json`` (and the CSVs beside it) were written by
``Rscript tests/_scripts/make_survival_reference.R``; each entry records the R call that
produced it (its ``call`` field).  These tests need no R.

Tolerances: Cox coefficients and SEs relative 1e-4; KM survival and CIs absolute 1e-6;
C-index 1e-4; log-rank chi-square relative 1e-6.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from toolkit.analysis.design import design_matrix
from toolkit.analysis.survival.concordance import concordance_counts, concordance_index
from toolkit.analysis.survival.cox import baseline_cumhaz, fit_cox
from toolkit.analysis.survival.km import kaplan_meier
from toolkit.analysis.survival.logrank import logrank_test

DATA = Path(__file__).resolve().parents[1] / "data" / "survival"

COX_REL = 1e-4
KM_ABS = 1e-6
C_ABS = 1e-4
LOGRANK_REL = 1e-6


@cache
def _reference() -> dict[str, Any]:
    with (DATA / "reference.json").open() as fh:
        ref: dict[str, Any] = json.load(fh)
    return ref


@cache
def _frame(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / _reference()["datasets"][name]["file"])


def _cases(section: str) -> list[Any]:
    return [pytest.param(case, id=case["id"]) for case in _reference()[section]]


def _close_or_missing(ours: float | None, theirs: float | None, *, abs_tol: float) -> bool:
    """R's NA is stored as null; Regent's missing is None or NaN."""
    if ours is None or math.isnan(ours):
        return theirs is None
    return theirs is not None and abs(float(ours) - theirs) <= abs_tol


def _limit_matches(ours: float, theirs: float | None, survival: float) -> bool:
    """A log-log confidence limit against R's.

    Documented choice: while the curve is 1 the log-log limits are undefined and R's survfit
    leaves them NA; Regent reports the degenerate interval [1, 1] (R's summary() also reports
    1 at the time-0 row it adds).  Everywhere else, including NA once the curve is 0, as R.
    """
    if theirs is None and survival == 1.0:
        return ours == 1.0
    return _close_or_missing(ours, theirs, abs_tol=KM_ABS)


def test_reference_file_records_calls() -> None:
    ref = _reference()
    for section in ("km", "logrank", "cox", "basehaz", "concordance"):
        assert ref[section], section
        for case in ref[section]:
            assert case["call"].strip(), (section, case["id"])
    for meta in ref["datasets"].values():
        assert (DATA / meta["file"]).is_file()


# --------------------------------------------------------------------------------------
# Kaplan-Meier
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("km"))
def test_km_at_times_and_median(case: dict[str, Any]) -> None:
    # R: fit <- survfit(Surv(time, event) ~ <by>, data, conf.type = "log-log");
    #    summary(fit[i], times = ...); quantile(fit, probs = 0.5)   (exact call in case["call"])
    frame = _frame(case["dataset"])
    res = kaplan_meier(frame, time="time", event="event", by=case["by"], times=case["times"])
    ours = {g.curve.group: g for g in res.groups}
    assert sorted(ours) == sorted(g["group"] for g in case["groups"])
    for ref in case["groups"]:
        g = ours[ref["group"]]
        assert g.curve.n == ref["n"]
        assert g.curve.events == ref["events"]
        # medians: R's quantile rule (midpoint when the curve sits exactly at 0.5)
        for name in ("median", "median_lower", "median_upper"):
            assert _close_or_missing(getattr(g, name), ref[name], abs_tol=1e-9), (ref["group"], name)
        # R's summary(times=) drops times after the group's last time; compare the ones it kept
        at = {t: (s, lo, up, n) for t, s, lo, up, n in g.at}
        r_at = ref["at"]
        for i, t in enumerate(r_at["time"]):
            s, lo, up, n_risk = at[float(t)]
            assert s == pytest.approx(r_at["survival"][i], abs=KM_ABS), (ref["group"], t)
            assert _limit_matches(lo, r_at["lower"][i], s), (ref["group"], t, "lower")
            assert _limit_matches(up, r_at["upper"][i], s), (ref["group"], t, "upper")
            assert n_risk == r_at["n_risk"][i], (ref["group"], t, "n.risk")


def _curve_cases() -> list[Any]:
    return [
        pytest.param(case, id=case["id"])
        for case in _reference()["km"]
        if all(g.get("curve") for g in case["groups"])
    ]


@pytest.mark.parametrize("case", _curve_cases())
def test_km_full_curve(case: dict[str, Any]) -> None:
    # R: fit <- survfit(Surv(time, event) ~ <by>, data, conf.type = "log-log");
    #    fit[i]$time, $n.risk, $n.event, $surv, $std.err, $lower, $upper
    frame = _frame(case["dataset"])
    res = kaplan_meier(frame, time="time", event="event", by=case["by"])
    ours = {g.curve.group: g.curve for g in res.groups}
    for ref in case["groups"]:
        c, rc = ours[ref["group"]], ref["curve"]
        np.testing.assert_array_equal(c.time, rc["time"])
        np.testing.assert_array_equal(c.n_risk, rc["n_risk"])
        np.testing.assert_array_equal(c.n_event, rc["n_event"])
        np.testing.assert_allclose(c.survival, rc["survival"], rtol=0, atol=KM_ABS)
        r_se = np.array([np.inf if v is None else v for v in rc["std_err"]])
        np.testing.assert_allclose(c.std_err, r_se, rtol=0, atol=KM_ABS)
        for name in ("lower", "upper"):
            ours_ci = getattr(c, name)
            for i, (mine, theirs) in enumerate(zip(ours_ci, rc[name], strict=True)):
                assert _limit_matches(mine, theirs, c.survival[i]), (ref["group"], name, i)


# --------------------------------------------------------------------------------------
# log-rank
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("logrank"))
def test_logrank(case: dict[str, Any]) -> None:
    # R: survdiff(Surv(time, event) ~ <by> [+ strata(<strata>)], data)  (exact call in case["call"])
    frame = _frame(case["dataset"])
    if case["subset"]:
        frame = frame.query(case["subset"])
    res = logrank_test(frame, time="time", event="event", by=case["by"], strata=case["strata"])
    assert list(res.groups) == case["groups"]
    assert res.df == case["df"]
    assert res.chisq == pytest.approx(case["chisq"], rel=LOGRANK_REL)
    assert res.p == pytest.approx(case["p"], rel=1e-5)
    np.testing.assert_allclose(res.observed, case["observed"], rtol=1e-12)
    np.testing.assert_allclose(res.expected, case["expected"], rtol=1e-9)
    assert res.stratified is (case["strata"] is not None)


# --------------------------------------------------------------------------------------
# Cox
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("cox"))
def test_cox(case: dict[str, Any]) -> None:
    # R: fit <- coxph(Surv(time, event) ~ <covariates> [+ strata()] [+ cluster()], data,
    #                 ties = <ties> [, robust = TRUE]); concordance(fit)  (exact call in case["call"])
    frame = _frame(case["dataset"])
    res = fit_cox(
        frame,
        time="time",
        event="event",
        covariates=case["covariates"],
        ties=case["ties"],
        strata=case["strata"],
        cluster=case["cluster"],
        robust=case["robust"],
    )
    assert [t.term for t in res.terms] == case["terms"]
    assert res.n == case["n"]
    assert res.events == case["events"]
    np.testing.assert_allclose([t.coef for t in res.terms], case["coef"], rtol=COX_REL, atol=1e-12)
    np.testing.assert_allclose([t.se for t in res.terms], case["se"], rtol=COX_REL)
    assert res.loglik == pytest.approx(case["loglik"], rel=1e-8)
    assert res.loglik_null == pytest.approx(case["loglik_null"], rel=1e-10)
    assert res.concordance == pytest.approx(case["concordance"], abs=C_ABS)
    if case["robust_se"] is None:
        assert not res.robust
        assert all(t.robust_se is None for t in res.terms)
    else:
        assert res.robust
        rse = [np.nan if t.robust_se is None else t.robust_se for t in res.terms]
        np.testing.assert_allclose(rse, case["robust_se"], rtol=COX_REL)
        # R's z and p use the robust variance when there is one
        for t, r_se in zip(res.terms, case["robust_se"], strict=True):
            assert t.z == pytest.approx(t.coef / r_se, rel=COX_REL)


@pytest.mark.parametrize("case", _cases("basehaz"))
def test_baseline_cumhaz(case: dict[str, Any]) -> None:
    # R: fit <- coxph(Surv(time, event) ~ <covariates>, data, ties = <ties>);
    #    basehaz(fit, centered = FALSE), rows with n.event > 0  (exact call in case["call"])
    frame = _frame(case["dataset"])
    x = design_matrix(frame, case["covariates"]).matrix
    times, cumhaz = baseline_cumhaz(
        x,
        frame["time"].to_numpy(float),
        frame["event"].to_numpy(float),
        np.asarray(case["coef"], float),
        ties=case["ties"],
    )
    np.testing.assert_array_equal(times, case["time"])
    np.testing.assert_allclose(cumhaz, case["cumhaz"], rtol=1e-8)


# --------------------------------------------------------------------------------------
# concordance
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("concordance"))
def test_concordance_of_a_score(case: dict[str, Any]) -> None:
    # R: concordance(Surv(time, event) ~ <score> [+ strata()], data, reverse = TRUE)
    #    (exact call in case["call"])
    frame = _frame(case["dataset"])
    t = frame["time"].to_numpy(float)
    e = frame["event"].to_numpy(int)
    score = frame[case["score"]].to_numpy(float)
    strata = None if case["strata"] is None else pd.factorize(frame[case["strata"]])[0]
    c = concordance_index(t, e, score, strata=strata)
    assert c == pytest.approx(case["concordance"], abs=C_ABS)
    counts = case["counts"]
    keys = np.zeros(len(t), int) if strata is None else strata
    conc = disc = tied = 0.0
    for s in np.unique(keys):
        m = keys == s
        ci, di, ti = concordance_counts(t[m], e[m], score[m])
        conc, disc, tied = conc + ci, disc + di, tied + ti
    assert (conc, disc, tied) == (counts["concordant"], counts["discordant"], counts["tied.x"])
