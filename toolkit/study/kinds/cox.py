"""Cox proportional hazards (Efron/Breslow, strata, robust/cluster SEs), with the cox.zph PH test."""

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
from toolkit.study.kinds.forest import forest_rows
from toolkit.study.kinds.regression import fit_with_policy, survival_outcome
from toolkit.study.kinds.textfmt import coefficients, g, n, p, table

if TYPE_CHECKING:
    import pandas as pd

    from toolkit.disclosure import DisclosurePolicy


class CoxAnalysis(AnalysisSpec):
    type: Literal["cox"]
    name: str
    covariates: list[str] = Field(min_length=1)
    ties: Literal["efron", "breslow"] = "efron"
    strata: str | None = None
    cluster: str | None = None
    robust: bool = False
    cause: int = Field(1, ge=1, description="Event code modelled; k >= 2 gives a cause-specific Cox model.")


def run(a: CoxAnalysis, frame: pd.DataFrame, policy: DisclosurePolicy, context: RunContext) -> AnalysisOutput:
    from toolkit.analysis.plots import forest_plot_rows
    from toolkit.analysis.survival.cox import fit_cox

    data = with_int_events(frame)

    def fit(d: pd.DataFrame) -> dict[str, Any]:
        return fit_cox(
            d,
            covariates=a.covariates,
            ties=a.ties,
            strata=a.strata,
            cluster=a.cluster,
            robust=a.robust,
            cause=a.cause,
        ).to_dict()

    entry = fit_with_policy(
        fit,
        data,
        a.covariates,
        context,
        outcome=survival_outcome(data, a.cause),
        ratio=("hr", "hr_lower", "hr_upper"),
    )
    used = data.dropna(subset=a.covariates) if entry["missing_data"]["method"] == "complete_case" else data
    rows = forest_rows(
        entry, a.covariates, data, used, (data["event"] == a.cause).to_numpy(), context, policy
    )
    return entry, {f"forest_{a.name}": forest_plot_rows(rows)}


def columns(a: CoxAnalysis) -> Iterator[ColumnRef]:
    return refs(covariates=a.covariates, strata=a.strata, cluster=a.cluster)


def text(d: dict[str, Any]) -> str:
    what = (
        "Cox proportional hazards" if d.get("cause", 1) == 1 else f"Cause-specific Cox (cause {d['cause']})"
    )
    out = [
        f"{what}, {d['ties']} ties; n = {n(d['n'])}, events = {n(d['events'])}"
        + (f", strata: {d['strata']}" if d.get("strata") else "")
        + (" (robust SE)" if d.get("robust") else ""),
        coefficients(d, "HR"),
        f"Likelihood-ratio test: chi2 = {g(d['lr_test']['chisq'])}, df = {d['lr_test']['df']}, "
        f"p = {p(d['lr_test']['p'])};  concordance = {g(d['concordance'], '.3f')}",
    ]
    ph = d.get("ph_test")
    if ph:
        rows = [[r["term"], g(r["chisq"]), str(r["df"]), p(r["p"])] for r in [*ph["terms"], ph["global"]]]
        out += [
            "Proportional-hazards test (cox.zph, transform km):",
            table(["term", "chisq", "df", "p"], rows),
        ]
    return "\n".join(out)


KIND = AnalysisKind(
    type="cox",
    spec=CoxAnalysis,
    title="Cox proportional hazards",
    run=run,
    columns=columns,
    text=text,
    template="cox.html.j2",
    command=Command(
        "cox",
        "Cox proportional hazards (Efron/Breslow, strata, robust SE) with the cox.zph PH test.",
        (
            Option("covariates", "columns", "Comma-separated covariate columns", required=True),
            Option("strata", "column", "Stratification column"),
            Option("ties", "choice", "efron or breslow", default="efron", choices=("efron", "breslow")),
            Option("cause", "integer", "Event code modelled (k>=2: cause-specific)", default=1),
            Option("cluster", "column", "Cluster column (robust SE)"),
            Option("robust", "flag", "Robust (sandwich) SE", default=False),
        ),
    ),
    protocol="cox",
)
