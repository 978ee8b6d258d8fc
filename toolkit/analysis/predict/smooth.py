"""Local regression (loess) and the smoothed calibration metrics ICI, E50, E90 and Emax.

``loess`` is Cleveland's local polynomial regression with tricube weights over the nearest
``floor(span * n)`` points, computed exactly at each evaluation point (R's
``loess(..., surface = "direct")``; degree 1 with ``span = frac`` is statsmodels' ``lowess`` with
``it = 0``).  Austin & Steyerberg (Stat Med 2019;38:4051) define the integrated calibration index
as the mean absolute difference between predicted risk and the loess-smoothed observed outcome,
with R's defaults (degree 2, span 0.75): ``ici``; ``e50``/``e90`` are the median and 90th
percentile of that difference and ``emax`` its maximum.  For a censored outcome the smoothed
quantity is the pseudo-observation of the Kaplan-Meier risk at the horizon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from toolkit.errors import AnalysisError

#: Above this many distinct predictions the smoother is evaluated on this many quantiles of
#: them and interpolated linearly (the curve is smooth at span 0.75; exact below it).
MAX_POINTS = 100
_BLOCK = 128


def loess(
    x: np.ndarray,
    y: np.ndarray,
    *,
    at: np.ndarray | None = None,
    span: float = 0.75,
    degree: int = 2,
) -> np.ndarray:
    """Local polynomial regression of ``y`` on ``x``, evaluated at ``at`` (default: ``x``)."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    at = x if at is None else np.asarray(at, float)
    n = len(x)
    if degree not in (0, 1, 2):
        raise AnalysisError(f"loess: degree must be 0, 1 or 2; got {degree}")
    if not 0 < span <= 1:
        raise AnalysisError(f"loess: span must be in (0, 1]; got {span}")
    q = int(np.floor(span * n + 1e-10))
    if q < degree + 1:
        raise AnalysisError(f"loess: {n} points with span {span} leave {q} neighbours; need more data")
    # the q nearest neighbours of a point are a contiguous window of the sorted x: the window
    # [i, i + q) is the first one whose right neighbour is no nearer than its left end
    order = np.argsort(x, kind="mergesort")
    xs, ys = x[order], y[order]
    if q < n:
        start = np.clip(np.searchsorted(xs[q:] + xs[: n - q], 2 * at), 0, n - q)
    else:
        start = np.zeros(len(at), int)
    out = np.empty(len(at))
    for s in range(0, len(at), _BLOCK):
        a = at[s : s + _BLOCK]
        idx = start[s : s + _BLOCK, None] + np.arange(q)[None, :]
        xw = xs[idx]
        dist = np.abs(xw - a[:, None])
        h = dist.max(axis=1)
        h = np.where(h > 0, h, 1.0)
        u = np.clip(dist / h[:, None], 0.0, 1.0)
        wt = (1 - u**3) ** 3
        xc = xw - a[:, None]  # centred: the fitted value is the intercept
        yw = ys[idx]
        moments, rhs_terms = [], []
        term = wt
        for k in range(2 * degree + 1):  # sum w * xc^k, and sum w * y * xc^k for k <= degree
            moments.append(term.sum(axis=1))
            if k <= degree:
                rhs_terms.append((term * yw).sum(axis=1))
            term = term * xc
        m = np.stack(
            [np.stack([moments[i + j] for j in range(degree + 1)], -1) for i in range(degree + 1)], -2
        )
        coef = _solve(m, np.stack(rhs_terms, -1))
        out[s : s + _BLOCK] = coef[:, 0]
    return out


def _solve(m: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve the small normal equations; fall back to least squares where singular."""
    try:
        return np.asarray(np.linalg.solve(m, rhs[..., None])[..., 0])
    except np.linalg.LinAlgError:
        return np.stack([np.linalg.lstsq(mi, ri, rcond=None)[0] for mi, ri in zip(m, rhs, strict=True)])


@dataclass(frozen=True)
class SmoothCalibration:
    """Loess-smoothed observed outcome against predicted risk, and Austin & Steyerberg's metrics."""

    grid: np.ndarray  # predicted risks where the curve is evaluated
    curve: np.ndarray  # smoothed observed risk at ``grid``
    ici: float
    e50: float
    e90: float
    emax: float


def smoothed_calibration(
    p: np.ndarray, y: np.ndarray, *, span: float = 0.75, degree: int = 2, max_points: int = MAX_POINTS
) -> SmoothCalibration:
    """ICI, E50, E90, Emax of predicted risks ``p`` against outcomes (0/1 or pseudo-observations)."""
    p = np.asarray(p, float)
    y = np.asarray(y, float)
    if len(p) != len(y):
        raise AnalysisError(f"calibration: {len(p)} predictions for {len(y)} outcomes")
    uniq = np.unique(p)
    if len(uniq) < 2:
        raise AnalysisError("smoothed calibration: predictions are constant; the curve is not estimable")
    grid = uniq if len(uniq) <= max_points else np.quantile(uniq, np.linspace(0, 1, max_points))
    curve = loess(p, y, at=grid, span=span, degree=degree)
    fitted = np.interp(p, grid, curve)
    diff = np.abs(fitted - p)
    return SmoothCalibration(
        grid=grid,
        curve=curve,
        ici=float(diff.mean()),
        e50=float(np.median(diff)),
        e90=float(np.quantile(diff, 0.9)),
        emax=float(diff.max()),
    )
