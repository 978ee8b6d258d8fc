"""Aalen-Johansen cumulative incidence of each cause by group, with Gray's test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from toolkit.specs import TimePoint
from toolkit.study.kinds.base import (
    AnalysisKind,
    AnalysisOutput,
    AnalysisSpec,
    ColumnRef,
    Command,
    Option,
    RunContext,
    count_marks,
    curve_text,
    refs,
    with_int_events,
    withheld_groups,
)
from toolkit.study.kinds.textfmt import g, n, p, table

if TYPE_CHECKING:
    import pandas as pd

    from toolkit.disclosure import DisclosurePolicy
    from toolkit.disclosure.joint import Tabulation


class CIFAnalysis(AnalysisSpec):
    """Aalen-Johansen cumulative incidence of each cause by group, with Gray's test."""

    type: Literal["cumulative_incidence"]
    name: str
    by: str | None = None
    strata: str | None = Field(None, description="Stratifies Gray's test.")
    times: list[TimePoint] = Field(default_factory=list, description="Days (or durations: 90d, 6mo, 1y).")
    causes: list[int] | None = Field(None, description="Event codes to report (default: all >= 1).")
    until: TimePoint | None = Field(
        None,
        description="End of the figure's time axis (default: the study's horizon, else the 90th "
        "percentile of follow-up).",
    )
    censor_marks: bool = Field(False, description="Mark censoring times on the curves.")


def run(a: CIFAnalysis, frame: pd.DataFrame, policy: DisclosurePolicy, context: RunContext) -> AnalysisOutput:
    from toolkit.analysis.cif_plot import cif_plot
    from toolkit.analysis.survival.cif import cumulative_incidence
    from toolkit.analysis.survival.release import cif_entry

    data = with_int_events(frame)
    res = cumulative_incidence(data, by=a.by, strata=a.strata, times=a.times, causes=a.causes)
    marks = count_marks(data, a.by, policy, causes=tuple(res.causes), per_cause=True)
    causes = context.dictionary.level_labels("event")  # dictionary: event: {levels: {1: ..., 2: ...}}
    plot = cif_plot(
        res,
        policy=policy,
        text=curve_text(context, a.by),
        horizon=context.horizon,
        until=a.until,
        censor_marks=a.censor_marks,
        cause_labels={int(k): v for k, v in causes.items() if k.isdigit()},
        withheld_n=withheld_groups(marks),
    )
    curves = {g.curve.group: g.curve for g in res.groups}
    return cif_entry(res.to_dict(), curves, marks, policy), {f"cif_{a.name}": plot}


def columns(a: CIFAnalysis) -> Iterator[ColumnRef]:
    return refs(by=a.by, strata=a.strata)


def text(d: dict[str, Any]) -> str:
    rows = [
        [grp["group"], str(c["cause"]), n(grp["n"], grp, "n"), n(c["events"], c, "events")]
        for grp in d["groups"]
        for c in grp["causes"]
    ]
    out = [
        "Cumulative incidence (Aalen-Johansen, log 95% CI)",
        table(["group", "cause", "n", "events"], rows),
    ]
    at = [
        [grp["group"], str(c["cause"]), g(a["time"]),
         f"{g(a['cif'], '.3f')} ({g(a['lower'], '.3f')}-{g(a['upper'], '.3f')})"
         if not a.get("suppressed") else "not released", n(a["n_risk"])]
        for grp in d["groups"]
        for c in grp["causes"]
        for a in c["at"]
    ]  # fmt: skip
    if at:
        out.append(table(["group", "cause", "time", "cumulative incidence (95% CI)", "at risk"], at))
    for t in d.get("gray", []):
        out.append(
            f"Gray's test, cause {t['cause']}: chi2 = {g(t['chisq'])}, df = {t['df']}, p = {p(t['p'])}"
        )
    if d.get("disclosure_note"):
        out.append(d["disclosure_note"])
    return "\n".join(out)


def shows(a: CIFAnalysis, frame: pd.DataFrame) -> Iterator[Tabulation]:
    from toolkit.disclosure.joint import Partition

    if a.by is not None:
        codes = frame["event"].dropna().astype(int)
        causes = a.causes or sorted(int(k) for k in codes[codes > 0].unique())
        yield Partition(a.by, causes=tuple(causes))


KIND = AnalysisKind(
    type="cumulative_incidence",
    spec=CIFAnalysis,
    title="Cumulative incidence (competing risks)",
    run=run,
    columns=columns,
    text=text,
    template="cumulative_incidence.html.j2",
    command=Command(
        "cif",
        "Aalen-Johansen cumulative incidence by group with Gray's test (--strata stratifies it).",
        (
            Option("by", "column", "Grouping column"),
            Option("strata", "column", "Stratification column"),
            Option("times", "numbers", "Comma-separated times, e.g. 365,730"),
            Option("cause", "integers", "Causes to report (repeat); default every code >= 1", field="causes"),
        ),
    ),
    protocol="event_counts",
    shows=shows,
)
