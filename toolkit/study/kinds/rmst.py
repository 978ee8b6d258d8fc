"""Restricted mean survival time to tau per group, with differences and ratios."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from toolkit.cohort.spec import Offset, parse_offset
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


class RMSTAnalysis(AnalysisSpec):
    """Restricted mean survival time to ``tau`` per group, with differences and ratios."""

    type: Literal["rmst"]
    name: str
    tau: Offset = Field(description="Horizon: '1826d', or a number of days.")
    by: str | None = None

    @model_validator(mode="after")
    def _positive_tau(self) -> RMSTAnalysis:
        if parse_offset(self.tau) <= 0:
            raise ValueError(f"tau must be a positive time such as '1826d'; got {self.tau!r}")
        return self

    @property
    def tau_days(self) -> float:
        return parse_offset(self.tau)


def run(
    a: RMSTAnalysis, frame: pd.DataFrame, policy: DisclosurePolicy, context: RunContext
) -> AnalysisOutput:
    from toolkit.analysis.survival.km import km_curve
    from toolkit.analysis.survival.release import rmst_entry
    from toolkit.analysis.survival.rmst import rmst

    data = with_int_events(frame)
    res = rmst(data, tau=a.tau_days, by=a.by)
    curves = {}
    for grp in res.groups:
        sel = data if a.by is None else data[data[a.by].astype(str) == grp.group]
        sel = sel.dropna(subset=["time", "event"])
        curves[grp.group] = km_curve(sel["time"].to_numpy(float), (sel["event"] == 1).to_numpy())
    marks = count_marks(data, a.by, policy, causes=(), taus=(float(a.tau_days),))
    return rmst_entry(res.to_dict(), curves, marks, policy), {}


def columns(a: RMSTAnalysis) -> Iterator[ColumnRef]:
    return refs(by=a.by)


def text(d: dict[str, Any]) -> str:
    rows = [
        [
            grp["group"],
            n(grp["n"], grp, "n"),
            g(grp["rmst"]),
            g(grp["se"]),
            f"{g(grp['lower'])}-{g(grp['upper'])}",
        ]
        for grp in d["groups"]
    ]
    out = [
        f"Restricted mean survival time to tau = {g(d['tau'])}",
        table(["group", "n", "RMST", "se", "95% CI"], rows),
    ]
    if d["contrasts"]:
        crow = [
            [
                f"{c['group']} - {c['reference']}",
                f"{g(c['difference'])} ({g(c['difference_lower'])} to {g(c['difference_upper'])})",
                p(c["difference_p"]),
                f"{g(c['ratio'], '.3f')} ({g(c['ratio_lower'], '.3f')}-{g(c['ratio_upper'], '.3f')})",
            ]
            for c in d["contrasts"]
        ]
        out.append(table(["contrast", "difference (95% CI)", "p", "ratio (95% CI)"], crow))
    return "\n".join(out)


def shows(a: RMSTAnalysis, frame: pd.DataFrame) -> Iterator[Tabulation]:
    from toolkit.disclosure.joint import Partition

    if a.by is not None:
        yield Partition(a.by, causes=(), taus=(float(a.tau_days),))


KIND = AnalysisKind(
    type="rmst",
    spec=RMSTAnalysis,
    title="Restricted mean survival time",
    run=run,
    columns=columns,
    text=text,
    template="rmst.html.j2",
    command=Command(
        "rmst",
        "Restricted mean survival time to --tau per group, with differences and ratios.",
        (
            Option("by", "column", "Grouping column"),
            Option(
                "tau", "number", "Horizon of the restricted mean, in the time column's unit", required=True
            ),
        ),
    ),
    protocol="event_counts",
    shows=shows,
)
