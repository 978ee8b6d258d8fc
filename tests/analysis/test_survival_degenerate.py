"""Degenerate input to the survival and competing-risks statistics: a clear error naming the
problem, or a warning recorded in the result -- never a silent NaN."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from toolkit.analysis.survival.cif import cumulative_incidence
from toolkit.analysis.survival.cox import fit_cox
from toolkit.analysis.survival.finegray import fine_gray
from toolkit.analysis.survival.gray import gray_test
from toolkit.analysis.survival.km import kaplan_meier
from toolkit.analysis.survival.logrank import logrank_test
from toolkit.analysis.survival.rmst import rmst
from toolkit.errors import AnalysisError, ConvergenceError


def _no_nan(entry: dict[str, object]) -> None:
    """Serialisable as strict JSON once non-finite numbers are nulled, and none was NaN."""

    def walk(v: object) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list | tuple):
            for x in v:
                walk(x)
        elif isinstance(v, float):
            assert not math.isnan(v)

    walk(entry)


@pytest.fixture
def cr(rng: np.random.Generator) -> pd.DataFrame:
    n = 200
    x = rng.normal(size=n)
    grp = rng.choice(["a", "b"], n)
    t_event = rng.exponential(np.exp(-0.5 * x))
    t_cens = rng.exponential(2.0, n)
    cause = np.where(rng.random(n) < 0.6, 1, 2)
    time = np.minimum(t_event, t_cens)
    event = np.where(t_event <= t_cens, cause, 0)
    return pd.DataFrame({"time": time, "event": event, "x": x, "grp": grp, "const": 1.0, "x2": 2 * x})


# --- no events ----------------------------------------------------------------------------


def test_no_events_is_an_error_everywhere(cr: pd.DataFrame) -> None:
    none = cr.assign(event=0)
    with pytest.raises(AnalysisError, match="no events"):
        fit_cox(none, covariates=["x"])
    with pytest.raises(AnalysisError, match="no events"):
        logrank_test(none, by="grp")
    with pytest.raises(AnalysisError, match="no events"):
        cumulative_incidence(none, by="grp")
    with pytest.raises(AnalysisError, match="no events of cause 1"):
        fine_gray(none, covariates=["x"])
    with pytest.raises(AnalysisError, match="no events of cause 1"):
        gray_test(none, by="grp")


def test_cause_specific_cox_without_events_of_that_cause_names_the_code(cr: pd.DataFrame) -> None:
    with pytest.raises(AnalysisError, match="code 3"):
        fit_cox(cr, covariates=["x"], cause=3)


def test_rmst_without_events_before_tau_warns_and_has_zero_se(cr: pd.DataFrame) -> None:
    res = rmst(cr.assign(event=0), tau=1.0, by="grp")
    assert all(g.rmst == 1.0 and g.se == 0.0 for g in res.groups)
    assert any("no events up to tau" in w for w in res.warnings)
    assert any("SE 0; no p-value" in w for w in res.warnings)
    assert res.contrasts[0].difference_p is None
    _no_nan(res.to_dict())


def test_cif_for_a_cause_without_events_warns_and_is_zero(cr: pd.DataFrame) -> None:
    res = cumulative_incidence(cr, by="grp", causes=[1, 3], times=[0.5])
    assert any("cause 3: no events" in w for w in res.warnings)
    for g in res.groups:
        k = g.curve.causes.index(3)
        assert np.all(g.curve.cif[:, k] == 0) and np.all(g.curve.std_err[:, k] == 0)
        assert np.all(g.curve.lower[:, k] == 0) and np.all(g.curve.upper[:, k] == 0)
    assert [t.cause for t in res.gray] == [1]  # no Gray's test for a cause that never happens
    _no_nan(res.to_dict())


# --- constant or collinear covariates --------------------------------------------------------


@pytest.mark.parametrize("fit", [fit_cox, fine_gray])
def test_constant_covariate_is_named(cr: pd.DataFrame, fit: object) -> None:
    with pytest.raises(AnalysisError, match=r"\['const'\] are constant"):
        fit(cr, covariates=["x", "const"])  # type: ignore[operator]


@pytest.mark.parametrize("fit", [fit_cox, fine_gray])
def test_collinear_covariates_are_named(cr: pd.DataFrame, fit: object) -> None:
    with pytest.raises(AnalysisError, match="collinear"):
        fit(cr, covariates=["x", "x2"])  # type: ignore[operator]


def test_text_covariate_with_one_level_is_constant(cr: pd.DataFrame) -> None:
    with pytest.raises(AnalysisError, match="fewer than two levels"):
        fine_gray(cr.assign(grp="a"), covariates=["x", "grp"])


# --- nobody at risk at a requested time --------------------------------------------------


def test_nobody_at_risk_at_a_requested_time_is_a_warning(cr: pd.DataFrame) -> None:
    late = float(cr["time"].max()) + 1.0
    cif = cumulative_incidence(cr, by="grp", times=[0.5, late])
    assert sum("nobody at risk" in w for w in cif.warnings) == 2  # one per group
    for g in cif.groups:
        last = [a for a in g.at if a[0] == late]
        assert all(a[-1] == 0 for a in last)  # n_risk 0, estimate carried forward
        assert all(a[2] == g.curve.cif[-1, g.curve.causes.index(a[1])] for a in last)
    km = kaplan_meier(cr.assign(event=(cr["event"] == 1).astype(int)), by="grp", times=[late])
    assert any("nobody at risk" in w for w in km.warnings)
    _no_nan(cif.to_dict())


def test_gray_with_a_group_nobody_at_risk_reports_no_statistic(cr: pd.DataFrame) -> None:
    # group c leaves (censored) before any event: Gray's variance is singular
    first = float(cr["time"].min())
    extra = pd.DataFrame({"time": [first / 2] * 3, "event": [0] * 3, "x": [0.0] * 3, "grp": ["c"] * 3})
    res = gray_test(pd.concat([cr, extra], ignore_index=True), by="grp", cause=1)
    assert res.chisq is None and res.p is None
    assert "singular" in res.warnings[0]
    assert json.dumps(res.to_dict(), allow_nan=False)


def test_gray_needs_two_groups(cr: pd.DataFrame) -> None:
    with pytest.raises(AnalysisError, match="fewer than two groups"):
        gray_test(cr.assign(grp="a"), by="grp")


# --- non-convergence and separation ----------------------------------------------------------


def test_fine_gray_non_convergence_says_what_to_try(cr: pd.DataFrame) -> None:
    with pytest.raises(ConvergenceError, match=r"did not converge in 1 iterations\. Try:"):
        fine_gray(cr, covariates=["x", "grp"], max_iter=1)


def _separated(rng: np.random.Generator) -> pd.DataFrame:
    n = 60
    g = (np.arange(n) < 20).astype(int)
    time = np.where(g == 1, rng.uniform(0, 1, n), rng.uniform(2, 3, n))  # g = 1 fail first
    event = np.where(g == 1, 1, np.where(rng.random(n) < 0.5, 2, 0))
    return pd.DataFrame({"time": time, "event": event, "g": g, "x": rng.normal(size=n)})


def test_cox_separation_is_a_recorded_warning_naming_the_term(rng: np.random.Generator) -> None:
    res = fit_cox(_separated(rng), covariates=["g", "x"])
    assert any("separation" in w and "'g'" in w for w in res.warnings)


def test_fine_gray_separation_is_a_recorded_warning_naming_the_term(rng: np.random.Generator) -> None:
    res = fine_gray(_separated(rng), covariates=["g", "x"])
    assert any("separation" in w and "'g'" in w for w in res.warnings)


def test_ph_test_that_cannot_be_computed_is_a_warning_not_a_failed_fit() -> None:
    # every event at one time: g(t) is constant over the events, the extended information singular
    frame = pd.DataFrame(
        {"time": [1, 1, 1, 2, 3, 4.0], "event": [1, 1, 1, 0, 0, 0], "x": [1, 2, 3, 4, 5, 6.0]}
    )
    res = fit_cox(frame, covariates=["x"])
    assert res.ph_test is None
    assert any("no proportional-hazards test" in w for w in res.warnings)
    assert res.to_dict()["ph_test"] is None


# --- bad input ---------------------------------------------------------------------------------


def test_bad_event_codes_and_times_are_named(cr: pd.DataFrame) -> None:
    with pytest.raises(AnalysisError, match="'event' must hold integer event codes"):
        cumulative_incidence(cr.assign(event=cr["event"] + 0.5))
    with pytest.raises(AnalysisError, match="'event' must hold integer event codes"):
        fine_gray(cr.assign(event=-1), covariates=["x"])
    with pytest.raises(AnalysisError, match="negative times"):
        cumulative_incidence(cr.assign(time=-cr["time"]))
    with pytest.raises(AnalysisError, match="negative times"):
        rmst(cr.assign(time=-cr["time"]), tau=1.0)
    with pytest.raises(AnalysisError, match="tau must be a positive number"):
        rmst(cr, tau=0)
    with pytest.raises(AnalysisError, match="column 'nope' not in the data"):
        cumulative_incidence(cr, by="nope")
    with pytest.raises(AnalysisError, match=r"columns \['nope'\] not in the data"):
        fine_gray(cr, covariates=["nope"])
    with pytest.raises(AnalysisError, match="cause must be an event code >= 1"):
        fine_gray(cr, covariates=["x"], cause=0)


def test_missing_rows_are_left_out_with_a_warning(cr: pd.DataFrame) -> None:
    holes = cr.copy()
    holes.loc[:4, "x"] = np.nan
    res = fine_gray(holes, covariates=["x"])
    assert res.n == len(cr) - 5
    assert "5 rows with missing values" in res.warnings[0]


def test_fine_gray_without_competing_events_is_the_breslow_cox_model(cr: pd.DataFrame) -> None:
    # with no competing events every weight is 1: the pseudo-likelihood is Cox's (Breslow ties);
    # crr's sandwich then reduces to the ordinary robust variance (Lin & Wei), as coxph(robust=TRUE)
    only = cr.assign(event=(cr["event"] > 0).astype(int))
    fg = fine_gray(only, covariates=["x", "grp"])
    cox = fit_cox(only, covariates=["x", "grp"], ties="breslow", robust=True)
    assert any("no competing events" in w for w in fg.warnings)
    np.testing.assert_allclose([t.coef for t in fg.terms], [t.coef for t in cox.terms], rtol=1e-7)
    np.testing.assert_allclose([t.se for t in fg.terms], [t.robust_se for t in cox.terms], rtol=1e-6)
