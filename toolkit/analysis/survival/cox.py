"""Cox proportional hazards by Newton-Raphson on the partial likelihood.

Efron (default, as R's ``coxph``) and Breslow ties, strata, optional robust (sandwich)
variance with clusters.  The per-iteration sufficient statistics come from
:func:`cox_stats`, which the federated coordinator also uses site by site: summing site
statistics gives exactly the pooled fit.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from toolkit.analysis.design import Design, complete_cases, design_matrix
from toolkit.analysis.survival.phtest import PHTestResult, cox_zph
from toolkit.errors import AnalysisError, ConvergenceError

Ties = Literal["efron", "breslow"]


@dataclass(frozen=True)
class CoxStats:
    """Log partial likelihood, score and information at ``beta`` (summed over strata)."""

    loglik: float
    score: np.ndarray
    information: np.ndarray


def _stratum_stats(
    x: np.ndarray, t: np.ndarray, d: np.ndarray, eta: np.ndarray, ties: Ties, want_resid: bool = False
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray | None]:
    """Sufficient statistics for one stratum; rows must be sorted by time ascending."""
    n, p = x.shape
    r = np.exp(eta)
    uniq, first = np.unique(t, return_index=True)
    # risk-set sums at each distinct time: reverse cumulative sums from the first row at that time
    rs0 = np.cumsum(r[::-1])[::-1]
    rs1 = np.cumsum((r[:, None] * x)[::-1], axis=0)[::-1]
    s0 = rs0[first]
    s1 = rs1[first]
    d_cnt = np.add.reduceat(d, first)
    d_s0 = np.add.reduceat(r * d, first)
    d_s1 = np.add.reduceat(r[:, None] * x * d[:, None], first, axis=0)
    ev_times = np.nonzero(d_cnt > 0)[0]
    counts = d_cnt[ev_times].astype(int)
    tt = np.repeat(ev_times, counts)  # one entry per (time, l)
    ll = np.arange(len(tt)) - np.repeat(np.cumsum(counts) - counts, counts)
    frac = ll / np.repeat(counts, counts) if ties == "efron" else np.zeros(len(tt))
    s0l = s0[tt] - frac * d_s0[tt]
    s1l = s1[tt] - frac[:, None] * d_s1[tt]
    if np.any(s0l <= 0):
        raise ConvergenceError("Cox: a risk set became empty; check for extreme covariate values")
    loglik = float(np.sum(eta * d) - np.sum(np.log(s0l)))
    a = s1l / s0l[:, None]
    score = (x * d[:, None]).sum(axis=0) - a.sum(axis=0)
    # information = X' diag(w) X - A'A with w_j = r_j * (C_j - d_j * a_t(j))
    c_time = np.zeros(len(uniq))
    np.add.at(c_time, tt, 1.0 / s0l)
    a_time = np.zeros(len(uniq))
    np.add.at(a_time, tt, frac / s0l)
    time_idx = np.repeat(np.arange(len(uniq)), np.diff(np.append(first, n)))
    cum_c = np.cumsum(c_time)[time_idx]
    w = r * (cum_c - d * a_time[time_idx])
    info = (x * w[:, None]).T @ x - a.T @ a
    resid = None
    if want_resid:
        # score residuals (for the robust variance): the martingale-based form of Lin & Wei
        mean_t = np.zeros((len(uniq), p))
        # Efron: each tied event's own mean; for the residual use the average over l
        cnt_time = np.zeros(len(uniq))
        np.add.at(cnt_time, tt, 1.0)
        np.add.at(mean_t, tt, a)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_ev = np.where(cnt_time[:, None] > 0, mean_t / np.maximum(cnt_time, 1)[:, None], 0.0)
        # hazard increments per distinct time and their weighted means, Efron-adjusted
        dlam = np.zeros(len(uniq))
        np.add.at(dlam, tt, 1.0 / s0l)
        dlam_x = np.zeros((len(uniq), p))
        np.add.at(dlam_x, tt, a / s0l[:, None])
        # subjects at risk share the full increment; tied events get the Efron-weighted share
        dlam_ev = np.zeros(len(uniq))
        np.add.at(dlam_ev, tt, (1 - frac) / s0l)
        dlam_x_ev = np.zeros((len(uniq), p))
        np.add.at(dlam_x_ev, tt, (1 - frac)[:, None] * a / s0l[:, None])
        cum_l = np.cumsum(dlam)
        cum_lx = np.cumsum(dlam_x, axis=0)
        ti = time_idx
        prev_l = np.where(ti > 0, cum_l[np.maximum(ti - 1, 0)], 0.0)
        prev_lx = np.where((ti > 0)[:, None], cum_lx[np.maximum(ti - 1, 0)], 0.0)
        # exposure up to (not including) own time, plus own time: full share if censored or
        # Breslow, Efron share if an event
        own_l = np.where(d > 0, dlam_ev[ti], dlam[ti])
        own_lx = np.where((d > 0)[:, None], dlam_x_ev[ti], dlam_x[ti])
        exposure = x * (prev_l + own_l)[:, None] - (prev_lx + own_lx)
        resid = d[:, None] * (x - mean_ev[ti]) - r[:, None] * exposure
    return loglik, score, info, resid


def cox_stats(
    x: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    strata: np.ndarray | None,
    beta: np.ndarray,
    *,
    ties: Ties = "efron",
) -> CoxStats:
    """Summed sufficient statistics over strata at ``beta`` (inputs in any order)."""
    eta = x @ beta
    total_ll = 0.0
    score = np.zeros(x.shape[1])
    info = np.zeros((x.shape[1], x.shape[1]))
    keys = np.zeros(len(time), dtype=int) if strata is None else strata
    for s in np.unique(keys):
        idx = np.nonzero(keys == s)[0]
        idx = idx[np.argsort(time[idx], kind="stable")]
        ll, sc, inf, _ = _stratum_stats(x[idx], time[idx], event[idx], eta[idx], ties)
        total_ll += ll
        score += sc
        info += inf
    return CoxStats(total_ll, score, info)


def score_residuals(
    x: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    strata: np.ndarray | None,
    beta: np.ndarray,
    *,
    ties: Ties = "efron",
) -> np.ndarray:
    out = np.zeros_like(x, dtype=float)
    eta = x @ beta
    keys = np.zeros(len(time), dtype=int) if strata is None else strata
    for s in np.unique(keys):
        idx = np.nonzero(keys == s)[0]
        idx = idx[np.argsort(time[idx], kind="stable")]
        *_, resid = _stratum_stats(x[idx], time[idx], event[idx], eta[idx], ties, want_resid=True)
        assert resid is not None
        out[idx] = resid
    return out


NewtonSteps = Generator[np.ndarray, CoxStats, tuple[np.ndarray, CoxStats, int]]


def newton_steps(p: int, *, max_iter: int = 30, tol: float = 1e-9, what: str = "Cox") -> NewtonSteps:
    """Newton-Raphson with step halving, as a generator: yields each ``beta`` at which the
    statistics are needed, receives them, and returns ``(beta, stats, iterations)``.

    Convergence follows R's ``coxph``: relative change in the log-likelihood below ``tol``.  The
    pooled fits drive it with a function (:func:`newton_raphson`); the federated coordinator
    drives it with statistics assembled from the sites, so both take exactly the same steps.
    """
    beta = np.zeros(p)
    cur = yield beta
    for it in range(1, max_iter + 1):
        try:
            step = np.linalg.solve(cur.information, cur.score)
        except np.linalg.LinAlgError:
            raise ConvergenceError(
                f"{what}: the information matrix is singular. Try: remove constant or collinear "
                "covariates; merge sparse categories; check for a covariate that separates events."
            ) from None
        new_beta = beta + step
        new = yield new_beta
        halvings = 0
        while not np.isfinite(new.loglik) or new.loglik < cur.loglik - 1e-12:
            step /= 2
            new_beta = beta + step
            new = yield new_beta
            halvings += 1
            if halvings > 30:
                raise ConvergenceError(f"{what}: step halving failed to improve the likelihood")
        done = abs(new.loglik - cur.loglik) <= tol * abs(new.loglik) + 1e-12
        beta, cur = new_beta, new
        if done:
            return beta, cur, it
    raise ConvergenceError(
        f"{what}: did not converge in {max_iter} iterations. Try: rescale covariates; remove a "
        "covariate with (quasi-)complete separation; check for very few events per covariate."
    )


def newton_raphson(
    stat_fn: Callable[[np.ndarray], CoxStats],
    p: int,
    *,
    max_iter: int = 30,
    tol: float = 1e-9,
    what: str = "Cox",
) -> tuple[np.ndarray, CoxStats, int]:
    """Maximise a concave log-likelihood given ``stat_fn(beta) -> CoxStats`` (see :func:`newton_steps`)."""
    steps = newton_steps(p, max_iter=max_iter, tol=tol, what=what)
    beta = next(steps)
    while True:
        try:
            beta = steps.send(stat_fn(beta))
        except StopIteration as stop:
            return stop.value


@dataclass(frozen=True)
class CoxTerm:
    term: str
    coef: float
    se: float
    hr: float
    hr_lower: float
    hr_upper: float
    z: float
    p: float
    robust_se: float | None = None


def cox_terms(
    names: Sequence[str],
    beta: np.ndarray,
    se: np.ndarray,
    *,
    robust_se: np.ndarray | None = None,
    conf_level: float = 0.95,
) -> list[CoxTerm]:
    """Hazard ratios with Wald CIs and p-values (from the robust SEs when given)."""
    z_crit = stats.norm.ppf(1 - (1 - conf_level) / 2)
    use_se = robust_se if robust_se is not None else se
    terms = []
    for j, name in enumerate(names):
        z = beta[j] / use_se[j]
        with np.errstate(over="ignore"):  # separation: exp overflows to inf, flagged by the caller
            ci = (float(np.exp(beta[j] - z_crit * use_se[j])), float(np.exp(beta[j] + z_crit * use_se[j])))
        terms.append(
            CoxTerm(
                name,
                float(beta[j]),
                float(se[j]),
                float(np.exp(beta[j])),
                *ci,
                float(z),
                float(2 * stats.norm.sf(abs(z))),
                None if robust_se is None else float(robust_se[j]),
            )
        )
    return terms


@dataclass(frozen=True)
class CoxResult:
    terms: tuple[CoxTerm, ...]
    ties: str
    n: int
    events: int
    loglik: float
    loglik_null: float
    concordance: float
    iterations: int
    strata: str | None = None
    robust: bool = False
    covariance: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))
    warnings: tuple[str, ...] = ()
    cause: int = 1  # event code modelled; other codes censored (cause-specific hazards for k >= 2)
    ph_test: PHTestResult | None = None  # cox.zph (transform "km"), per covariate and global

    @property
    def params(self) -> pd.Series:
        return pd.Series({t.term: t.coef for t in self.terms})

    def to_dict(self) -> dict[str, object]:
        return {
            "type": "cox",
            "cause": self.cause,
            "ties": self.ties,
            "n": self.n,
            "events": self.events,
            "loglik": self.loglik,
            "loglik_null": self.loglik_null,
            "lr_test": {
                "chisq": 2 * (self.loglik - self.loglik_null),
                "df": len(self.terms),
                "p": float(stats.chi2.sf(2 * (self.loglik - self.loglik_null), len(self.terms))),
            },
            "concordance": self.concordance,
            "strata": self.strata,
            "robust": self.robust,
            "iterations": self.iterations,
            "coefficients": [t.__dict__ for t in self.terms],
            "ph_test": self.ph_test.to_dict() if self.ph_test is not None else None,
            "warnings": list(self.warnings),
        }

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(t.term)}</td><td>{t.hr:.3f}</td><td>{t.hr_lower:.3f}–{t.hr_upper:.3f}</td>"
            f"<td>{t.p:.3g}</td></tr>"
            for t in self.terms
        )
        return (
            f"<p>Cox PH ({self.ties} ties): n={self.n}, events={self.events}, C={self.concordance:.3f}</p>"
            f"<table><tr><th>term</th><th>HR</th><th>95% CI</th><th>p</th></tr>{rows}</table>"
            + (
                f"<p>Proportional-hazards test (cox.zph): global χ²={self.ph_test.global_test.chisq:.2f}, "
                f"df={self.ph_test.global_test.df}, p={self.ph_test.global_test.p:.3g}</p>"
                if self.ph_test is not None
                else ""
            )
        )


def fit_cox(
    frame: pd.DataFrame,
    *,
    time: str = "time",
    event: str = "event",
    covariates: Sequence[str],
    ties: Ties = "efron",
    strata: str | None = None,
    cluster: str | None = None,
    robust: bool = False,
    conf_level: float = 0.95,
    cause: int = 1,
) -> CoxResult:
    """Fit a Cox model.  Text covariates become indicators against their first sorted level.

    ``event`` == ``cause`` (default 1) is the event; every other value is censored, so
    ``cause=k`` fits the cause-specific hazard of competing cause k.  The result carries the
    proportional-hazards test (R's ``cox.zph``) in ``ph_test``.
    """
    from toolkit.analysis.survival.concordance import concordance_index

    cols = [time, event, *covariates] + [c for c in (strata, cluster) if c]
    data, warnings = complete_cases(frame, cols, "Cox")
    design = design_matrix(data, covariates)
    x = design.matrix
    t = data[time].to_numpy(float)
    d = (data[event].astype(int) == cause).to_numpy().astype(float)
    if d.sum() == 0:
        raise AnalysisError(
            f"Cox: there are no events (code {cause} in column {event!r}); a hazard ratio cannot be estimated"
        )
    const = [n for n, col in zip(design.names, x.T, strict=True) if np.ptp(col) == 0]
    if const:
        raise AnalysisError(f"Cox: covariate(s) {const} are constant; remove them")
    if np.linalg.matrix_rank(x - x.mean(axis=0)) < x.shape[1]:
        raise AnalysisError(
            f"Cox: covariates {design.names} are collinear (the design matrix is rank deficient)"
        )
    sk = pd.factorize(data[strata].astype(str))[0] if strata else None
    xc = x - x.mean(axis=0)  # centring, as R does, for numerical stability only

    def fn(b: np.ndarray) -> CoxStats:
        return cox_stats(xc, t, d, sk, b, ties=ties)

    null = fn(np.zeros(x.shape[1]))
    beta, final, iters = newton_raphson(fn, x.shape[1])
    if np.any(np.abs(beta) > 20):
        big = [n for n, b in zip(design.names, beta, strict=True) if abs(b) > 20]
        warnings.append(
            f"very large coefficients for {big}: possible (quasi-)complete separation; their hazard "
            "ratios and confidence limits are not meaningful (infinite limits are written as null)"
        )
    cov = np.linalg.inv(final.information)
    se = np.sqrt(np.diag(cov))
    rse = None
    if robust or cluster:
        resid = score_residuals(xc, t, d, sk, beta, ties=ties)
        if cluster:
            groups = pd.factorize(data[cluster].astype(str))[0]
            resid = np.vstack([resid[groups == g].sum(axis=0) for g in range(groups.max() + 1)])
        dfbeta = resid @ cov
        rcov = dfbeta.T @ dfbeta
        rse = np.sqrt(np.diag(rcov))
    terms = cox_terms(design.names, beta, se, robust_se=rse, conf_level=conf_level)
    c_index = concordance_index(t, d, x @ beta, strata=sk)
    try:
        ph: PHTestResult | None = cox_zph(
            x, t, d, beta, strata=sk, ties=ties, term_columns=_term_columns(design, covariates)
        )
    except AnalysisError as exc:
        ph = None
        warnings.append(f"{exc}; no proportional-hazards test")
    return CoxResult(
        tuple(terms),
        ties,
        len(data),
        int(d.sum()),
        final.loglik,
        null.loglik,
        c_index,
        iters,
        strata,
        rse is not None,
        cov,
        tuple(warnings),
        cause,
        ph,
    )


def _term_columns(design: Design, covariates: Sequence[str]) -> list[tuple[str, list[int]]]:
    """Design columns of each covariate (a categorical covariate spans its indicators)."""
    out = []
    for c in covariates:
        if c in design.levels:
            out.append((c, [design.names.index(f"{c}={lv}") for lv in design.levels[c][1:]]))
        else:
            out.append((c, [design.names.index(c)]))
    return out


def baseline_cumhaz(
    x: np.ndarray, time: np.ndarray, event: np.ndarray, beta: np.ndarray, *, ties: Ties = "efron"
) -> tuple[np.ndarray, np.ndarray]:
    """Breslow/Efron baseline cumulative hazard at each distinct event time (for x = 0)."""
    order = np.argsort(time, kind="stable")
    t, d, r = time[order], event[order], np.exp(x[order] @ beta)
    uniq, first = np.unique(t, return_index=True)
    s0 = np.cumsum(r[::-1])[::-1][first]
    d_cnt = np.add.reduceat(d, first)
    d_s0 = np.add.reduceat(r * d, first)
    inc = np.zeros(len(uniq))
    for i in np.nonzero(d_cnt > 0)[0]:
        k = int(d_cnt[i])
        if ties == "efron" and k > 1:
            inc[i] = sum(1.0 / (s0[i] - (j / k) * d_s0[i]) for j in range(k))
        else:
            inc[i] = k / s0[i]
    keep = d_cnt > 0
    return uniq[keep], np.cumsum(inc)[keep]
