"""Binary metrics of predicted risk against an outcome label, with optional case weights.

Every function takes the label ``y`` (1 = event by the horizon, 0 = not), the predicted risk
``p`` and optional weights ``w``: ``None``, a vector (one weight per person) or a matrix of
shape ``(B, n)`` (one row per bootstrap replicate: multinomial counts).  With a matrix, the
result is a vector of ``B`` values, computed without a Python loop over replicates, which is
what makes bootstrap confidence intervals affordable.  A bootstrap replicate drawn as counts
gives exactly the statistic of the resampled rows.

Definitions follow scikit-learn where it has the metric (``roc_auc_score``,
``average_precision_score``, ``brier_score_loss``); the calibration intercept and slope are
logistic recalibration (Cox 1958; Steyerberg, *Clinical Prediction Models*, 2nd ed., ch. 15).
Degenerate input (one class only, constant predictions, non-finite values) raises
:class:`AnalysisError` saying what is wrong; callers that must not fail record it as a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from toolkit.errors import AnalysisError

EPS = 1e-12


def horizon_label(time: np.ndarray, event: np.ndarray, horizon: float) -> np.ndarray:
    """1 = event by the horizon, 0 = known event-free (or competing event) at it, NaN = not evaluable."""
    time = np.asarray(time, float)
    event = np.asarray(event).astype(int)
    out = np.full(len(time), np.nan)
    out[time >= horizon] = 0.0
    out[(event >= 2) & (time < horizon)] = 0.0
    out[(event == 1) & (time <= horizon)] = 1.0
    return out


def weights_2d(w: np.ndarray | None, n: int) -> tuple[np.ndarray, bool]:
    """``(W, single)``: weights as a ``(B, n)`` matrix, and whether the caller gave one vector."""
    if w is None:
        return np.ones((1, n)), True
    arr = np.asarray(w, float)
    if arr.shape[-1] != n or arr.ndim > 2:
        raise AnalysisError(f"weights: expected shape (n,) or (B, n) with n={n}; got {arr.shape}")
    if (arr < 0).any() or not np.isfinite(arr).all():
        raise AnalysisError("weights: must be finite and non-negative")
    return np.atleast_2d(arr), arr.ndim == 1


def _out(values: np.ndarray, single: bool) -> np.ndarray | float:
    return float(values[0]) if single else values


def check_risk(p: np.ndarray, what: str = "predicted risk") -> np.ndarray:
    p = np.asarray(p, float)
    if not np.isfinite(p).all():
        raise AnalysisError(f"{what}: {int((~np.isfinite(p)).sum())} non-finite values")
    if (p < 0).any() or (p > 1).any():
        raise AnalysisError(f"{what}: values must lie in [0, 1]; got range [{p.min():.4g}, {p.max():.4g}]")
    return p


def check_binary(y: np.ndarray, what: str = "outcome label") -> np.ndarray:
    y = np.asarray(y, float)
    if not np.isin(y, (0.0, 1.0)).all():
        raise AnalysisError(f"{what}: must be 0/1 (drop persons who are not evaluable first)")
    return y


def _classes(y: np.ndarray, what: str) -> None:
    if len(y) == 0:
        raise AnalysisError(f"{what}: no persons to evaluate")
    if y.min() == y.max():
        raise AnalysisError(
            f"{what}: only one outcome class ({int(y[0])}) among the persons evaluated; undefined"
        )


def _score_groups(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order that sorts ``p`` ascending, and the start of each group of tied scores in that order."""
    order = np.argsort(p, kind="mergesort")
    ps = p[order]
    starts = np.concatenate([[0], np.nonzero(np.diff(ps))[0] + 1])
    return order, starts


def auroc(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> np.ndarray | float:
    """Area under the ROC curve (ties count one half): the weighted Mann-Whitney statistic."""
    y = check_binary(y)
    p = np.asarray(p, float)
    _classes(y, "auroc")
    W, single = weights_2d(w, len(y))
    order, starts = _score_groups(p)
    pos = np.add.reduceat(W[:, order] * y[order], starts, axis=1)
    neg = np.add.reduceat(W[:, order] * (1 - y[order]), starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    num = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    den = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _out(num / den, single)


def auprc(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> np.ndarray | float:
    """Average precision (scikit-learn's definition: sum over thresholds of recall gain x precision)."""
    y = check_binary(y)
    p = np.asarray(p, float)
    _classes(y, "auprc")
    W, single = weights_2d(w, len(y))
    order, starts = _score_groups(-p)  # descending scores
    tp = np.cumsum(np.add.reduceat(W[:, order] * y[order], starts, axis=1), axis=1)
    fp = np.cumsum(np.add.reduceat(W[:, order] * (1 - y[order]), starts, axis=1), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1.0), 1.0)
        recall = tp / tp[:, -1:]
    gain = np.diff(np.concatenate([np.zeros((len(W), 1)), recall], axis=1), axis=1)
    return _out((gain * precision).sum(axis=1), single)


def brier(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> np.ndarray | float:
    y = check_binary(y)
    p = check_risk(p)
    if len(y) == 0:
        raise AnalysisError("brier: no persons to evaluate")
    W, single = weights_2d(w, len(y))
    return _out((W * (p - y) ** 2).sum(axis=1) / W.sum(axis=1), single)


def scaled_brier(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> np.ndarray | float:
    """1 - Brier / Brier of the null model that predicts the observed prevalence for everyone."""
    y = check_binary(y)
    _classes(y, "scaled_brier")
    W, single = weights_2d(w, len(y))
    b = np.atleast_1d(brier(y, p, W))
    prev = (W * y).sum(axis=1) / W.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _out(1.0 - b / (prev * (1 - prev)), single)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def expit(x: np.ndarray) -> np.ndarray:
    return np.asarray(special.expit(np.asarray(x, float)))


@dataclass(frozen=True)
class Recalibration:
    """Logistic recalibration ``logit P(Y=1) = a + b * logit(p)`` and calibration-in-the-large.

    ``citl`` is the intercept with the slope fixed at 1 (``logit(p)`` as an offset); 0 is ideal.
    ``slope`` is ``b``; 1 is ideal, below 1 means predictions are too extreme (overfitting).
    Standard errors are model-based for a 0/1 outcome and robust (sandwich) otherwise, e.g. for
    pseudo-observations of a censored outcome.
    """

    citl: float
    citl_se: float
    intercept: float
    slope: float
    slope_se: float
    robust: bool

    def ci(self, what: str, z: float = 1.959963984540054) -> tuple[float, float]:
        est, se = (self.slope, self.slope_se) if what == "slope" else (self.citl, self.citl_se)
        return est - z * se, est + z * se


def _irls(
    y: np.ndarray, x: np.ndarray, offset: np.ndarray, W: np.ndarray, iters: int = 50
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Newton-Raphson for logistic regression of y on columns x (n, k) with an offset, one fit
    per row of W (B, n).  Returns coefficients (B, k), inverse information (B, k, k), converged."""
    B, k = len(W), x.shape[1]
    beta = np.zeros((B, k))
    converged = False
    inv = np.zeros((B, k, k))
    for _ in range(iters):
        eta = beta @ x.T + offset
        mu = expit(eta)
        score = np.einsum("bn,nk->bk", W * (y - mu), x)
        info = np.einsum("bn,nk,nl->bkl", W * mu * (1 - mu), x, x)
        try:
            inv = np.linalg.inv(info)
        except np.linalg.LinAlgError:
            return beta, np.full((B, k, k), np.nan), False
        step = np.einsum("bkl,bl->bk", inv, score)
        beta = beta + step
        if np.abs(step).max() < 1e-9:
            converged = True
            break
    eta = beta @ x.T + offset
    mu = expit(eta)
    info = np.einsum("bn,nk,nl->bkl", W * mu * (1 - mu), x, x)
    with np.errstate(invalid="ignore"):
        inv = np.linalg.inv(info) if np.isfinite(info).all() else np.full((B, k, k), np.nan)
    return beta, inv, converged and bool(np.isfinite(beta).all())


def recalibration(
    y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None, *, robust: bool | None = None
) -> Recalibration:
    """Calibration-in-the-large and calibration slope of predicted risks ``p`` against ``y``.

    ``y`` may be 0/1 or a pseudo-observation of the outcome (any real value); with pseudo-
    observations the estimating equations are the logistic score equations (quasi-likelihood)
    and the standard errors are robust.
    """
    y = np.asarray(y, float)
    p = check_risk(p)
    if len(y) < 3:
        raise AnalysisError("calibration: fewer than 3 persons")
    binary = bool(np.isin(y, (0.0, 1.0)).all())
    if binary:
        _classes(y, "calibration")
    robust = (not binary) if robust is None else robust
    lp = logit(p)
    if np.ptp(lp) < 1e-10:
        raise AnalysisError("calibration slope: predictions are constant; the slope is not estimable")
    W, _ = weights_2d(w, len(y))
    if len(W) != 1:
        raise AnalysisError("recalibration: one weight vector only (use recalibration_slopes for bootstrap)")
    one = np.ones((len(y), 1))
    a, inv_a, ok_a = _irls(y, one, lp, W)
    x = np.column_stack([np.ones(len(y)), lp])
    ab, inv_ab, ok_ab = _irls(y, x, np.zeros(len(y)), W)
    if not (ok_a and ok_ab):
        raise AnalysisError(
            "calibration: the logistic recalibration did not converge (perfect separation, or "
            "predictions that carry no information about the outcome)"
        )
    if robust:
        inv_a = _sandwich(y, one, lp, W[0], a[0], inv_a[0])[None]
        inv_ab = _sandwich(y, x, np.zeros(len(y)), W[0], ab[0], inv_ab[0])[None]
    return Recalibration(
        citl=float(a[0, 0]),
        citl_se=float(np.sqrt(inv_a[0, 0, 0])),
        intercept=float(ab[0, 0]),
        slope=float(ab[0, 1]),
        slope_se=float(np.sqrt(inv_ab[0, 1, 1])),
        robust=robust,
    )


def _sandwich(
    y: np.ndarray, x: np.ndarray, offset: np.ndarray, w: np.ndarray, beta: np.ndarray, inv: np.ndarray
) -> np.ndarray:
    """HC0 sandwich covariance of a (quasi-)logistic fit: bread^-1 meat bread^-1."""
    mu = expit(x @ beta + offset)
    u = x * (w * (y - mu))[:, None]
    return np.asarray(inv @ (u.T @ u) @ inv)


def recalibration_slopes(y: np.ndarray, p: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Calibration-in-the-large and slope for each row of the weight matrix ``W`` (bootstrap)."""
    y = check_binary(y)
    lp = logit(check_risk(p))
    W2, _ = weights_2d(W, len(y))
    a, _, _ = _irls(y, np.ones((len(y), 1)), lp, W2)
    ab, _, _ = _irls(y, np.column_stack([np.ones(len(y)), lp]), np.zeros(len(y)), W2)
    return a[:, 0], ab[:, 1]


def threshold_table_binary(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray) -> list[dict[str, float]]:
    """Sensitivity, specificity, PPV, NPV and net benefit when ``p >= threshold`` is called positive."""
    y = check_binary(y)
    p = check_risk(p)
    n = len(y)
    rows = []
    for t in np.asarray(thresholds, float):
        pos = p >= t
        tp = float((pos & (y == 1)).sum())
        fp = float((pos & (y == 0)).sum())
        fn = float((~pos & (y == 1)).sum())
        tn = float((~pos & (y == 0)).sum())
        rows.append(
            {
                "threshold": float(t),
                "positive_fraction": (tp + fp) / n,
                "sensitivity": _ratio(tp, tp + fn),
                "specificity": _ratio(tn, tn + fp),
                "ppv": _ratio(tp, tp + fp),
                "npv": _ratio(tn, tn + fn),
                "net_benefit": tp / n - fp / n * t / (1 - t),
                "n_positive": tp + fp,
                "n_negative": tn + fn,
            }
        )
    return rows


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def net_benefit_treat_all(prevalence: float, thresholds: np.ndarray) -> np.ndarray:
    t = np.asarray(thresholds, float)
    return np.asarray(prevalence - (1 - prevalence) * t / (1 - t))
