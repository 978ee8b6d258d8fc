"""The log-rank test of equal hazards across groups, and its Fleming-Harrington G^rho family."""

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
    count_marks,
    refs,
    with_int_events,
)
from toolkit.study.kinds.textfmt import g, n, p, table

if TYPE_CHECKING:
    import pandas as pd

    from toolkit.disclosure import DisclosurePolicy
    from toolkit.disclosure.joint import Tabulation


class LogRankAnalysis(AnalysisSpec):
    """Log-rank test of equal hazards across the levels of ``by`` (stratified with ``strata``)."""

    type: Literal["logrank"]
    name: str
    by: str
    strata: str | None = None
    rho: float = Field(
        0.0,
        ge=0,
        description="Fleming-Harrington G^rho weights S(t-)^rho from the pooled Kaplan-Meier: "
        "0 is the log-rank test, 1 the Peto-Peto test (R survdiff(rho=)).",
    )


def run(
    a: LogRankAnalysis, frame: pd.DataFrame, policy: DisclosurePolicy, context: RunContext
) -> AnalysisOutput:
    from toolkit.analysis.survival.logrank import logrank_test
    from toolkit.analysis.survival.release import logrank_entry

    kw: dict[str, Any] = {"rho": a.rho} if a.rho else {}
    data = with_int_events(frame)
    res = logrank_test(data, by=a.by, strata=a.strata, **kw)
    return logrank_entry(res.to_dict(), count_marks(data, a.by, policy), policy), {}


def columns(a: LogRankAnalysis) -> Iterator[ColumnRef]:
    return refs(by=a.by, strata=a.strata)


def text(d: dict[str, Any]) -> str:
    rho = d.get("rho") or 0
    if rho:
        rows = [
            [
                grp["group"],
                n(grp["events"], grp, "events"),
                g(grp["weighted_observed"], ".2f"),
                g(grp["weighted_expected"], ".2f"),
            ]
            for grp in d["groups"]
        ]
        header = ["group", "events", "weighted observed", "weighted expected"]
    else:
        rows = [
            [grp["group"], n(grp["observed"], grp, "observed"), g(grp["expected"], ".2f")]
            for grp in d["groups"]
        ]
        header = ["group", "observed", "expected"]
    name = "log-rank" if not rho else f"Fleming-Harrington G^{g(rho)}"
    head = ("Stratified " + name) if d.get("stratified") else name[0].upper() + name[1:]
    return "\n".join(
        [
            head + f" test: chi2 = {g(d['chisq'])}, df = {d['df']}, p = {p(d['p'])}",
            table(header, rows),
        ]
    )


def shows(a: LogRankAnalysis, frame: pd.DataFrame) -> Iterator[Tabulation]:
    from toolkit.disclosure.joint import Partition

    if a.by is not None:
        yield Partition(a.by)


KIND = AnalysisKind(
    type="logrank",
    spec=LogRankAnalysis,
    title="Log-rank test",
    run=run,
    columns=columns,
    text=text,
    template="logrank.html.j2",
    command=Command(
        "logrank",
        "Log-rank test across the levels of --by, optionally stratified (R's survdiff); --rho gives "
        "the Fleming-Harrington G^rho family (Peto-Peto at 1).",
        (
            Option("by", "column", "Grouping column", required=True),
            Option("strata", "column", "Stratification column"),
            Option("rho", "number", "Fleming-Harrington weight exponent (0: log-rank)", default=0.0),
        ),
    ),
    protocol="event_counts",
    shows=shows,
)
