"""The model step of a study (the analysis step is each kind's own ``run``: :mod:`toolkit.study.kinds`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from toolkit.analysis.predict.develop import ModelPlan
from toolkit.analysis.predict.models import RiskModel
from toolkit.disclosure import DisclosurePolicy
from toolkit.errors import AnalysisError, StudySpecError
from toolkit.study.spec import ModelSpecItem, StudySpec


def model_plan(m: ModelSpecItem, frame: pd.DataFrame, spec: StudySpec) -> ModelPlan:
    """The development plan of one study model: its spec, the study's validation and subgroups."""
    from toolkit.analysis.predict.develop import external_split

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
    return ModelPlan(
        name=m.name,
        kind=m.type,
        features=tuple(features),
        horizon=m.horizon_days,
        params=params,
        splines=tuple(m.splines),
        search=m.search,
        search_folds=m.search_folds,
        search_metric=m.search_metric,
        cv_folds=v.cv_folds,
        seed=spec.seed,
        bootstrap=v.bootstrap,
        optimism=v.optimism_bootstrap,
        thresholds=tuple(v.thresholds),
        subgroups=tuple(getattr(spec.cohort, "subgroups", [])),
        external=external,
        ibs_from_zero=v.ibs_from_zero,
    )


def run_model(
    m: ModelSpecItem,
    frame: pd.DataFrame,
    spec: StudySpec,
    *,
    progress: Callable[[str], object] | None = None,
    policy: DisclosurePolicy | None = None,
) -> tuple[RiskModel, dict[str, Any], dict[str, bytes]]:
    """Develop one study model on the cohort+features frame (toolkit.analysis.predict.develop);
    ``policy``: the run's (its subgroup table withholds what the run's other tables do)."""
    from toolkit.analysis.predict.develop import develop_model

    d = spec.disclosure
    policy = policy or DisclosurePolicy(d.min_cell, d.rounding, d.enabled)
    return develop_model(frame, model_plan(m, frame, spec), policy=policy, progress=progress)
