"""Table 1: the cohort described by group (mean (SD), median [IQR], n (%)), optional tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from toolkit.study.kinds.base import AnalysisKind, AnalysisOutput, AnalysisSpec, ColumnRef, RunContext, refs

if TYPE_CHECKING:
    import pandas as pd

    from toolkit.disclosure import DisclosurePolicy
    from toolkit.disclosure.joint import Tabulation


class Table1Analysis(AnalysisSpec):
    type: Literal["table1"]
    name: str
    by: str | None = None
    variables: list[str] = Field(min_length=1)
    tests: bool = Field(
        False, description="Add a p-value per variable (t/ANOVA, Wilcoxon/Kruskal-Wallis, chi-squared)."
    )


def run(
    a: Table1Analysis, frame: pd.DataFrame, policy: DisclosurePolicy, context: RunContext
) -> AnalysisOutput:
    from toolkit.analysis.describe import table1

    return table1(frame, a.variables, by=a.by, policy=policy, tests=a.tests).to_dict(), {}


def columns(a: Table1Analysis) -> Iterator[ColumnRef]:
    return refs(by=a.by, variables=a.variables)


def shows(a: Table1Analysis, frame: pd.DataFrame) -> Iterator[Tabulation]:
    from toolkit.analysis.describe import is_numeric
    from toolkit.disclosure.joint import Crosstab

    for v in a.variables:
        yield Crosstab(v, a.by, numeric=is_numeric(frame[v]))


KIND = AnalysisKind(
    type="table1",
    spec=Table1Analysis,
    title="Table 1",
    run=run,
    columns=columns,
    template="table1.html.j2",
    protocol="table1",
    shows=shows,
)
