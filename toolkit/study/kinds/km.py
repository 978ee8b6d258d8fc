"""Kaplan-Meier survival by group (log-log CIs, medians, survival at declared times), log-rank."""

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
from toolkit.study.kinds.logrank import text as logrank_text
from toolkit.study.kinds.textfmt import g, n, table

if TYPE_CHECKING:
    import pandas as pd

    from toolkit.disclosure import DisclosurePolicy
    from toolkit.disclosure.joint import Tabulation


class KaplanMeierAnalysis(AnalysisSpec):
    type: Literal["kaplan_meier"]
    name: str
    by: str | None = None
    strata: str | None = None
    times: list[TimePoint] = Field(default_factory=list, description="Days (or durations: 90d, 6mo, 1y).")
    until: TimePoint | None = Field(
        None,
        description="End of the figure's time axis (default: the study's horizon, else the 90th "
        "percentile of follow-up); ticks and numbers at risk at readable steps up to it.",
    )
    censor_marks: bool = Field(False, description="Mark censoring times on the curves.")


def run(
    a: KaplanMeierAnalysis, frame: pd.DataFrame, policy: DisclosurePolicy, context: RunContext
) -> AnalysisOutput:
    from toolkit.analysis.plots import km_plot
    from toolkit.analysis.survival.km import kaplan_meier
    from toolkit.analysis.survival.release import km_entry

    data = with_int_events(frame)
    km = kaplan_meier(data, by=a.by, strata=a.strata, times=a.times)
    marks = count_marks(data, a.by, policy)
    plot = km_plot(
        km,
        policy=policy,
        text=curve_text(context, a.by),
        horizon=context.horizon,
        until=a.until,
        censor_marks=a.censor_marks,
        withheld_n=withheld_groups(marks),
    )
    curves = {g.curve.group: g.curve for g in km.groups}
    return km_entry(km.to_dict(), curves, marks, policy), {f"km_{a.name}": plot}


def columns(a: KaplanMeierAnalysis) -> Iterator[ColumnRef]:
    return refs(by=a.by, strata=a.strata)


def text(d: dict[str, Any]) -> str:
    rows = [
        [grp["group"], n(grp["n"], grp, "n"), n(grp["events"], grp, "events"),
         f"{g(grp['median'])} ({g(grp['median_lower'])}-{g(grp['median_upper'])})"
         if not grp.get("suppressed") else "not released"]
        for grp in d["groups"]
    ]  # fmt: skip
    out = ["Kaplan-Meier (log-log 95% CI)", table(["group", "n", "events", "median (95% CI)"], rows)]
    at = [
        [grp["group"], g(a["time"]), f"{g(a['survival'], '.3f')} ({g(a['lower'], '.3f')}-{g(a['upper'], '.3f')})"
         if not a.get("suppressed") else "not released", n(a["n_risk"])]
        for grp in d["groups"]
        for a in grp["at"]
    ]  # fmt: skip
    if at:
        out.append(table(["group", "time", "survival (95% CI)", "at risk"], at))
    if d.get("logrank"):
        out.append(logrank_text(d["logrank"]).splitlines()[0])
    if d.get("disclosure_note"):
        out.append(d["disclosure_note"])
    return "\n".join(out)


def shows(a: KaplanMeierAnalysis, frame: pd.DataFrame) -> Iterator[Tabulation]:
    from toolkit.disclosure.joint import Partition

    if a.by is not None:
        yield Partition(a.by)


KIND = AnalysisKind(
    type="kaplan_meier",
    spec=KaplanMeierAnalysis,
    title="Kaplan-Meier",
    run=run,
    columns=columns,
    text=text,
    template="kaplan_meier.html.j2",
    command=Command(
        "km",
        "Kaplan-Meier by group (log-log CIs, medians, survival at --times) with the log-rank test.",
        (
            Option("by", "column", "Grouping column"),
            Option("strata", "column", "Stratification column"),
            Option("times", "numbers", "Comma-separated times, e.g. 365,730"),
        ),
    ),
    protocol="event_counts",
    shows=shows,
)
