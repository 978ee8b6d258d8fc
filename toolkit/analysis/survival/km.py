"""Kaplan-Meier estimation by group, with log-log confidence intervals (as R's
``survfit(..., conf.type = "log-log")``), medians with CIs, survival at chosen times and
numbers at risk; the log-rank test (plain and stratified) lives in :mod:`.logrank`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from toolkit.analysis.survival.logrank import LogRankResult, logrank_test
from toolkit.errors import AnalysisError


@dataclass(frozen=True)
class KMCurve:
    """A Kaplan-Meier curve at its distinct times (events and censorings)."""

    group: str
    time: np.ndarray
    n_risk: np.ndarray
    n_event: np.ndarray
    n_censor: np.ndarray
    survival: np.ndarray
    std_err: np.ndarray  # standard error of the cumulative hazard (Greenwood), as R's survfit
    lower: np.ndarray
    upper: np.ndarray

    @property
    def n(self) -> int:
        return int(self.n_risk[0]) if len(self.n_risk) else 0

    @property
    def events(self) -> int:
        return int(self.n_event.sum())

    def at(self, t: float) -> tuple[float, float, float, int]:
        """(survival, lower, upper, number at risk) at time ``t`` (right-continuous step)."""
        i = int(np.searchsorted(self.time, t, side="right")) - 1
        n_risk = int(self.n_risk[i + 1]) if i + 1 < len(self.n_risk) else 0
        if i < 0:
            return 1.0, 1.0, 1.0, self.n
        return float(self.survival[i]), float(self.lower[i]), float(self.upper[i]), n_risk


def _first_below(time: np.ndarray, s: np.ndarray, level: float = 0.5) -> float | None:
    """R's quantile rule: the first time the curve is <= level; midpoint if it equals level."""
    eps = 1e-10
    below = np.nonzero(s <= level + eps)[0]
    if len(below) == 0:
        return None
    i = int(below[0])
    if abs(s[i] - level) < eps:
        # the curve sits exactly at the level: midpoint to the next time it drops
        later = np.nonzero(s < level - eps)[0]
        if len(later) == 0:
            return None  # never drops below: R reports the upper end as NA
        return float((time[i] + time[int(later[0])]) / 2.0)
    return float(time[i])


def km_curve(time: np.ndarray, event: np.ndarray, *, group: str = "all", conf_level: float = 0.95) -> KMCurve:
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(int) == 1
    if len(time) == 0:
        raise AnalysisError(f"Kaplan-Meier: group {group!r} has no persons")
    order = np.argsort(time, kind="stable")
    t, e = time[order], event[order]
    uniq, first = np.unique(t, return_index=True)
    n_total = len(t)
    n_risk = n_total - first
    n_event = np.add.reduceat(e.astype(int), first)
    n_censor = np.add.reduceat((~e).astype(int), first)
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(1.0 - n_event / n_risk)
        term = np.where(n_risk > n_event, n_event / (n_risk * (n_risk - n_event)), np.inf)
        term = np.where(n_event == 0, 0.0, term)
        se = np.sqrt(np.cumsum(term))
        z = stats.norm.ppf(1 - (1 - conf_level) / 2)
        xx = np.where((surv == 0) | (surv == 1), np.nan, np.log(surv))
        upper = np.exp(-np.exp(np.log(-xx) + z * se / xx))
        lower = np.exp(-np.exp(np.log(-xx) - z * se / xx))
    # R fills the limits with 1 while the curve is 1, and leaves NA once it reaches 0
    upper = np.where(surv == 1, 1.0, upper)
    lower = np.where(surv == 1, 1.0, lower)
    return KMCurve(group, uniq, n_risk.astype(int), n_event.astype(int), n_censor.astype(int),
                   surv, se, lower, upper)


@dataclass(frozen=True)
class KMGroup:
    curve: KMCurve
    median: float | None
    median_lower: float | None
    median_upper: float | None
    at: tuple[tuple[float, float, float, float, int], ...]  # time, surv, lower, upper, n_risk


@dataclass(frozen=True)
class KMResult:
    groups: tuple[KMGroup, ...]
    by: str | None
    logrank: LogRankResult | None
    conf_level: float = 0.95
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, object]:
        return {
            "type": "kaplan_meier",
            "by": self.by,
            "conf_type": "log-log",
            "conf_level": self.conf_level,
            "groups": [
                {
                    "group": g.curve.group,
                    "n": g.curve.n,
                    "events": g.curve.events,
                    "median": g.median,
                    "median_lower": g.median_lower,
                    "median_upper": g.median_upper,
                    "at": [
                        {"time": t, "survival": _f(s), "lower": _f(lo), "upper": _f(up), "n_risk": n}
                        for t, s, lo, up, n in g.at
                    ],
                }
                for g in self.groups
            ],
            "logrank": self.logrank.to_dict() if self.logrank else None,
            "warnings": list(self.warnings),
        }

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(g.curve.group)}</td><td>{g.curve.n}</td><td>{g.curve.events}</td>"
            f"<td>{_fmt(g.median)} ({_fmt(g.median_lower)}–{_fmt(g.median_upper)})</td></tr>"
            for g in self.groups
        )
        lr = (
            f"<p>Log-rank χ²={self.logrank.chisq:.2f}, df={self.logrank.df}, p={self.logrank.p:.3g}</p>"
            if self.logrank
            else ""
        )
        return (
            "<table><tr><th>group</th><th>n</th><th>events</th><th>median (95% CI)</th></tr>"
            f"{rows}</table>{lr}"
        )


def _f(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _fmt(x: float | None) -> str:
    return "NA" if x is None else f"{x:.0f}"


def kaplan_meier(
    frame: pd.DataFrame,
    *,
    time: str = "time",
    event: str = "event",
    by: str | None = None,
    strata: str | None = None,
    times: Sequence[float] = (),
    conf_level: float = 0.95,
) -> KMResult:
    """Kaplan-Meier curves by ``by`` (all persons if None), with a log-rank test across groups.

    ``event`` == 1 is the event; any other value (0 censored, k >= 2 competing) is treated as
    censored, as a cause-specific curve.  ``strata`` stratifies the log-rank test.
    """
    for col in (time, event, by, strata):
        if col is not None and col not in frame.columns:
            raise AnalysisError(f"Kaplan-Meier: column {col!r} not in the data; available: {list(frame.columns)}")
    data = frame.dropna(subset=[c for c in (time, event, by) if c is not None])
    warnings: list[str] = []
    if len(data) < len(frame):
        warnings.append(f"{len(frame) - len(data)} rows with missing time, event or group were left out")
    ev = (data[event].astype(int) == 1).astype(int).to_numpy()
    groups: list[KMGroup] = []
    labels = ["all"] if by is None else sorted(data[by].astype(str).unique())
    for label in labels:
        mask = np.ones(len(data), bool) if by is None else (data[by].astype(str) == label).to_numpy()
        c = km_curve(data[time].to_numpy(float)[mask], ev[mask], group=label, conf_level=conf_level)
        med = _first_below(c.time, c.survival)
        med_lo = _first_below(c.time, np.where(np.isnan(c.upper), c.survival, c.upper))
        med_hi = _first_below(c.time, np.where(np.isnan(c.lower), 0.0, c.lower))
        at = []
        for t in times:
            s, lo, up, n_risk = c.at(float(t))
            if n_risk == 0 and t > c.time[-1]:
                warnings.append(f"group {label!r}: nobody at risk at time {t}; survival carried forward")
            at.append((float(t), s, lo, up, n_risk))
        groups.append(KMGroup(c, med, med_lo, med_hi, tuple(at)))
    lr = None
    if by is not None and len(labels) > 1:
        lr = logrank_test(data, time=time, event=event, by=by, strata=strata)
    return KMResult(tuple(groups), by, lr, conf_level, tuple(warnings))
