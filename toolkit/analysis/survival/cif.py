"""Aalen-Johansen cumulative incidence by group for competing risks, with Gray's test.

The event column codes 0 = censored, 1 = the outcome, k >= 2 = competing cause k.  For each
group and each cause k the cumulative incidence is the Aalen-Johansen estimator

    F_k(t) = sum over times t_j <= t of S(t_j-) * d_kj / Y_j

with ``S`` the all-cause Kaplan-Meier curve, ``d_kj`` the cause-k events and ``Y_j`` the number
at risk at ``t_j``.  This is R's multi-state ``survfit(Surv(time, factor(event)) ~ group)``,
and the standard error is R's too: the infinitesimal jackknife, ``sqrt(sum_i U_i(t)**2)`` with
``U_i`` the derivative of ``F_k(t)`` with respect to person i's case weight.  We compute it in
closed form, grouping persons by (exit time, status), in O(times) per cause.  Confidence
intervals are on the log scale (R's default ``conf.type = "log"``), the upper limit capped at 1.
Where ``F_k = 0`` R's limits are NA; Regent reports the degenerate interval [0, 0].

lifelines' ``AalenJohansenFitter`` is not used: it moves tied event times apart with random
jitter, which changes the estimate at ties (see FIELD_NOTES).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from toolkit.analysis.survival.gray import GrayTestResult, gray_test
from toolkit.errors import AnalysisError


@dataclass(frozen=True)
class CIFCurve:
    """Cumulative incidence of each cause at every distinct time (events and censorings)."""

    group: str
    causes: tuple[int, ...]
    time: np.ndarray
    n_risk: np.ndarray
    n_event: np.ndarray  # (times, causes)
    n_censor: np.ndarray
    cif: np.ndarray  # (times, causes)
    std_err: np.ndarray  # (times, causes): standard error of the cumulative incidence itself
    lower: np.ndarray
    upper: np.ndarray

    @property
    def n(self) -> int:
        return int(self.n_risk[0]) if len(self.n_risk) else 0

    def at(self, t: float, cause: int) -> tuple[float, float, float, float, int]:
        """(cif, se, lower, upper, number at risk) at time ``t`` (right-continuous step)."""
        k = self.causes.index(cause)
        i = int(np.searchsorted(self.time, t, side="right")) - 1
        j = int(np.searchsorted(self.time, t, side="left"))
        n_risk = int(self.n_risk[j]) if j < len(self.n_risk) else 0
        if i < 0:
            return 0.0, 0.0, 0.0, 0.0, n_risk
        return (
            float(self.cif[i, k]),
            float(self.std_err[i, k]),
            float(self.lower[i, k]),
            float(self.upper[i, k]),
            n_risk,
        )


def _log_ci(p: np.ndarray, se: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """R's ``survfit_confint(p, se, logse = FALSE, conf.type = "log")``; [0, 0] where p = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(p > 0, se / p, 0.0)
        lower = np.where(p > 0, np.exp(np.log(np.where(p > 0, p, 1.0)) - z * rel), 0.0)
        upper = np.where(p > 0, np.minimum(np.exp(np.log(np.where(p > 0, p, 1.0)) + z * rel), 1.0), 0.0)
    return lower, upper


def aalen_johansen(
    time: np.ndarray,
    event: np.ndarray,
    *,
    causes: Sequence[int] | None = None,
    group: str = "all",
    conf_level: float = 0.95,
) -> CIFCurve:
    """Aalen-Johansen cumulative incidence of each cause, with infinitesimal-jackknife SEs."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(int)
    if len(time) == 0:
        raise AnalysisError(f"cumulative incidence: group {group!r} has no persons")
    if causes is None:
        causes = sorted(int(k) for k in np.unique(event[event > 0]))
    causes = tuple(int(k) for k in causes)
    order = np.argsort(time, kind="stable")
    t, e = time[order], event[order]
    uniq, first = np.unique(t, return_index=True)
    n_risk = (len(t) - first).astype(float)
    d_all = np.add.reduceat((e > 0).astype(float), first)
    n_censor = np.add.reduceat((e == 0).astype(float), first)
    d_k = (
        np.column_stack([np.add.reduceat((e == k).astype(float), first) for k in causes])
        if causes
        else (np.zeros((len(uniq), 0)))
    )
    lam = d_all / n_risk  # all-cause hazard increment
    surv = np.cumprod(1.0 - lam)
    s_prev = np.concatenate(([1.0], surv[:-1]))  # S(t_j-)
    # persons leaving after each time (at risk beyond it)
    n_after = n_risk - d_all - n_censor
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(lam < 1.0, 1.0 / (1.0 - lam), 0.0)
    cif = np.zeros((len(uniq), len(causes)))
    se = np.zeros_like(cif)
    for c in range(len(causes)):
        lam_k = d_k[:, c] / n_risk
        f = np.cumsum(s_prev * lam_k)
        cif[:, c] = f
        se[:, c] = np.sqrt(
            np.maximum(
                _ij_variance(f, lam, lam_k, alpha, s_prev, n_risk, d_all, d_k[:, c], n_censor, n_after), 0.0
            )
        )
    z = float(stats.norm.ppf(1 - (1 - conf_level) / 2))
    lower, upper = _log_ci(cif, se, z)
    return CIFCurve(
        group,
        causes,
        uniq,
        n_risk.astype(int),
        d_k.astype(int),
        n_censor.astype(int),
        cif,
        se,
        lower,
        upper,
    )


def _ij_variance(
    f: np.ndarray,
    lam: np.ndarray,
    lam_k: np.ndarray,
    alpha: np.ndarray,
    s_prev: np.ndarray,
    y: np.ndarray,
    d_all: np.ndarray,
    d_k: np.ndarray,
    n_censor: np.ndarray,
    n_after: np.ndarray,
) -> np.ndarray:
    """Infinitesimal-jackknife variance of F_k at every distinct time.

    Person i's influence on F_k(t_J) is ``A_i * F_k(t_J) + B_i``: for a person still at risk
    after t_J, ``A = CP_J`` and ``B = -(CQ_J + CR_J)``; for one who left at t_m <= t_J, fixed
    values that depend on m and on how they left (censored, cause k, another cause).  CP, CQ
    and CR are cumulative sums of ``alpha*lam/Y``, ``alpha*F*lam/Y`` and ``S(t-)*lam_k/Y``,
    with ``alpha = 1/(1 - lam)``.  The variance is the sum of squared influences.
    """
    cp = np.cumsum(alpha * lam / y)
    cq = np.cumsum(alpha * f * lam / y)
    cr = np.cumsum(s_prev * lam_k / y)
    a_cens, b_cens = cp, -(cq + cr)
    a_ev = cp - alpha / y
    b_other = b_cens + alpha * f / y
    b_k = b_other + s_prev / y
    d_other = d_all - d_k
    saa = np.cumsum(n_censor * a_cens**2 + d_all * a_ev**2)
    sab = np.cumsum(n_censor * a_cens * b_cens + a_ev * (d_other * b_other + d_k * b_k))
    sbb = np.cumsum(n_censor * b_cens**2 + d_other * b_other**2 + d_k * b_k**2)
    at_risk = n_after * (cp * f - cq - cr) ** 2
    return f * f * saa + 2 * f * sab + sbb + at_risk


@dataclass(frozen=True)
class CIFGroup:
    curve: CIFCurve
    at: tuple[tuple[float, int, float, float, float, float, int], ...]  # time, cause, cif, se, lo, up, n_risk


@dataclass(frozen=True)
class CIFResult:
    groups: tuple[CIFGroup, ...]
    by: str | None
    causes: tuple[int, ...]
    gray: tuple[GrayTestResult, ...] = ()
    conf_level: float = 0.95
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, object]:
        return {
            "type": "cumulative_incidence",
            "by": self.by,
            "estimator": "aalen-johansen",
            "variance": "infinitesimal jackknife (as R survfit, multi-state)",
            "conf_type": "log",
            "conf_level": self.conf_level,
            "causes": list(self.causes),
            "groups": [
                {
                    "group": g.curve.group,
                    "n": g.curve.n,
                    "causes": [
                        {
                            "cause": k,
                            "events": int(g.curve.n_event[:, j].sum()),
                            "at": [
                                {"time": t, "cif": c, "se": s, "lower": lo, "upper": up, "n_risk": n}
                                for t, kk, c, s, lo, up, n in g.at
                                if kk == k
                            ],
                        }
                        for j, k in enumerate(g.curve.causes)
                    ],
                }
                for g in self.groups
            ],
            "gray": [t.to_dict() for t in self.gray],
            "warnings": list(self.warnings),
        }

    def _repr_html_(self) -> str:
        rows = []
        for g in self.groups:
            for t, k, c, _s, lo, up, _n in g.at:
                rows.append(
                    f"<tr><td>{html.escape(g.curve.group)}</td><td>{k}</td><td>{t:g}</td>"
                    f"<td>{c:.3f} ({lo:.3f}–{up:.3f})</td></tr>"
                )
        tests = "".join(
            f"<p>Gray's test, cause {t.cause}: χ²={t.chisq:.2f}, df={t.df}, p={t.p:.3g}</p>"
            for t in self.gray
            if t.chisq is not None and t.p is not None
        )
        warn = "".join(f"<p>⚠ {html.escape(w)}</p>" for w in self.warnings)
        return (
            "<table><tr><th>group</th><th>cause</th><th>time</th><th>cumulative incidence (95% CI)</th></tr>"
            f"{''.join(rows)}</table>{tests}{warn}"
        )


def cumulative_incidence(
    frame: pd.DataFrame,
    *,
    time: str = "time",
    event: str = "event",
    by: str | None = None,
    strata: str | None = None,
    times: Sequence[float] = (),
    causes: Sequence[int] | None = None,
    rho: float = 0.0,
    conf_level: float = 0.95,
) -> CIFResult:
    """Cumulative incidence of each cause by ``by``, and Gray's test between groups per cause.

    ``event``: 0 censored, 1 the outcome, k >= 2 competing cause k.  ``causes`` (default: every
    code present) chooses which curves to report.  ``strata`` stratifies Gray's test.
    """
    for col in (time, event, by, strata):
        if col is not None and col not in frame.columns:
            raise AnalysisError(
                f"cumulative incidence: column {col!r} not in the data; available: {list(frame.columns)}"
            )
    data = frame.dropna(subset=[c for c in (time, event, by, strata) if c is not None])
    warnings: list[str] = []
    if len(data) < len(frame):
        warnings.append(f"{len(frame) - len(data)} rows with missing time, event or group were left out")
    if len(data) == 0:
        raise AnalysisError("cumulative incidence: no rows with time, event and group")
    t_all = data[time].to_numpy(float)
    if np.any(t_all < 0):
        raise AnalysisError(f"cumulative incidence: column {time!r} has negative times; expected >= 0")
    ev_all = _event_codes(data[event], event)
    present = sorted(int(k) for k in np.unique(ev_all[ev_all > 0]))
    if causes is None:
        causes = present
    if not causes:
        raise AnalysisError(
            f"cumulative incidence: column {event!r} has no events (codes >= 1); nothing to estimate"
        )
    bad = [k for k in causes if int(k) < 1]
    if bad:
        raise AnalysisError(f"cumulative incidence: causes must be codes >= 1; got {bad}")
    causes = tuple(int(k) for k in causes)
    for k in causes:
        if k not in present:
            warnings.append(f"cause {k}: no events in the data; its cumulative incidence is 0")
    labels = ["all"] if by is None else sorted(data[by].astype(str).unique())
    groups: list[CIFGroup] = []
    for label in labels:
        mask = np.ones(len(data), bool) if by is None else (data[by].astype(str) == label).to_numpy()
        c = aalen_johansen(t_all[mask], ev_all[mask], causes=causes, group=label, conf_level=conf_level)
        at = []
        for tt in times:
            for k in causes:
                val, se, lo, up, n_risk = c.at(float(tt), k)
                at.append((float(tt), k, val, se, lo, up, n_risk))
            if c.at(float(tt), causes[0])[4] == 0 and tt > c.time[-1]:
                warnings.append(
                    f"group {label!r}: nobody at risk at time {tt:g}; cumulative incidence carried forward"
                )
        groups.append(CIFGroup(c, tuple(at)))
    gray: list[GrayTestResult] = []
    if by is not None and len(labels) > 1:
        for k in causes:
            if k not in present:
                continue
            res = gray_test(data, time=time, event=event, by=by, strata=strata, cause=k, rho=rho)
            gray.append(res)
            warnings.extend(res.warnings)
    return CIFResult(tuple(groups), by, causes, tuple(gray), conf_level, tuple(warnings))


def _event_codes(s: pd.Series, name: str) -> np.ndarray:
    """Integer event codes; a clear error for anything else."""
    values = s.to_numpy()
    try:
        codes = values.astype(float)
    except (TypeError, ValueError):
        raise AnalysisError(
            f"column {name!r} must hold integer event codes (0 censored, 1 event, k >= 2 competing)"
        ) from None
    if np.any(codes < 0) or np.any(codes != np.round(codes)):
        raise AnalysisError(
            f"column {name!r} must hold integer event codes >= 0 (0 censored, 1 event, k >= 2 competing)"
        )
    return codes.astype(int)
