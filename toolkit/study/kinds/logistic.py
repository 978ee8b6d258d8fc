"""Logistic regression of a 0/1 column (e.g. a horizon label such as ``label_365d``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from toolkit.study.kinds.base import AnalysisKind, AnalysisOutput, AnalysisSpec, ColumnRef, RunContext, refs
from toolkit.study.kinds.regression import fit_with_policy

if TYPE_CHECKING:
    import pandas as pd

    from toolkit.disclosure import DisclosurePolicy


class LogisticAnalysis(AnalysisSpec):
    """Logistic regression of a 0/1 column (e.g. a horizon label such as ``label_365d``)."""

    type: Literal["logistic"]
    name: str
    outcome: str
    covariates: list[str] = Field(min_length=1)


def run(
    a: LogisticAnalysis, frame: pd.DataFrame, policy: DisclosurePolicy, context: RunContext
) -> AnalysisOutput:
    from toolkit.analysis.logistic import fit_logistic

    def fit(d: pd.DataFrame) -> dict[str, Any]:
        return fit_logistic(d, outcome=a.outcome, covariates=a.covariates).to_dict()

    outcome = {"outcome": frame[a.outcome].astype(float).to_numpy()}
    return fit_with_policy(
        fit, frame, a.covariates, context, outcome=outcome, ratio=("odds_ratio", "or_lower", "or_upper")
    ), {}


def columns(a: LogisticAnalysis) -> Iterator[ColumnRef]:
    return refs(outcome=a.outcome, covariates=a.covariates)


KIND = AnalysisKind(
    type="logistic",
    spec=LogisticAnalysis,
    title="Logistic regression",
    run=run,
    columns=columns,
    template="logistic.html.j2",
    protocol="logistic",
)
