"""Restricted mean survival time (RMST) at a horizon ``tau``, by group, with between-group
contrasts.

The RMST of a group is the area under its Kaplan-Meier curve from 0 to ``tau``; its variance is
the Greenwood-type estimator R's ``survival`` uses for ``print(survfit(...), rmean = tau)``
(``survival:::survmean``; also the estimator of ``survRM2::rmst2``)::

    Var(RMST) = sum over event times t_j <= tau of A(t_j, tau)**2 * d_j / (Y_j * (Y_j - d_j))

where ``A(t_j, tau)`` is the area under the curve between ``t_j`` and ``tau``.  Each group is
compared with the reference group (the first in sorted order): the difference
``RMST_g - RMST_ref`` with a normal CI (variances add, groups are independent), and the ratio
``RMST_g / RMST_ref`` with a CI on the log scale (delta method), as ``survRM2``.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from toolkit.analysis.survival.km import KMCurve, km_curve
from toolkit.errors import AnalysisError


@dataclass(frozen=True)
class RMSTGroup:
    group: str
    n: int
    events: int  # events up to and including tau
    rmst: float
    se: float
    lower: float
    upper: float


@dataclass(frozen=True)
class RMSTContrast:
    group: str
    reference: str
    difference: float
    difference_se: float
    difference_lower: float
    difference_upper: float
    difference_p: float | None
    ratio: float | None
    ratio_lower: float | None
    ratio_upper: float | None
    ratio_p: float | None


@dataclass(frozen=True)
class RMSTResult:
    tau: float
    by: str | None
    groups: tuple[RMSTGroup, ...]
    contrasts: tuple[RMSTContrast, ...]
    conf_level: float = 0.95
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "type": "rmst",
            "tau": self.tau,
            "by": self.by,
            "conf_level": self.conf_level,
            "variance": "greenwood (R survival:::survmean)",
            "groups": [dict(g.__dict__) for g in self.groups],
            "contrasts": [dict(c.__dict__) for c in self.contrasts],
            "warnings": list(self.warnings),
        }

    def _repr_html_(self) -> str:
        pct = f"{100 * self.conf_level:g}%"
        rows = "".join(
            f"<tr><td>{html.escape(g.group)}</td><td>{g.n}</td><td>{g.rmst:.3g}</td>"
            f"<td>{g.lower:.3g}–{g.upper:.3g}</td></tr>"
            for g in self.groups
        )
        contrasts = "".join(
            f"<tr><td>{html.escape(c.group)} − {html.escape(c.reference)}</td>"
            f"<td>{c.difference:.3g} ({c.difference_lower:.3g} to {c.difference_upper:.3g})</td>"
            f"<td>{_fmt(c.difference_p)}</td></tr>"
            for c in self.contrasts
        )
        table2 = (
            f"<table><tr><th>contrast</th><th>difference ({pct} CI)</th><th>p</th></tr>{contrasts}</table>"
            if contrasts
            else ""
        )
        warn = "".join(f"<p>⚠ {html.escape(w)}</p>" for w in self.warnings)
        return (
            f"<p>Restricted mean survival time to τ = {self.tau:g}</p>"
            f"<table><tr><th>group</th><th>n</th><th>RMST</th><th>{pct} CI</th></tr>{rows}</table>"
            f"{table2}{warn}"
        )


def _fmt(p: float | None) -> str:
    return "NA" if p is None else f"{p:.3g}"


def rmst_from_curve(curve: KMCurve, tau: float) -> tuple[float, float]:
    """(RMST, SE) of one Kaplan-Meier curve to ``tau``, as ``survival:::survmean``.

    Past the curve's last time the curve is carried forward (as R does).
    """
    time, surv = curve.time, curve.survival
    n_risk, n_event = curve.n_risk.astype(float), curve.n_event.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        hh = np.where(n_risk - n_event == 0, 0.0, n_event / (n_risk * (n_risk - n_event)))
    keep = time <= tau
    if not keep.any():
        return float(tau), 0.0
    ktime = np.append(time[keep], tau)
    ksurv = surv[keep]
    khh = np.append(hh[keep], 0.0)
    delta = np.diff(np.concatenate(([0.0], ktime)))
    rect = delta * np.concatenate(([1.0], ksurv))  # rectangle heights: 1, then S at each time
    # area from each kept time to tau, against that time's Greenwood increment
    area_after = np.cumsum(rect[1:][::-1])
    var = float(np.sum(area_after**2 * khh[:-1][::-1]))
    return float(rect.sum()), math.sqrt(var)


def rmst(
    frame: pd.DataFrame,
    *,
    tau: float,
    time: str = "time",
    event: str = "event",
    by: str | None = None,
    conf_level: float = 0.95,
) -> RMSTResult:
    """RMST to ``tau`` per level of ``by`` (or overall) and each group's contrast with the first.

    ``event`` == 1 is the event; other values (0 censored, k >= 2 competing) are censored.

    >>> rmst(frame, tau=365, by="sex").to_dict()["contrasts"][0]["difference"]  # doctest: +SKIP
    """
    for col in (time, event, by):
        if col is not None and col not in frame.columns:
            raise AnalysisError(f"RMST: column {col!r} not in the data; available: {list(frame.columns)}")
    if not (isinstance(tau, int | float) and math.isfinite(tau) and tau > 0):
        raise AnalysisError(f"RMST: tau must be a positive number; got {tau!r}")
    if not 0 < conf_level < 1:
        raise AnalysisError(f"RMST: conf_level must be between 0 and 1; got {conf_level}")
    data = frame.dropna(subset=[c for c in (time, event, by) if c is not None])
    warnings: list[str] = []
    if len(data) < len(frame):
        warnings.append(f"{len(frame) - len(data)} rows with missing time, event or group were left out")
    if len(data) == 0:
        raise AnalysisError("RMST: no rows with time, event and group")
    t_all = data[time].to_numpy(float)
    if np.any(t_all < 0):
        raise AnalysisError(f"RMST: column {time!r} has negative times; expected times >= 0")
    ev_all = (data[event].astype(int) == 1).to_numpy().astype(int)
    labels = ["all"] if by is None else sorted(data[by].astype(str).unique())
    z = float(stats.norm.ppf(1 - (1 - conf_level) / 2))
    groups: list[RMSTGroup] = []
    for label in labels:
        mask = np.ones(len(data), bool) if by is None else (data[by].astype(str) == label).to_numpy()
        t, e = t_all[mask], ev_all[mask]
        curve = km_curve(t, e, group=label, conf_level=conf_level)
        mean, se = rmst_from_curve(curve, float(tau))
        if t.max() < tau and curve.survival[-1] > 0:
            warnings.append(
                f"group {label!r}: follow-up ends before tau = {tau:g}; the curve is carried forward "
                "from its last time (as R's survfit rmean; survRM2 refuses such a tau)"
            )
        if int(e[t <= tau].sum()) == 0:
            warnings.append(f"group {label!r}: no events up to tau = {tau:g}; RMST = tau with SE 0")
        groups.append(
            RMSTGroup(label, len(t), int(e[t <= tau].sum()), mean, se, mean - z * se, mean + z * se)
        )
    contrasts = tuple(_contrast(g, groups[0], z, warnings) for g in groups[1:])
    return RMSTResult(float(tau), by, tuple(groups), contrasts, conf_level, tuple(warnings))


def _contrast(g: RMSTGroup, ref: RMSTGroup, z: float, warnings: list[str]) -> RMSTContrast:
    diff = g.rmst - ref.rmst
    se = math.hypot(g.se, ref.se)
    p = float(2 * stats.norm.sf(abs(diff) / se)) if se > 0 else None
    if se == 0:
        warnings.append(f"{g.group!r} vs {ref.group!r}: the difference has SE 0; no p-value")
    ratio = lo = hi = rp = None
    if g.rmst > 0 and ref.rmst > 0:
        log_se = math.hypot(g.se / g.rmst, ref.se / ref.rmst)
        log_ratio = math.log(g.rmst / ref.rmst)
        ratio = math.exp(log_ratio)
        lo, hi = math.exp(log_ratio - z * log_se), math.exp(log_ratio + z * log_se)
        rp = float(2 * stats.norm.sf(abs(log_ratio) / log_se)) if log_se > 0 else None
    else:
        warnings.append(f"{g.group!r} vs {ref.group!r}: an RMST of 0 leaves the ratio undefined")
    return RMSTContrast(g.group, ref.group, diff, se, diff - z * se, diff + z * se, p, ratio, lo, hi, rp)
