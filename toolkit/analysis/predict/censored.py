"""Censoring-aware metrics at a horizon ``h``: Kaplan-Meier risk, inverse probability of
censoring weights (IPCW), pseudo-observations, time-dependent AUC and Brier scores.

Conventions (documented in docs/analyses.md):

* The outcome is ``event == 1``; competing events (``event >= 2``) are treated as censored here,
  so the Kaplan-Meier "observed risk" is the net risk of the outcome (the callers record a
  warning when competing events are present).
* ``G`` is the Kaplan-Meier estimate of the censoring distribution.  A person with the outcome at
  ``T_i`` is weighted by ``1 / G(T_i-)`` (censorings tied with an event happen after it), as
  riskRegression (``ipcw(..., lag = 1)``) and pec (Gerds & Schumacher 2006); a person still
  event-free at ``t`` by ``1 / G(t)``.  scikit-survival weights a case by ``1 / G(T_i)``, so the
  two differ exactly when someone is censored at the time of a case's event (tested on such data).
* Pseudo-observations (Andersen & Perme 2010) of the Kaplan-Meier risk at ``h``:
  ``n F(h) - (n-1) F_{-i}(h)``; they equal the 0/1 outcome when nobody is censored before ``h``.

Weights follow :mod:`toolkit.analysis.predict.metrics`: ``None``, a vector, or a ``(B, n)``
matrix of bootstrap counts giving one value per replicate.
"""

from __future__ import annotations

import numpy as np

from toolkit.analysis.predict.metrics import auroc, check_risk, weights_2d
from toolkit.errors import AnalysisError


def _status(event: np.ndarray) -> np.ndarray:
    return (np.asarray(event).astype(int) == 1).astype(float)


def _check(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    time = np.asarray(time, float)
    if len(time) != len(event):
        raise AnalysisError(f"time and event differ in length: {len(time)} vs {len(event)}")
    if len(time) == 0:
        raise AnalysisError("no persons to evaluate")
    if not np.isfinite(time).all() or (time < 0).any():
        raise AnalysisError("time: values must be finite and non-negative")
    return time, _status(event)


def km_curve_weighted(
    time: np.ndarray,
    status: np.ndarray,
    W: np.ndarray,
    at: np.ndarray,
    *,
    left: bool = False,
    leave_first: np.ndarray | None = None,
) -> np.ndarray:
    """Kaplan-Meier survival of ``status`` (1 = the counted event) at each time in ``at``,
    for each row of the weight matrix ``W``: an array of shape ``(B, len(at))``.

    ``left=True`` gives ``S(t-)``, the survival just before ``t``.  Persons flagged in
    ``leave_first`` leave the risk set just before the counted events at their time (for the
    censoring distribution: an event tied with a censoring happens first).  Only times up to
    ``max(at)`` are visited (later persons count in the number at risk only).
    """
    at = np.asarray(at, float)
    order = np.argsort(time, kind="mergesort")
    ts = time[order]
    upto = int(np.searchsorted(ts, at.max(), side="right")) if len(at) else 0
    if upto == 0:
        return np.ones((len(W), len(at)))
    ts = ts[:upto]
    starts = np.concatenate([[0], np.nonzero(np.diff(ts))[0] + 1])
    uniq = ts[starts]
    Ws = W[:, order[:upto]]
    d = np.add.reduceat(Ws * status[order[:upto]], starts, axis=1)
    c = np.add.reduceat(Ws, starts, axis=1)
    at_risk = W.sum(axis=1, keepdims=True) - (np.cumsum(c, axis=1) - c)
    if leave_first is not None:
        at_risk = at_risk - np.add.reduceat(Ws * leave_first[order[:upto]], starts, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(at_risk > 1e-12, 1.0 - d / np.where(at_risk > 1e-12, at_risk, 1.0), 1.0)
    surv = np.cumprod(factor, axis=1)
    idx = np.searchsorted(uniq, at, side="left" if left else "right") - 1
    out = np.where(idx[None, :] >= 0, surv[:, np.maximum(idx, 0)], 1.0)
    return np.asarray(out)


def km_risk(
    time: np.ndarray, event: np.ndarray, horizon: float, w: np.ndarray | None = None
) -> np.ndarray | float:
    """1 - Kaplan-Meier survival at ``horizon``."""
    time, status = _check(time, event)
    W, single = weights_2d(w, len(time))
    r = 1.0 - km_curve_weighted(time, status, W, np.array([horizon]))[:, 0]
    return float(r[0]) if single else r


def censoring_survival(
    time: np.ndarray, status: np.ndarray, W: np.ndarray, at: np.ndarray, *, left: bool = False
) -> np.ndarray:
    """``G``: the Kaplan-Meier estimate of remaining uncensored (events tied with a censoring
    happen first, as in scikit-survival and riskRegression), shape ``(B, len(at))``."""
    return km_curve_weighted(time, 1.0 - status, W, at, left=left, leave_first=status)


def censoring_weights(
    time: np.ndarray, event: np.ndarray, horizon: float, W: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IPCW at ``horizon``: (case indicator, control indicator, weights of shape (B, n)).

    Cases had the outcome by ``horizon`` (weight ``1/G(T_i-)``); controls are still event-free
    after it (weight ``1/G(h)``); everyone else (censored before ``h``) has weight 0.
    """
    time, status = _check(time, event)
    case = (time <= horizon) & (status == 1)
    control = time > horizon
    ipcw = np.zeros(W.shape)
    if case.any():
        g_t = censoring_survival(time, status, W, time[case], left=True)
        with np.errstate(divide="ignore"):
            ipcw[:, case] = 1.0 / g_t
    g_h = censoring_survival(time, status, W, np.array([horizon]))
    with np.errstate(divide="ignore"):
        ipcw[:, control] = 1.0 / g_h
    if not np.isfinite(ipcw).all():
        raise AnalysisError(
            f"IPCW: the censoring survival reaches 0 before the horizon ({horizon:g} days); follow-up "
            "is too short for censoring-weighted metrics at this horizon"
        )
    return case, control, ipcw


Weights = tuple[np.ndarray, np.ndarray, np.ndarray]


def auc_td(
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    horizon: float,
    w: np.ndarray | None = None,
    *,
    ipcw: Weights | None = None,
) -> np.ndarray | float:
    """Cumulative/dynamic AUC at ``horizon`` (Uno et al. 2007; Hung & Chiang 2010): cases with the
    outcome by ``h`` weighted by ``1/G(T_i-)`` against controls still event-free after ``h``.
    ``ipcw`` passes :func:`censoring_weights` already computed for the same weights."""
    time, status = _check(time, event)
    W, single = weights_2d(w, len(time))
    case, control, iw = ipcw or censoring_weights(time, status, horizon, W)
    if case.sum() == 0 or control.sum() == 0:
        raise AnalysisError(
            f"auc_td: {'no cases (outcome by' if case.sum() == 0 else 'no controls (event-free after'} "
            f"{horizon:g} days); need both"
        )
    # controls all carry the same 1/G(h): it cancels, so controls keep their plain weight
    cw = W * np.where(case[None], iw, np.where(control[None], 1.0, 0.0))
    keep = case | control
    out = np.atleast_1d(auroc(case[keep].astype(float), np.asarray(risk, float)[keep], cw[:, keep]))
    return float(out[0]) if single else out


def brier_ipcw(
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    horizon: float,
    w: np.ndarray | None = None,
    *,
    ipcw: Weights | None = None,
) -> np.ndarray | float:
    """IPCW Brier score of predicted risk at ``horizon`` (Graf et al. 1999; scikit-survival's
    ``brier_score`` with risk = 1 - survival)."""
    time, status = _check(time, event)
    risk = check_risk(risk)
    W, single = weights_2d(w, len(time))
    case, control, iw = ipcw or censoring_weights(time, status, horizon, W)
    loss = np.where(case, (1 - risk) ** 2, 0.0) + np.where(control, risk**2, 0.0)
    out = (W * iw * loss[None]).sum(axis=1) / W.sum(axis=1)
    return float(out[0]) if single else out


def ipa(
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    horizon: float,
    w: np.ndarray | None = None,
    *,
    ipcw: Weights | None = None,
) -> np.ndarray | float:
    """Index of prediction accuracy (Kattan & Gerds 2018): 1 - Brier / Brier of the null model
    that predicts the Kaplan-Meier risk at ``h`` for everyone (a scaled IPCW Brier score)."""
    time, status = _check(time, event)
    W, single = weights_2d(w, len(time))
    weights = ipcw or censoring_weights(time, status, horizon, W)
    case, control, iw = weights
    null = np.atleast_1d(km_risk(time, status, horizon, W))
    b = np.atleast_1d(brier_ipcw(time, status, risk, horizon, W, ipcw=weights))
    loss0 = (
        np.where(case[None], (1 - null[:, None]) ** 2, 0.0) + np.where(control[None], null[:, None] ** 2, 0.0)
    ) * iw
    b0 = (W * loss0).sum(axis=1) / W.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 1.0 - b / b0
    return float(out[0]) if single else out


def integrated_brier(
    time: np.ndarray, event: np.ndarray, risk_matrix: np.ndarray, times: np.ndarray
) -> float:
    """Integrated Brier score over ``times`` (trapezoid rule, divided by the time span), as
    scikit-survival's ``integrated_brier_score``; ``risk_matrix[i, k]`` = risk of i by ``times[k]``.

    The interval is ``[times[0], times[-1]]``: give a grid starting at 0 (with the risk at 0,
    usually 0) for the IBS over [0, tau] (``assess.ibs_times(tau, from_zero=True)``).  Cases are
    weighted by ``1 / G(T_i-)`` (see the module docstring); scikit-survival's value differs where
    a censoring coincides with a case's event time.
    """
    times = np.asarray(times, float)
    if len(times) < 2:
        raise AnalysisError("integrated Brier score: need at least two time points")
    scores = np.array(
        [brier_ipcw(time, event, risk_matrix[:, k], float(t)) for k, t in enumerate(times)], float
    )
    return float(np.trapezoid(scores, times) / (times[-1] - times[0]))


def pseudo_observations(time: np.ndarray, event: np.ndarray, horizon: float) -> np.ndarray:
    """Jackknife pseudo-observations of the Kaplan-Meier risk at ``horizon``, in O(n log n).

    Leaving person i out lowers the number at risk by one at every time up to ``T_i`` and, if i
    had the event, the number of events at ``T_i`` by one; the other factors are unchanged.
    """
    time, status = _check(time, event)
    n = len(time)
    if n < 2:
        raise AnalysisError("pseudo-observations: need at least two persons")
    ev_times = np.unique(time[(status == 1) & (time <= horizon)])
    if len(ev_times) == 0:
        return np.zeros(n)
    sorted_t = np.sort(time)
    at_risk = n - np.searchsorted(sorted_t, ev_times, side="left")
    d = np.searchsorted(np.sort(time[status == 1]), ev_times, side="right") - np.searchsorted(
        np.sort(time[status == 1]), ev_times, side="left"
    )
    at_risk_f = at_risk.astype(float)
    log0 = np.log(np.maximum(1.0 - d / at_risk_f, 1e-300))
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(at_risk > 1, 1.0 - d / np.maximum(at_risk_f - 1, 1.0), 1.0)
    log1 = np.log(np.maximum(f1, 1e-300))
    pre1 = np.concatenate([[0.0], np.cumsum(log1)])  # sum of log1 over the first m times
    suf0 = np.concatenate([np.cumsum(log0[::-1])[::-1], [0.0]])  # sum of log0 from index m on
    m = np.searchsorted(ev_times, time, side="left")  # event times strictly before T_i
    k = len(ev_times)
    tied = (m < k) & (ev_times[np.minimum(m, k - 1)] == time)
    mi = np.minimum(m, k - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        own = np.where(
            status == 1,
            np.where(at_risk[mi] > 1, 1.0 - (d[mi] - 1) / np.maximum(at_risk_f[mi] - 1, 1.0), 1.0),
            f1[mi],
        )
    log_loo = pre1[m] + np.where(tied, np.log(np.maximum(own, 1e-300)) + suf0[np.minimum(m + 1, k)], suf0[m])
    risk_full = 1.0 - float(np.exp(log0.sum()))
    risk_loo = 1.0 - np.exp(log_loo)
    return np.asarray(n * risk_full - (n - 1) * risk_loo)


def group_risk(
    time: np.ndarray, event: np.ndarray, horizon: float, groups: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier risk at ``horizon`` within each group label (sorted labels, risks)."""
    time, status = _check(time, event)
    labels = np.unique(groups)
    W = (groups[None, :] == labels[:, None]).astype(float)
    return labels, 1.0 - km_curve_weighted(time, status, W, np.array([horizon]))[:, 0]


def threshold_table_km(
    time: np.ndarray, event: np.ndarray, risk: np.ndarray, horizon: float, thresholds: np.ndarray
) -> list[dict[str, float]]:
    """Sensitivity, specificity, PPV, NPV and net benefit at each threshold, censoring-aware.

    Following Vickers et al. (2008), the risk among those called positive (``risk >= t``) is the
    Kaplan-Meier risk at ``h`` in that group; then true positives per person =
    ``P(positive) * risk_pos``, and net benefit = TP/n - FP/n * t / (1 - t).  With nobody censored
    before ``h`` this equals the binary table.
    """
    time, status = _check(time, event)
    risk = check_risk(risk)
    thresholds = np.asarray(thresholds, float)
    n = len(time)
    pos = risk[None, :] >= thresholds[:, None]
    W = np.concatenate([pos, ~pos, np.ones((1, n), bool)]).astype(float)
    surv = km_curve_weighted(time, status, W, np.array([horizon]))[:, 0]
    k = len(thresholds)
    r_pos, r_neg, r_all = 1 - surv[:k], 1 - surv[k : 2 * k], float(1 - surv[-1])
    n_pos = pos.sum(axis=1).astype(float)
    f_pos = n_pos / n
    rows = []
    for j, t in enumerate(thresholds):
        has_pos, has_neg = n_pos[j] > 0, n_pos[j] < n
        tp = f_pos[j] * r_pos[j] if has_pos else 0.0
        fp = f_pos[j] * (1 - r_pos[j]) if has_pos else 0.0
        tn = (1 - f_pos[j]) * (1 - r_neg[j]) if has_neg else 0.0
        rows.append(
            {
                "threshold": float(t),
                "positive_fraction": float(f_pos[j]),
                "sensitivity": tp / r_all if r_all > 0 else float("nan"),
                "specificity": tn / (1 - r_all) if r_all < 1 else float("nan"),
                "ppv": float(r_pos[j]) if has_pos else float("nan"),
                "npv": float(1 - r_neg[j]) if has_neg else float("nan"),
                "net_benefit": float(tp - fp * t / (1 - t)),
                "n_positive": float(n_pos[j]),
                "n_negative": float(n - n_pos[j]),
            }
        )
    return rows
