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
        """(survival, lower, upper, number at risk) at time ``t``, as R's ``summary(fit, times=)``.

        Survival and limits are the right-continuous step at ``t``; the number at risk counts
        the persons with time >= ``t`` (still at risk at ``t``, including those who have their
        event or are censored exactly at ``t``).
        """
        i = int(np.searchsorted(self.time, t, side="right")) - 1
        j = int(np.searchsorted(self.time, t, side="left"))  # first distinct time >= t
        n_risk = int(self.n_risk[j]) if j < len(self.n_risk) else 0
        if i < 0:
            return 1.0, 1.0, 1.0, n_risk
        return float(self.survival[i]), float(self.lower[i]), float(self.upper[i]), n_risk


_QUANTILE_TOL = math.sqrt(np.finfo(float).eps)  # R's quantile.survfit default tolerance


def _approx_constant_right(knots: np.ndarray, values: np.ndarray, v: float) -> float | None:
    """R's ``approx(knots, values, v, method = "constant", f = 1)$y`` (``None`` for NA).

    ``knots`` are distinct; outside their range the answer is NA; at a knot, that knot's
    value; strictly between two knots, the right-hand knot's value.
    """
    order = np.argsort(knots, kind="stable")
    k, val = knots[order], values[order]
    if len(k) == 0 or v < k[0] or v > k[-1]:
        return None
    i = int(np.searchsorted(k, v, side="right")) - 1  # k[i] <= v
    if k[i] == v or i == len(k) - 1:
        return float(val[i])
    return float(val[i + 1])


def _quantile_time(
    time: np.ndarray, curve: np.ndarray, level: float = 0.5, tol: float = _QUANTILE_TOL
) -> float | None:
    """The time a survival curve reaches ``level``, by R's rule (``survival:::findq``).

    The first time the curve is <= ``level``; when the curve sits exactly at ``level`` (within
    ``tol``), the midpoint between the time it reached it and the time it next drops, or the
    last follow-up time if it never drops.  NaN points of ``curve`` (R's NA confidence
    limits) are skipped; ``None`` when the curve never reaches the level.
    """
    p = 1.0 - level
    x = np.concatenate(([0.0], np.asarray(time, float)))  # R starts every curve at time 0
    y = np.concatenate(([0.0], 1.0 - np.asarray(curve, float)))
    if np.all(np.isnan(y)) or np.nanmax(y) < p:
        return None
    xmax = float(x[-1])
    # drop repeated values, keeping each one's first time (NaN repeats NaN, as R's duplicated)
    keep = ~pd.Series(y).duplicated().to_numpy()
    x, y = x[keep], y[keep]
    n = len(y)
    ok = ~np.isnan(y)
    idx = np.arange(n, dtype=float)
    i1 = _approx_constant_right(y[ok] + tol, idx[ok], p)
    i2 = _approx_constant_right(y[ok] - tol, idx[ok], p)
    quant = None if i1 is None or i2 is None else float((x[int(i1)] + x[int(i2)]) / 2.0)
    if not np.isnan(y[-1]) and abs(p - y[-1]) < tol and i1 is not None:
        # the curve ends exactly at the level: midpoint to the end of follow-up
        quant = float((x[int(i1)] + xmax) / 2.0)
    return quant


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
    # While the curve is 1 the log-log limits are undefined: R's survfit leaves them NA (and
    # reports 1 only at the time-0 row summary() adds); Regent reports the degenerate
    # interval [1, 1] instead.  Once the curve reaches 0 they are NaN, as R's NA.
    upper = np.where(surv == 1, 1.0, upper)
    lower = np.where(surv == 1, 1.0, lower)
    return KMCurve(
        group, uniq, n_risk.astype(int), n_event.astype(int), n_censor.astype(int), surv, se, lower, upper
    )


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
            raise AnalysisError(
                f"Kaplan-Meier: column {col!r} not in the data; available: {list(frame.columns)}"
            )
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
        # R's quantile.survfit: the lower survival limit gives the lower limit of the median
        # and the upper limit the upper one; the limits are NA (skipped) where S is 0 or 1
        lower_r = np.where((c.survival == 0) | (c.survival == 1), np.nan, c.lower)
        upper_r = np.where((c.survival == 0) | (c.survival == 1), np.nan, c.upper)
        med = _quantile_time(c.time, c.survival)
        med_lo = _quantile_time(c.time, lower_r)
        med_hi = _quantile_time(c.time, upper_r)
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
