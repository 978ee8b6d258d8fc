"""The analysis and model steps of a study: one function per analysis type, registered in a mapping.

Each analysis function takes the analysis spec, the cohort+features frame and the disclosure
policy, and returns ``(results.json entry, {plot name: PNG bytes})``.  New analysis types add a
spec class in :mod:`toolkit.study.spec` and a function here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from toolkit.analysis.describe import table1
from toolkit.analysis.plots import forest_plot, km_plot
from toolkit.analysis.predict.models import RiskModel
from toolkit.analysis.survival.cox import fit_cox
from toolkit.analysis.survival.km import kaplan_meier
from toolkit.disclosure import DisclosurePolicy
from toolkit.errors import AnalysisError, StudySpecError
from toolkit.study import spec as study_spec
from toolkit.study.spec import (
    AblationAnalysis,
    CoxAnalysis,
    KaplanMeierAnalysis,
    LogisticAnalysis,
    StudySpec,
    Table1Analysis,
)

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
        cause=a.cause,
    )
    return cox.to_dict(), {f"forest_{a.name}": forest_plot(cox, title=a.name)}


def _table1(a: Table1Analysis, frame: pd.DataFrame, policy: DisclosurePolicy) -> AnalysisResult:
    return table1(frame, a.variables, by=a.by, policy=policy, tests=a.tests).to_dict(), {}


def _logistic(a: LogisticAnalysis, frame: pd.DataFrame, policy: DisclosurePolicy) -> AnalysisResult:
    from toolkit.analysis.logistic import fit_logistic

    return fit_logistic(frame, outcome=a.outcome, covariates=a.covariates).to_dict(), {}


def _ablation(a: AblationAnalysis, frame: pd.DataFrame, policy: DisclosurePolicy) -> AnalysisResult:
    from toolkit.analysis.ablation import ablation_plot, run_ablation
    from toolkit.features.fusion import ablation_sets, feature_groups

    sets = ablation_sets(feature_groups(frame, a.structured))
    result = run_ablation(
        frame,
        sets,
        model=a.model,
        horizon=a.horizon_days,
        folds=a.folds,
        seed=a.seed,
        params=a.params,
        log=a.log,
    )
    return {"kind": "ablation", **result.to_dict()}, {
        f"ablation_{a.name}": ablation_plot(result, title=a.name)
    }


def _logrank(a: study_spec.LogRankAnalysis, frame: pd.DataFrame, policy: DisclosurePolicy) -> AnalysisResult:
    from toolkit.analysis.survival.logrank import logrank_test

    res = logrank_test(frame.assign(event=frame["event"].astype(int)), by=a.by, strata=a.strata)
    return res.to_dict(), {}


def _rmst(a: study_spec.RMSTAnalysis, frame: pd.DataFrame, policy: DisclosurePolicy) -> AnalysisResult:
    from toolkit.analysis.survival.rmst import rmst

    return rmst(frame.assign(event=frame["event"].astype(int)), tau=a.tau_days, by=a.by).to_dict(), {}


def _cumulative_incidence(
    a: study_spec.CIFAnalysis, frame: pd.DataFrame, policy: DisclosurePolicy
) -> AnalysisResult:
    from toolkit.analysis.cif_plot import cif_plot
    from toolkit.analysis.survival.cif import cumulative_incidence

    res = cumulative_incidence(
        frame.assign(event=frame["event"].astype(int)),
        by=a.by,
        strata=a.strata,
        times=a.times,
        causes=a.causes,
    )
    plot = cif_plot(res, title=a.name, policy=policy, ticks=[0.0, *a.times] if a.times else None)
    return res.to_dict(), {f"cif_{a.name}": plot}


def _fine_gray(
    a: study_spec.FineGrayAnalysis, frame: pd.DataFrame, policy: DisclosurePolicy
) -> AnalysisResult:
    from toolkit.analysis.survival.finegray import fine_gray

    res = fine_gray(frame.assign(event=frame["event"].astype(int)), covariates=a.covariates, cause=a.cause)
    return res.to_dict(), {}


ANALYSES: dict[type, Callable[[Any, pd.DataFrame, DisclosurePolicy], AnalysisResult]] = {
    AblationAnalysis: _ablation,
    KaplanMeierAnalysis: _kaplan_meier,
    CoxAnalysis: _cox,
    Table1Analysis: _table1,
    study_spec.LogRankAnalysis: _logrank,
    study_spec.RMSTAnalysis: _rmst,
    study_spec.CIFAnalysis: _cumulative_incidence,
    study_spec.FineGrayAnalysis: _fine_gray,
    LogisticAnalysis: _logistic,
}


def run_analysis(a: Any, frame: pd.DataFrame, policy: DisclosurePolicy) -> AnalysisResult:
    fn = ANALYSES.get(type(a))
    if fn is None:
        raise StudySpecError(f"no runner for analysis type {type(a).__name__}")
    return fn(a, frame, policy)


def run_model(
    m: Any, frame: pd.DataFrame, spec: StudySpec, *, progress: Callable[[str], object] | None = None
) -> tuple[RiskModel, dict[str, Any], dict[str, bytes]]:
    from toolkit.analysis.predict.develop import develop_model, external_split

    features = m.features or (list(spec.features.static) + [w.name for w in spec.features.windows])
    params: dict[str, Any] = {**m.params, "log": tuple(m.log)}
    params.setdefault("seed", spec.seed)  # XGBoost's seed; the inner folds of a search
    v = spec.validation
    external = None
    if v.external is not None:
        try:
            external = external_split(
                frame, by=v.external.by, values=v.external.values, index_after=v.external.index_after
            )
        except AnalysisError as exc:
            raise StudySpecError(f"study.yaml: {exc}") from None
    d = spec.disclosure
    return develop_model(
        frame,
        name=m.name,
        kind=m.type,
        features=features,
        horizon=m.horizon_days,
        params=params,
        splines=m.splines,
        search=m.search,
        search_folds=m.search_folds,
        search_metric=m.search_metric,
        cv_folds=v.cv_folds,
        seed=spec.seed,
        bootstrap=v.bootstrap,
        optimism=v.optimism_bootstrap,
        thresholds=v.thresholds,
        subgroups=list(getattr(spec.cohort, "subgroups", [])),
        external=external,
        policy=DisclosurePolicy(d.min_cell, d.rounding, d.enabled),
        progress=progress,
    )
