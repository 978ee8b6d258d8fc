"""The analysis and model steps of a study: one function per analysis type, registered in a mapping.

Each analysis function takes the analysis spec, the cohort+features frame and the disclosure
policy, and returns ``(results.json entry, {plot name: PNG bytes})``.  New analysis types add a
spec class in :mod:`toolkit.study.spec` and a function here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from toolkit.analysis.describe import table1
from toolkit.analysis.plots import calibration_plot, forest_plot, km_plot
from toolkit.analysis.predict.evaluate import cross_validate, survival_metrics
from toolkit.analysis.predict.models import RiskModel, make_model
from toolkit.analysis.survival.cox import fit_cox
from toolkit.analysis.survival.km import kaplan_meier, km_curve
from toolkit.errors import StudySpecError
from toolkit.privacy.disclosure import DisclosurePolicy
from toolkit.study.spec import CoxAnalysis, KaplanMeierAnalysis, StudySpec, Table1Analysis

AnalysisResult = tuple[dict[str, Any], dict[str, bytes]]


def _kaplan_meier(a: KaplanMeierAnalysis, frame: pd.DataFrame, policy: DisclosurePolicy) -> AnalysisResult:
    km = kaplan_meier(frame.assign(event=frame["event"].astype(int)), by=a.by, strata=a.strata, times=a.times)
    plot = km_plot(km, title=a.name, policy=policy, ticks=[0.0, *a.times] if a.times else None)
    return km.to_dict(), {f"km_{a.name}": plot}


def _cox(a: CoxAnalysis, frame: pd.DataFrame, policy: DisclosurePolicy) -> AnalysisResult:
    cox = fit_cox(
        frame.assign(event=frame["event"].astype(int)),
        covariates=a.covariates,
        ties=a.ties,
        strata=a.strata,
        cluster=a.cluster,
        robust=a.robust,
    )
    return cox.to_dict(), {f"forest_{a.name}": forest_plot(cox, title=a.name)}


def _table1(a: Table1Analysis, frame: pd.DataFrame, policy: DisclosurePolicy) -> AnalysisResult:
    return table1(frame, a.variables, by=a.by, policy=policy).to_dict(), {}


ANALYSES: dict[type, Callable[[Any, pd.DataFrame, DisclosurePolicy], AnalysisResult]] = {
    KaplanMeierAnalysis: _kaplan_meier,
    CoxAnalysis: _cox,
    Table1Analysis: _table1,
}


def run_analysis(a: Any, frame: pd.DataFrame, policy: DisclosurePolicy) -> AnalysisResult:
    fn = ANALYSES.get(type(a))
    if fn is None:
        raise StudySpecError(f"no runner for analysis type {type(a).__name__}")
    return fn(a, frame, policy)


def run_model(
    m: Any, frame: pd.DataFrame, spec: StudySpec
) -> tuple[RiskModel, dict[str, Any], dict[str, bytes]]:
    horizon = m.horizon_days
    features = m.features or (list(spec.features.static) + [w.name for w in spec.features.windows])
    params: dict[str, Any] = {**m.params, "log": tuple(m.log)}
    if m.type == "xgboost_survival":
        params.setdefault("seed", spec.seed)
    x = frame[features]
    t = frame["time"].to_numpy(float)
    e = frame["event"].astype(int).to_numpy()

    def make() -> RiskModel:
        return make_model(m.type, horizon=horizon, features=features, params=params)

    cv = cross_validate(make, x, t, e, horizon=horizon, folds=spec.validation.cv_folds, seed=spec.seed)
    fitted = make().fit(x, t, e)
    apparent = survival_metrics(t, e, fitted.predict_risk(x), horizon)
    metrics = {**cv.summary, **{f"apparent_{k}": v for k, v in apparent.items() if k not in ("n", "events")}}
    # calibration by decile of out-of-fold predicted risk (Kaplan-Meier observed)
    bins = pd.qcut(cv.oof_risk, 10, labels=False, duplicates="drop")
    pred, obs = [], []
    for b in np.unique(bins):
        sel = bins == b
        pred.append(float(cv.oof_risk[sel].mean()))
        obs.append(1.0 - km_curve(t[sel], (e[sel] == 1).astype(int)).at(horizon)[0])
    plots = {
        f"calibration_{m.name}": calibration_plot(
            np.array(pred), np.array(obs), title=f"{m.name} (out-of-fold)"
        )
    }
    res = {
        "type": m.type,
        "task": "survival",
        "horizon_days": horizon,
        "features": features,
        "n": len(t),
        "events": int((e == 1).sum()),
        "metrics": metrics,
        "folds": [dict(f) for f in cv.folds],
        "calibration_deciles": [
            {"predicted_risk": p, "observed_risk": o} for p, o in zip(pred, obs, strict=True)
        ],
    }
    if m.type == "cox":
        res["coefficients"] = fitted.coefficients()  # type: ignore[attr-defined]
    return fitted, res, plots
