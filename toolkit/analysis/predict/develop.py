"""Develop and validate one risk model on a cohort frame: what a study's model step computes.

1. Development data: the whole cohort, or the part outside a declared external split.
2. k-fold cross-validation on it (fold metrics with t-intervals; pooled out-of-fold predictions
   assessed with bootstrap CIs, calibration tables and curves, threshold table, decision curve).
3. The final model, fitted on all development data; its apparent metrics, and Harrell's
   optimism-corrected metrics from refits on bootstrap samples.
4. Every metric per declared subgroup (on the out-of-fold predictions), and the largest gaps.
5. External validation where declared: the final model on the held-out site(s) or period, with
   bootstrap CIs and logistic recalibration (intercept and slope).
6. Global importance (mean absolute contribution per input) and plots.
7. Reference distributions of every input and of the predicted risk (binned, every bin at least
   the minimum cell): what monitoring in service compares with (:mod:`.reference`).

Metric keys are flat (``oof_auroc``, ``corrected_c_harrell``, ``external_calibration_slope``,
...; docs/results.md lists them) so a tracker logs each as ``<model>.<key>``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from toolkit.analysis.predict import plots as pp
from toolkit.analysis.predict.assess import DEFAULT_THRESHOLDS, assess, ibs_times, point_metrics
from toolkit.analysis.predict.counts import fit_counts, horizon_counts
from toolkit.analysis.predict.evaluate import cross_validate, optimism_bootstrap
from toolkit.analysis.predict.models import RiskModel, make_model
from toolkit.analysis.predict.reference import reference_distributions
from toolkit.analysis.predict.subgroups import subgroup_metrics
from toolkit.disclosure import DisclosurePolicy
from toolkit.errors import AnalysisError

_COUNTS = ("n", "events", "n_evaluable")


@dataclass(frozen=True)
class ExternalSplit:
    """Which persons are held out for external validation, and how to describe the split."""

    mask: np.ndarray  # True = external
    description: str


def external_split(
    frame: pd.DataFrame,
    *,
    by: str | None = None,
    values: Sequence[Any] = (),
    index_after: dt.date | dt.datetime | str | None = None,
    source: str = "validation.external",
) -> ExternalSplit:
    """Persons whose ``by`` is one of ``values`` (e.g. a site), or whose index date is on or after
    ``index_after`` (a temporal split)."""
    if (by is None) == (index_after is None):
        raise AnalysisError(f"{source}: give either 'by' with 'values', or 'index_after'")
    if by is not None:
        if by not in frame.columns:
            raise AnalysisError(f"{source}.by: unknown column {by!r}; available: {sorted(frame.columns)}")
        if not values:
            raise AnalysisError(f"{source}.values: list the values of {by!r} that are held out")
        wanted = {str(v) for v in values}
        mask = frame[by].astype("string").isin(wanted).fillna(False).to_numpy(bool)
        present = set(frame[by].dropna().astype(str))
        unknown = sorted(wanted - present)
        if unknown:
            raise AnalysisError(
                f"{source}.values: {unknown} do not occur in {by!r}; available: {sorted(present)}"
            )
        desc = f"{by} in {sorted(wanted)}"
    else:
        if "index_time" not in frame.columns:
            raise AnalysisError(f"{source}.index_after: the cohort has no index_time column")
        idx = pd.to_datetime(frame["index_time"])
        cut = pd.Timestamp(index_after)
        if idx.dt.tz is not None and cut.tzinfo is None:
            cut = cut.tz_localize(idx.dt.tz)
        mask = (idx >= cut).to_numpy(bool)
        desc = f"index date on or after {cut.date().isoformat()}"
    if mask.all() or not mask.any():
        raise AnalysisError(
            f"{source}: the split '{desc}' leaves {'no' if not mask.any() else 'all'} persons for "
            "external validation; both parts need persons"
        )
    return ExternalSplit(mask, desc)


def _prefixed(prefix: str, metrics: Mapping[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in metrics.items() if k not in _COUNTS}


@dataclass(frozen=True)
class ModelPlan:
    """What to develop: the model (kind, features, horizon, parameters, search) and how to validate it."""

    name: str
    kind: str
    features: tuple[str, ...]
    horizon: float
    params: Mapping[str, Any] = field(default_factory=dict)
    splines: tuple[str, ...] = ()
    search: Mapping[str, Sequence[Any]] | None = None
    search_folds: int = 3
    search_metric: str = "brier_ipcw"
    cv_folds: int = 5
    seed: int = 0
    bootstrap: int = 200
    optimism: int = 40
    thresholds: tuple[float, ...] = tuple(DEFAULT_THRESHOLDS)
    subgroups: tuple[str, ...] = ()
    external: ExternalSplit | None = None
    ibs_from_zero: bool = False  # integrate the Brier score over [0, h] instead of [h/10, h]


def develop_model(
    frame: pd.DataFrame,
    plan: ModelPlan,
    *,
    policy: DisclosurePolicy | None = None,
    progress: Callable[[str], object] | None = None,
) -> tuple[RiskModel, dict[str, Any], dict[str, bytes]]:
    """Fit, validate and describe one model (see the module docstring).

    With ``plan.ibs_from_zero`` the Brier score is integrated over [0, h] instead of [h/10, h]
    (see :func:`ibs_times`); the results then say so in ``validation.ibs_from_zero``.
    """
    name, kind, features, horizon = plan.name, plan.kind, list(plan.features), plan.horizon
    params, splines, search = plan.params, plan.splines, plan.search
    search_folds, search_metric, cv_folds, seed = (
        plan.search_folds,
        plan.search_metric,
        plan.cv_folds,
        plan.seed,
    )
    bootstrap, optimism, thresholds = plan.bootstrap, plan.optimism, plan.thresholds
    subgroups, external, ibs_from_zero = plan.subgroups, plan.external, plan.ibs_from_zero
    policy = policy or DisclosurePolicy()
    say = progress or (lambda _m: None)
    dev = ~external.mask if external is not None else np.ones(len(frame), bool)
    d = frame.loc[dev]
    x = d[list(features)]
    t = d["time"].to_numpy(float)
    e = d["event"].astype(int).to_numpy()

    def make() -> RiskModel:
        return make_model(
            kind,
            horizon=horizon,
            features=features,
            params=params,
            splines=splines,
            search=search,
            search_folds=search_folds,
            search_metric=search_metric,
        )

    fold_no = [0]

    def make_fold() -> RiskModel:
        fold_no[0] += 1
        say(f"fold {fold_no[0]}/{cv_folds}")
        return make()

    cv = cross_validate(
        make_fold, x, t, e, horizon=horizon, folds=cv_folds, seed=seed, ibs_from_zero=ibs_from_zero
    )
    say("final fit")
    fitted = make().fit(x, t, e)
    survival = fitted.task == "survival"
    grid = ibs_times(horizon, from_zero=ibs_from_zero)
    dev_risk = fitted.predict_risk(x)
    apparent, _ = point_metrics(
        t,
        e,
        dev_risk,
        horizon,
        risk_matrix=fitted.predict_risk_at(x, grid) if survival else None,
        ibs_from_zero=ibs_from_zero,
    )
    oof = assess(
        t,
        e,
        cv.oof_risk,
        horizon,
        risk_matrix=cv.oof_risk_matrix,
        bootstrap=bootstrap,
        seed=seed,
        thresholds=thresholds,
        policy=policy,
        ibs_from_zero=ibs_from_zero,
    )
    metrics: dict[str, float] = {
        **cv.summary,
        **_prefixed("oof_", oof.metrics),
        **_prefixed("apparent_", apparent),
    }
    warnings = [*cv.warnings, *(f"out-of-fold: {w}" for w in oof.warnings)]
    opt = None
    if optimism > 0:
        opt = optimism_bootstrap(
            make, x, t, e, horizon=horizon, apparent=apparent, replicates=optimism, seed=seed, progress=say
        )
        metrics.update(opt.metrics())
        warnings += list(opt.warnings)
    sub: dict[str, Any] | None = None
    if subgroups:
        say("subgroups")
        sub, gaps = subgroup_metrics(
            d[list(subgroups)],
            t,
            e,
            cv.oof_risk,
            horizon,
            policy=policy,
            risk_matrix=cv.oof_risk_matrix,
            ibs_from_zero=ibs_from_zero,
        )
        metrics.update(gaps)
    plots = {
        f"roc_{name}": pp.roc_plot(oof.roc, oof.metrics, title=f"{name} (out-of-fold)"),
        f"calibration_{name}": pp.calibration_plot(
            oof.curve, oof.deciles, cv.oof_risk, oof.metrics, title=f"{name} (out-of-fold)"
        ),
        f"dca_{name}": pp.decision_curve_plot(oof.decision_curve, title=f"{name} (out-of-fold)"),
    }
    res: dict[str, Any] = {
        "type": kind,
        "task": fitted.task,
        "horizon_days": horizon,
        "features": list(features),
        "n": len(t),
        "events": int((e == 1).sum()),
        "n_evaluable": int(oof.metrics.get("n_evaluable", 0)),
        # what the fit and the evaluation at the horizon rest on, released (toolkit.analysis.predict.counts)
        **horizon_counts(t, e, horizon, policy),
        **fit_counts(t, e, horizon, task=fitted.task, parameters=len(fitted.pre_.names_), policy=policy),
        "validation": {
            "cv_folds": cv_folds,
            "bootstrap": bootstrap,
            "optimism_bootstrap": optimism,
            "optimism_failed": opt.failed if opt else 0,
            "development": "all persons"
            if external is None
            else f"persons not in the external split ({external.description})",
        },
        "metrics": metrics,
        "folds": [dict(f) for f in cv.folds],
        **oof.to_dict(),
        "importance": fitted.importance(x),
        # binned, disclosure-safe distributions of the inputs and the risk: monitoring in service
        "reference": reference_distributions(
            x, dev_risk, policy=policy, training_ranges=fitted.training_ranges
        ),
    }
    if ibs_from_zero:  # absent by default, so existing results.json files are unchanged
        res["validation"]["ibs_from_zero"] = True
    res["warnings"] = list(dict.fromkeys(warnings))
    if sub is not None:
        res["subgroups"] = sub
    if fitted.search:
        res["search"] = {
            "metric": search_metric,
            "inner_folds": search_folds,
            "grid": {k: list(v) for k, v in fitted.search.items()},
            "best_params": fitted.best_params_,
            "scores": fitted.search_results_,
        }
    if external is not None:
        ext_res, ext_metrics, ext_plot = _external(
            fitted,
            frame.loc[external.mask],
            features,
            horizon,
            external,
            bootstrap,
            seed,
            thresholds,
            policy,
            name,
            ibs_from_zero,
        )
        res["external"] = ext_res
        metrics.update(ext_metrics)
        plots.update(ext_plot)
    coefficients = getattr(fitted, "coefficients", None)
    if coefficients is not None:
        res["coefficients"] = coefficients()
    return fitted, res, plots


def _external(
    fitted: RiskModel,
    ext: pd.DataFrame,
    features: Sequence[str],
    horizon: float,
    split: ExternalSplit,
    bootstrap: int,
    seed: int,
    thresholds: Sequence[float],
    policy: DisclosurePolicy,
    name: str,
    ibs_from_zero: bool = False,
) -> tuple[dict[str, Any], dict[str, float], dict[str, bytes]]:
    x = ext[list(features)]
    t = ext["time"].to_numpy(float)
    e = ext["event"].astype(int).to_numpy()
    risk = fitted.predict_risk(x)
    grid = ibs_times(horizon, from_zero=ibs_from_zero)
    matrix = fitted.predict_risk_at(x, grid) if fitted.task == "survival" else None
    a = assess(
        t,
        e,
        risk,
        horizon,
        risk_matrix=matrix,
        bootstrap=bootstrap,
        seed=seed,
        thresholds=thresholds,
        policy=policy,
        ibs_from_zero=ibs_from_zero,
    )
    metrics = _prefixed("external_", a.metrics)
    warnings = list(a.warnings)
    # recalibration: logit P(event by h) = a + b logit(risk); a censored outcome enters as
    # pseudo-observations (robust SEs); the recalibrated risk is expit(a + b logit(risk))
    if "calibration_slope" in a.metrics:
        metrics["external_recal_intercept"] = a.metrics["calibration_intercept"]
        metrics["external_recal_slope"] = a.metrics["calibration_slope"]
        metrics["external_recal_slope_lower"] = a.metrics["calibration_slope_lower"]
        metrics["external_recal_slope_upper"] = a.metrics["calibration_slope_upper"]
    plot = {
        f"calibration_external_{name}": pp.calibration_plot(
            a.curve, a.deciles, risk, a.metrics, title=f"{name} (external: {split.description})"
        )
    }
    out = {
        "split": split.description,
        "n": len(t),
        "events": int((e == 1).sum()),
        **horizon_counts(t, e, horizon, policy),
        **a.to_dict(),
    }
    out["warnings"] = warnings
    return out, metrics, plot
