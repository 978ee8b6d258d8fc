"""Fine-Gray proportional subdistribution hazards regression (Fine & Gray 1999, JASA 94:496-509),
as R's ``cmprsk::crr``.

The subdistribution hazard of cause k is modelled as ``h_k(t | x) = h_k0(t) exp(x'beta)``.  The
estimate maximises the log pseudo-partial likelihood (Breslow ties, as ``crr``)

    sum over cause-k event times t_j of [ sum_{i in D_j} x_i'beta - d_j log S0(t_j) ],
    S0(t) = sum_i w_i(t) exp(x_i'beta),

where the weight is 1 while a person is event-free (time >= t) and, after a competing event at
T_i < t, the inverse-probability-of-censoring weight ``G(t-) / G(T_i-)`` with ``G`` the
Kaplan-Meier estimate of the censoring distribution.  The variance is Fine and Gray's sandwich
``H^{-1} (sum_i (eta_i + psi_i)(eta_i + psi_i)') H^{-1}``, where ``eta_i`` is person i's score
residual and ``psi_i`` accounts for the estimation of ``G`` -- what ``crr`` reports.  (R's
``finegray()`` + weighted ``coxph`` gives slightly different coefficients, because it evaluates
``G`` differently at tied times, and a model-based variance that ignores both the weighting and
the estimation of ``G``.)  Every sum is an O(n log n) cumulative sum; nothing is O(n^2).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from toolkit.analysis.design import complete_cases, design_matrix
from toolkit.analysis.survival.cox import CoxStats, newton_raphson
from toolkit.errors import AnalysisError


@dataclass(frozen=True)
class FineGrayTerm:
    term: str
    coef: float
    se: float
    shr: float
    shr_lower: float
    shr_upper: float
    z: float
    p: float


@dataclass(frozen=True)
class FineGrayResult:
    terms: tuple[FineGrayTerm, ...]
    cause: int
    n: int
    events: int
    competing: int
    loglik: float
    loglik_null: float
    iterations: int
    covariance: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))
    conf_level: float = 0.95
    warnings: tuple[str, ...] = ()

    @property
    def params(self) -> pd.Series:
        return pd.Series({t.term: t.coef for t in self.terms})

    def to_dict(self) -> dict[str, object]:
        return {
            "type": "fine_gray",
            "cause": self.cause,
            "ties": "breslow",
            "variance": "sandwich (Fine & Gray 1999, as cmprsk::crr)",
            "n": self.n,
            "events": self.events,
            "competing": {"events": self.competing},  # nested so that disclosure control sees a count key
            "loglik": self.loglik,
            "loglik_null": self.loglik_null,
            "iterations": self.iterations,
            "conf_level": self.conf_level,
            "coefficients": [dict(t.__dict__) for t in self.terms],
            "warnings": list(self.warnings),
        }

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(t.term)}</td><td>{t.shr:.3f}</td><td>{t.shr_lower:.3f}–{t.shr_upper:.3f}</td>"
            f"<td>{t.p:.3g}</td></tr>"
            for t in self.terms
        )
        warn = "".join(f"<p>⚠ {html.escape(w)}</p>" for w in self.warnings)
        return (
            f"<p>Fine–Gray subdistribution hazards, cause {self.cause}: n={self.n}, events={self.events}</p>"
            f"<table><tr><th>term</th><th>SHR</th><th>95% CI</th><th>p</th></tr>{rows}</table>{warn}"
        )


@dataclass(frozen=True)
class _Data:
    """Sorted data and everything about it that does not depend on beta."""

    x: np.ndarray  # (n, p), centred
    time: np.ndarray
    fail: np.ndarray  # bool: event of the cause of interest
    comp: np.ndarray  # bool: competing event
    cens: np.ndarray  # bool: censored
    g_minus: np.ndarray  # G(T_i-), censoring survival just before each person's time
    first: np.ndarray  # first row of each distinct time
    time_idx: np.ndarray  # each row's distinct-time index
    ftimes: np.ndarray  # distinct-time indices with failures
    d: np.ndarray  # failures at those times
    g_fail: np.ndarray  # G(t_j-) at those times


def _prepare(x: np.ndarray, t: np.ndarray, status: np.ndarray, cause: int) -> _Data:
    order = np.argsort(t, kind="stable")
    x, t, status = x[order], t[order], status[order]
    uniq, first = np.unique(t, return_index=True)
    n = len(t)
    time_idx = np.repeat(np.arange(len(uniq)), np.diff(np.append(first, n)))
    cens = status == 0
    fail = status == cause
    comp = ~cens & ~fail
    # Kaplan-Meier of the censoring distribution, left limit at each distinct time
    y = (n - first).astype(float)
    c_cnt = np.add.reduceat(cens.astype(float), first)
    g = np.cumprod(1.0 - c_cnt / y)
    g_left = np.concatenate(([1.0], g[:-1]))
    d_cnt = np.add.reduceat(fail.astype(float), first)
    ftimes = np.nonzero(d_cnt > 0)[0]
    return _Data(
        x, t, fail, comp, cens, g_left[time_idx], first, time_idx, ftimes, d_cnt[ftimes], g_left[ftimes]
    )


def _risk_sums(
    data: _Data, r: np.ndarray, with_second: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """S0, S1 (and S2) at each failure time: the event-free plus the IPC-weighted competing."""
    x = data.x
    first_f = data.first[data.ftimes]
    s0 = np.cumsum(r[::-1])[::-1][first_f]
    s1 = np.cumsum((r[:, None] * x)[::-1], axis=0)[::-1][first_f]
    # competing persons who left strictly before each failure time: prefix sums up to first_f
    a = np.where(data.comp, r / data.g_minus, 0.0)
    c0 = np.concatenate(([0.0], np.cumsum(a)))[first_f]
    c1 = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(a[:, None] * x, axis=0)])[first_f]
    s0 = s0 + data.g_fail * c0
    s1 = s1 + data.g_fail[:, None] * c1
    s2 = None
    if with_second:
        xx = x[:, :, None] * x[:, None, :]
        s2 = np.cumsum((r[:, None, None] * xx)[::-1], axis=0)[::-1][first_f]
        c2 = np.concatenate([np.zeros((1, *xx.shape[1:])), np.cumsum(a[:, None, None] * xx, axis=0)])[first_f]
        s2 = s2 + data.g_fail[:, None, None] * c2
    return s0, s1, s2


def _stats(data: _Data, beta: np.ndarray) -> CoxStats:
    eta = data.x @ beta
    r = np.exp(eta)
    s0, s1, s2 = _risk_sums(data, r, with_second=True)
    assert s2 is not None
    xbar = s1 / s0[:, None]
    loglik = float(eta[data.fail].sum() - np.sum(data.d * np.log(s0)))
    score = data.x[data.fail].sum(axis=0) - (data.d[:, None] * xbar).sum(axis=0)
    info = np.einsum("j,jkl->kl", data.d / s0, s2) - np.einsum("j,jk,jl->kl", data.d, xbar, xbar)
    return CoxStats(loglik, score, info)


def _sandwich(data: _Data, beta: np.ndarray, info: np.ndarray) -> np.ndarray:
    """Fine & Gray's variance: H^-1 (sum_i (eta_i + psi_i)^2) H^-1, term by term as crr."""
    x = data.x
    n, p = x.shape
    r = np.exp(x @ beta)
    s0, s1, _ = _risk_sums(data, r, with_second=False)
    xbar = s1 / s0[:, None]
    nt = len(data.first)
    # cumulative hazard sums over failure times, indexed by distinct time
    inc0 = np.zeros(nt)
    inc1 = np.zeros((nt, p))
    inc0[data.ftimes] = data.d / s0
    inc1[data.ftimes] = (data.d / s0)[:, None] * xbar
    ginc0 = np.zeros(nt)
    ginc1 = np.zeros((nt, p))
    ginc0[data.ftimes] = data.d * data.g_fail / s0
    ginc1[data.ftimes] = (data.d * data.g_fail / s0)[:, None] * xbar
    c0, c1 = np.cumsum(inc0), np.cumsum(inc1, axis=0)
    d0, d1 = np.cumsum(ginc0), np.cumsum(ginc1, axis=0)
    ti = data.time_idx
    # eta_i: own event term minus the compensator over the time at risk
    eta_res = -r[:, None] * (x * c0[ti][:, None] - c1[ti])
    fail_rows = np.nonzero(data.fail)[0]
    xbar_by_time = np.zeros((nt, p))
    xbar_by_time[data.ftimes] = xbar
    eta_res[fail_rows] += x[fail_rows] - xbar_by_time[ti[fail_rows]]
    comp_rows = np.nonzero(data.comp)[0]
    wr = r[comp_rows] / data.g_minus[comp_rows]
    eta_res[comp_rows] -= wr[:, None] * (
        x[comp_rows] * (d0[-1] - d0[ti[comp_rows]])[:, None] - (d1[-1] - d1[ti[comp_rows]])
    )
    # psi_i: the censoring martingale weighted by q(u)/Y(u), q only needed at censoring times
    a = np.where(data.comp, r / data.g_minus, 0.0)
    a0 = np.concatenate(([0.0], np.cumsum(a)))[data.first]  # competing with T < u
    a1 = np.vstack([np.zeros((1, p)), np.cumsum(a[:, None] * x, axis=0)])[data.first]
    d0_before = np.concatenate(([0.0], d0[:-1]))  # failures strictly before u
    d1_before = np.vstack([np.zeros((1, p)), d1[:-1]])
    q = a1 * (d0[-1] - d0_before)[:, None] - a0[:, None] * (d1[-1] - d1_before)
    y = (n - data.first).astype(float)
    c_cnt = np.add.reduceat(data.cens.astype(float), data.first)
    comp_part = np.cumsum((c_cnt / y**2)[:, None] * q, axis=0)
    psi = -comp_part[ti]
    cens_rows = np.nonzero(data.cens)[0]
    psi[cens_rows] += q[ti[cens_rows]] / y[ti[cens_rows]][:, None]
    resid = eta_res + psi
    h_inv = np.linalg.inv(info)
    return h_inv @ (resid.T @ resid) @ h_inv


def fine_gray(
    frame: pd.DataFrame,
    *,
    time: str = "time",
    event: str = "event",
    covariates: Sequence[str],
    cause: int = 1,
    conf_level: float = 0.95,
    max_iter: int = 30,
) -> FineGrayResult:
    """Fit a Fine-Gray model for ``cause`` (event codes: 0 censored, k >= 1 cause k).

    Text covariates become indicators against their first sorted level (as :func:`fit_cox`).
    Rows with a missing value are left out (complete cases), with a warning.

    >>> fine_gray(frame, covariates=["age", "sex"], cause=1).to_dict()  # doctest: +SKIP
    """
    if not covariates:
        raise AnalysisError("Fine-Gray: give at least one covariate")
    cols = [time, event, *covariates]
    data, warnings = complete_cases(frame, cols, "Fine-Gray")
    if int(cause) < 1:
        raise AnalysisError(f"Fine-Gray: cause must be an event code >= 1; got {cause}")
    if len(data) == 0:
        raise AnalysisError("Fine-Gray: no complete rows")
    from toolkit.analysis.survival.cif import _event_codes

    status = _event_codes(data[event], event)
    t = data[time].to_numpy(float)
    if np.any(t < 0):
        raise AnalysisError(f"Fine-Gray: column {time!r} has negative times; expected >= 0")
    n_fail = int((status == cause).sum())
    if n_fail == 0:
        raise AnalysisError(f"Fine-Gray: there are no events of cause {cause}; nothing to estimate")
    n_comp = int(((status != 0) & (status != cause)).sum())
    if n_comp == 0:
        warnings.append(
            f"no competing events: the Fine-Gray model for cause {cause} is an ordinary Cox model"
        )
    design = design_matrix(data, covariates)
    x = design.matrix
    const = [nm for nm, col in zip(design.names, x.T, strict=True) if np.ptp(col) == 0]
    if const:
        raise AnalysisError(f"Fine-Gray: covariate(s) {const} are constant; remove them")
    if np.linalg.matrix_rank(x - x.mean(axis=0)) < x.shape[1]:
        raise AnalysisError(
            f"Fine-Gray: covariates {list(design.names)} are collinear (the design matrix is rank deficient)"
        )
    prepared = _prepare(x - x.mean(axis=0), t, status, int(cause))

    def fn(b: np.ndarray) -> CoxStats:
        return _stats(prepared, b)

    null = fn(np.zeros(x.shape[1]))
    beta, final, iters = newton_raphson(fn, x.shape[1], max_iter=max_iter, what="Fine-Gray")
    if np.any(np.abs(beta) > 20):
        big = [n for n, b in zip(design.names, beta, strict=True) if abs(b) > 20]
        warnings.append(
            f"very large coefficients for {big}: possible (quasi-)complete separation; their "
            "subdistribution hazard ratios and confidence limits are not meaningful"
        )
    cov = _sandwich(prepared, beta, final.information)
    se = np.sqrt(np.diag(cov))
    zc = float(stats.norm.ppf(1 - (1 - conf_level) / 2))
    terms = []
    for j, name in enumerate(design.names):
        z = beta[j] / se[j]
        with np.errstate(over="ignore"):  # separation: exp overflows to inf, flagged above
            shr = (
                float(np.exp(beta[j])),
                float(np.exp(beta[j] - zc * se[j])),
                float(np.exp(beta[j] + zc * se[j])),
            )
        terms.append(
            FineGrayTerm(
                name,
                float(beta[j]),
                float(se[j]),
                *shr,
                float(z),
                float(2 * stats.norm.sf(abs(z))),
            )
        )
    return FineGrayResult(
        tuple(terms),
        int(cause),
        len(data),
        n_fail,
        n_comp,
        final.loglik,
        null.loglik,
        iters,
        cov,
        conf_level,
        tuple(warnings),
    )
