"""``regent analyze``: survival and competing-risks statistics on one table (CSV or Parquet).

Each command prints a short text summary, or with ``--json`` the same object a study writes to
``results.json`` for that analysis type.  Numeric columns enter models as they are; text columns
are categorical with their first sorted level as the reference.  Output is disclosure-controlled
like a study's (counts 1..min_cell-1 are withheld); ``--no-disclosure`` turns that off.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.errors import AnalysisError

if TYPE_CHECKING:  # pandas and the statistics load only when a command runs (fast CLI start)
    import pandas as pd

analyze_app = typer.Typer(
    help="Survival and competing-risks statistics on a CSV/Parquet table (event: 0 censored, 1 event, k>=2 competing).",
    no_args_is_help=True,
)

DataOpt = Annotated[Path, typer.Option("--data", help="CSV or Parquet file, one row per person")]
TimeOpt = Annotated[str, typer.Option("--time", help="Follow-up time column")]
EventOpt = Annotated[
    str, typer.Option("--event", help="Event column: 0 censored, 1 event, k>=2 competing cause k")
]
CovOpt = Annotated[str | None, typer.Option("--covariates", help="Comma-separated covariate columns")]
ByOpt = Annotated[str | None, typer.Option("--by", help="Grouping column")]
StrataOpt = Annotated[str | None, typer.Option("--strata", help="Stratification column")]
TiesOpt = Annotated[str, typer.Option("--ties", help="efron or breslow")]
TimesOpt = Annotated[str | None, typer.Option("--times", help="Comma-separated times, e.g. 365,730")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the results.json entry")]
PlotOpt = Annotated[Path | None, typer.Option("--plot", help="Write the plot (PNG) here")]
MinCellOpt = Annotated[int, typer.Option("--min-cell", help="Smallest count shown (disclosure control)")]
DisclosureOpt = Annotated[
    bool, typer.Option("--disclosure/--no-disclosure", help="Withhold counts below --min-cell")
]


def _read(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise AnalysisError(f"--data {path}: no such file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as exc:  # any reader failure becomes one clear message
        raise AnalysisError(
            f"--data {path}: not a readable CSV or Parquet file ({type(exc).__name__})"
        ) from None


def _columns(frame: pd.DataFrame, source: Path, **named: str | None) -> None:
    import pandas as pd

    for option, col in named.items():
        if col is not None and col not in frame.columns:
            raise AnalysisError(
                f"--{option} {col!r}: no such column in {source.name}; available: {list(frame.columns)}"
            )
    for option in ("time", "event"):
        col = named.get(option)
        if col is not None and not pd.api.types.is_numeric_dtype(frame[col]):
            raise AnalysisError(f"--{option} {col!r}: expected a numeric column")


def _split(value: str | None, option: str) -> list[str]:
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    if not items:
        raise AnalysisError(f"--{option} is required for this analysis (comma-separated column names)")
    return items


def _numbers(value: str | None, option: str) -> list[float]:
    if not value:
        return []
    out = []
    for v in value.split(","):
        try:
            x = float(v)
        except ValueError:
            raise AnalysisError(f"--{option}: {v.strip()!r} is not a number") from None
        if not math.isfinite(x) or x < 0:
            raise AnalysisError(f"--{option}: times must be finite and >= 0; got {v.strip()!r}")
        out.append(x)
    return out


def _ties(value: str) -> Any:
    if value not in ("efron", "breslow"):
        raise AnalysisError(f"--ties: expected 'efron' or 'breslow'; got {value!r}")
    return value


def _policy(min_cell: int, disclosure: bool) -> Any:
    from toolkit.disclosure import DisclosurePolicy

    if min_cell < 1:
        raise AnalysisError(f"--min-cell must be >= 1; got {min_cell} (use --no-disclosure to turn it off)")
    return DisclosurePolicy(min_cell=min_cell, enabled=disclosure)


def _json_safe(value: Any) -> Any:
    """Non-finite numbers (an infinite CI limit under separation) become null, as in results.json."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _emit(entry: dict[str, Any], *, as_json: bool, min_cell: int, disclosure: bool) -> None:
    from toolkit.disclosure import COUNT_KEYS

    policy = _policy(min_cell, disclosure)
    released = _json_safe(policy.scrub(entry, COUNT_KEYS))
    if as_json:
        sys.stdout.write(json.dumps(released, indent=2, allow_nan=False) + "\n")
        return
    from toolkit.cli.analyze_text import render

    sys.stdout.write(render(released) + "\n")
    if not disclosure:
        sys.stdout.write(policy.describe() + "\n")


def _write_plot(path: Path | None, png: bytes) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        sys.stderr.write(f"wrote {path}\n")


def _no_plot(path: Path | None, what: str) -> None:
    if path is not None:
        raise AnalysisError(f"--plot: there is no plot for {what}; plots exist for km, cox and cif")


@analyze_app.command("cox")
def cox(
    data: DataOpt,
    time: TimeOpt = "time",
    event: EventOpt = "event",
    covariates: CovOpt = None,
    strata: StrataOpt = None,
    ties: TiesOpt = "efron",
    cause: Annotated[int, typer.Option("--cause", help="Event code modelled (k>=2: cause-specific)")] = 1,
    cluster: Annotated[str | None, typer.Option("--cluster", help="Cluster column (robust SE)")] = None,
    robust: Annotated[bool, typer.Option("--robust", help="Robust (sandwich) SE")] = False,
    as_json: JsonOpt = False,
    plot: PlotOpt = None,
    min_cell: MinCellOpt = 10,
    disclosure: DisclosureOpt = True,
) -> None:
    """Cox proportional hazards (Efron/Breslow, strata, robust SE) with the cox.zph PH test."""
    from toolkit.analysis.plots import forest_plot
    from toolkit.analysis.survival.cox import fit_cox

    frame = _read(data)
    covs = _split(covariates, "covariates")
    _columns(frame, data, time=time, event=event, strata=strata, cluster=cluster)
    res = fit_cox(
        frame,
        time=time,
        event=event,
        covariates=covs,
        ties=_ties(ties),
        strata=strata,
        cluster=cluster,
        robust=robust,
        cause=cause,
    )
    _write_plot(plot, forest_plot(res, title="Cox model") if plot else b"")
    _emit(res.to_dict(), as_json=as_json, min_cell=min_cell, disclosure=disclosure)


@analyze_app.command("km")
def km(
    data: DataOpt,
    time: TimeOpt = "time",
    event: EventOpt = "event",
    by: ByOpt = None,
    strata: StrataOpt = None,
    times: TimesOpt = None,
    as_json: JsonOpt = False,
    plot: PlotOpt = None,
    min_cell: MinCellOpt = 10,
    disclosure: DisclosureOpt = True,
) -> None:
    """Kaplan-Meier by group (log-log CIs, medians, survival at --times) with the log-rank test."""
    from toolkit.analysis.plots import km_plot
    from toolkit.analysis.survival.km import kaplan_meier

    frame = _read(data)
    _columns(frame, data, time=time, event=event, by=by, strata=strata)
    at = _numbers(times, "times")
    res = kaplan_meier(frame, time=time, event=event, by=by, strata=strata, times=at)
    if plot:
        policy = _policy(min_cell, disclosure)
        _write_plot(plot, km_plot(res, policy=policy, ticks=[0.0, *at] if at else None))
    _emit(res.to_dict(), as_json=as_json, min_cell=min_cell, disclosure=disclosure)


@analyze_app.command("logrank")
def logrank(
    data: DataOpt,
    time: TimeOpt = "time",
    event: EventOpt = "event",
    by: ByOpt = None,
    strata: StrataOpt = None,
    as_json: JsonOpt = False,
    plot: PlotOpt = None,
    min_cell: MinCellOpt = 10,
    disclosure: DisclosureOpt = True,
) -> None:
    """Log-rank test across the levels of --by, optionally stratified (R's survdiff)."""
    from toolkit.analysis.survival.logrank import logrank_test

    _no_plot(plot, "logrank")
    frame = _read(data)
    if by is None:
        raise AnalysisError("--by is required for logrank (the grouping column)")
    _columns(frame, data, time=time, event=event, by=by, strata=strata)
    res = logrank_test(frame, time=time, event=event, by=by, strata=strata)
    _emit(res.to_dict(), as_json=as_json, min_cell=min_cell, disclosure=disclosure)


@analyze_app.command("rmst")
def rmst(
    data: DataOpt,
    time: TimeOpt = "time",
    event: EventOpt = "event",
    by: ByOpt = None,
    tau: Annotated[float | None, typer.Option("--tau", help="Horizon of the restricted mean")] = None,
    as_json: JsonOpt = False,
    plot: PlotOpt = None,
    min_cell: MinCellOpt = 10,
    disclosure: DisclosureOpt = True,
) -> None:
    """Restricted mean survival time to --tau per group, with differences and ratios."""
    from toolkit.analysis.survival.rmst import rmst as fit_rmst

    _no_plot(plot, "rmst")
    frame = _read(data)
    if tau is None:
        raise AnalysisError("--tau is required for rmst (the horizon, in the time column's unit)")
    _columns(frame, data, time=time, event=event, by=by)
    res = fit_rmst(frame, time=time, event=event, by=by, tau=tau)
    _emit(res.to_dict(), as_json=as_json, min_cell=min_cell, disclosure=disclosure)


@analyze_app.command("cif")
def cif(
    data: DataOpt,
    time: TimeOpt = "time",
    event: EventOpt = "event",
    by: ByOpt = None,
    strata: StrataOpt = None,
    times: TimesOpt = None,
    cause: Annotated[
        list[int] | None, typer.Option("--cause", help="Causes to report (repeat); default every code >= 1")
    ] = None,
    as_json: JsonOpt = False,
    plot: PlotOpt = None,
    min_cell: MinCellOpt = 10,
    disclosure: DisclosureOpt = True,
) -> None:
    """Aalen-Johansen cumulative incidence by group with Gray's test (--strata stratifies it)."""
    from toolkit.analysis.cif_plot import cif_plot
    from toolkit.analysis.survival.cif import cumulative_incidence

    frame = _read(data)
    _columns(frame, data, time=time, event=event, by=by, strata=strata)
    at = _numbers(times, "times")
    res = cumulative_incidence(
        frame, time=time, event=event, by=by, strata=strata, times=at, causes=cause or None
    )
    if plot:
        policy = _policy(min_cell, disclosure)
        _write_plot(plot, cif_plot(res, policy=policy, ticks=[0.0, *at] if at else None))
    _emit(res.to_dict(), as_json=as_json, min_cell=min_cell, disclosure=disclosure)


@analyze_app.command("finegray")
def finegray(
    data: DataOpt,
    time: TimeOpt = "time",
    event: EventOpt = "event",
    covariates: CovOpt = None,
    cause: Annotated[int, typer.Option("--cause", help="Event code of interest")] = 1,
    as_json: JsonOpt = False,
    plot: PlotOpt = None,
    min_cell: MinCellOpt = 10,
    disclosure: DisclosureOpt = True,
) -> None:
    """Fine-Gray subdistribution hazards regression for --cause (as cmprsk::crr)."""
    from toolkit.analysis.survival.finegray import fine_gray

    _no_plot(plot, "finegray")
    frame = _read(data)
    covs = _split(covariates, "covariates")
    _columns(frame, data, time=time, event=event)
    res = fine_gray(frame, time=time, event=event, covariates=covs, cause=cause)
    _emit(res.to_dict(), as_json=as_json, min_cell=min_cell, disclosure=disclosure)
