"""Modality ablation: one model cross-validated on structured, +notes, +images and all features."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from toolkit.cohort.spec import parse_offset
from toolkit.specs import PositiveDuration
from toolkit.study.kinds.base import AnalysisKind, AnalysisOutput, AnalysisSpec, ColumnRef, RunContext, refs

if TYPE_CHECKING:
    import pandas as pd

    from toolkit.disclosure import DisclosurePolicy


class AblationAnalysis(AnalysisSpec):
    """Modality ablation: one model cross-validated on structured, +notes, +images and all features."""

    type: Literal["ablation"]
    name: str
    model: Literal["cox", "xgboost_survival"] = "cox"
    horizon: PositiveDuration = "365d"
    structured: list[str] | None = Field(None, description="Structured features (default: static + windows).")
    log: list[str] = Field(default_factory=list, description="Numeric features modelled on the log scale.")
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)
    folds: int = Field(5, ge=2, le=20)
    seed: int = 0

    @property
    def horizon_days(self) -> float:
        return parse_offset(self.horizon)


def run(
    a: AblationAnalysis, frame: pd.DataFrame, policy: DisclosurePolicy, context: RunContext
) -> AnalysisOutput:
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
    return {"kind": "ablation", **result.to_dict()}, {f"ablation_{a.name}": ablation_plot(result, title="")}


def columns(a: AblationAnalysis) -> Iterator[ColumnRef]:
    return refs(structured=a.structured)


KIND = AnalysisKind(
    type="ablation",
    spec=AblationAnalysis,
    title="Modality ablation",
    run=run,
    columns=columns,
    template="ablation.html.j2",
    not_federated="cross-validated model comparison needs row-level predictions",
)
