"""Fine-Gray subdistribution hazards regression for one cause (as R cmprsk::crr)."""

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
from toolkit.study.kinds.regression import competing_outcome, fit_with_policy
from toolkit.study.kinds.textfmt import coefficients, n

if TYPE_CHECKING:
    import pandas as pd

    from toolkit.disclosure import DisclosurePolicy


class FineGrayAnalysis(AnalysisSpec):
    """Fine-Gray subdistribution hazards regression for one cause (as R cmprsk::crr)."""

    type: Literal["fine_gray"]
    name: str
    covariates: list[str] = Field(min_length=1)
    cause: int = Field(1, ge=1, description="Event code of interest; other codes >= 1 compete.")


def run(
    a: FineGrayAnalysis, frame: pd.DataFrame, policy: DisclosurePolicy, context: RunContext
) -> AnalysisOutput:
    from toolkit.analysis.survival.finegray import fine_gray

    data = with_int_events(frame)

    def fit(d: pd.DataFrame) -> dict[str, Any]:
        return fine_gray(d, covariates=a.covariates, cause=a.cause).to_dict()

    return fit_with_policy(
        fit,
        data,
        a.covariates,
        context,
        outcome=competing_outcome(data),
        ratio=("shr", "shr_lower", "shr_upper"),
    ), {}


def columns(a: FineGrayAnalysis) -> Iterator[ColumnRef]:
    return refs(covariates=a.covariates)


def text(d: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"Fine-Gray subdistribution hazards, cause {d['cause']}; n = {n(d['n'])}, "
            f"events = {n(d['events'])}, competing events = {n(d['competing']['events'])}",
            coefficients(d, "SHR"),
        ]
    )


KIND = AnalysisKind(
    type="fine_gray",
    spec=FineGrayAnalysis,
    title="Fine-Gray subdistribution hazards",
    run=run,
    columns=columns,
    text=text,
    template="fine_gray.html.j2",
    command=Command(
        "finegray",
        "Fine-Gray subdistribution hazards regression for --cause (as cmprsk::crr).",
        (
            Option("covariates", "columns", "Comma-separated covariate columns", required=True),
            Option("cause", "integer", "Event code of interest", default=1),
        ),
    ),
    not_federated="the Fine-Gray model's censoring weights are not implemented in the federated protocol",
)
