"""Parametric accelerated failure time models (Weibull, log-normal, log-logistic), as R's survreg."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from toolkit.study.kinds.base import (
    AnalysisKind,
    AnalysisOutput,
    AnalysisSpec,
    ColumnRef,
    Command,
    Option,
    RunContext,
    refs,
    with_int_events,
)
from toolkit.study.kinds.regression import fit_with_policy, survival_outcome
from toolkit.study.kinds.textfmt import g, n, p, table

if TYPE_CHECKING:
    import pandas as pd

    from toolkit.disclosure import DisclosurePolicy


class AFTAnalysis(AnalysisSpec):
    """An accelerated failure time model: log T = x'beta + sigma W (R survreg)."""

    type: Literal["aft"]
    name: str
    dist: Literal["weibull", "lognormal", "loglogistic"] = Field(
        "weibull", description="The distribution of T: weibull, lognormal or loglogistic."
    )
    covariates: list[str] = Field(default_factory=list, description="Covariates (none: intercept only).")


def run(a: AFTAnalysis, frame: pd.DataFrame, policy: DisclosurePolicy, context: RunContext) -> AnalysisOutput:
    from toolkit.analysis.survival.aft import fit_aft

    data = with_int_events(frame)

    def fit(d: pd.DataFrame) -> dict[str, Any]:
        return fit_aft(d, covariates=a.covariates, dist=a.dist).to_dict()

    return fit_with_policy(fit, data, a.covariates, context, outcome=survival_outcome(data)), {}


def columns(a: AFTAnalysis) -> Iterator[ColumnRef]:
    return refs(covariates=a.covariates)


def text(d: dict[str, Any]) -> str:
    rows = [[c["term"], g(c["coef"]), g(c["se"]), g(c["z"], ".3f"), p(c["p"])] for c in d["coefficients"]]
    return "\n".join(
        [
            f"Accelerated failure time model ({d['dist']}); n = {n(d['n'])}, events = {n(d['events'])}, "
            f"scale = {g(d['scale'])}, log-likelihood = {g(d['loglik'], '.6g')}",
            table(["term", "coef", "se", "z", "p"], rows),
            "coef: effect on log survival time (exp(coef) multiplies the time: > 1 lengthens it)",
        ]
    )


KIND = AnalysisKind(
    type="aft",
    spec=AFTAnalysis,
    title="Accelerated failure time model",
    run=run,
    columns=columns,
    text=text,
    template="aft.html.j2",
    command=Command(
        "aft",
        "Parametric accelerated failure time model (Weibull, log-normal, log-logistic), as R's survreg.",
        (
            Option("covariates", "columns", "Comma-separated covariate columns (none: intercept only)"),
            Option(
                "dist",
                "choice",
                "weibull, lognormal or loglogistic",
                default="weibull",
                choices=("weibull", "lognormal", "loglogistic"),
            ),
        ),
    ),
    not_federated="the AFT likelihood is not yet a federated protocol (sites would return score and "
    "information sums per iteration, as for Cox)",
)
