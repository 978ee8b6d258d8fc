"""The proportional-hazards test from scaled Schoenfeld residuals, per term and global, as R
``survival`` (>= 3.0) ``cox.zph(fit)`` with its default ``transform = "km"``.

For a fitted Cox model with coefficients ``beta``, consider the larger model with one extra
coefficient per covariate for ``x * g(t)``, where ``g(t) = 1 - KM(t-)`` (the left-continuous
Kaplan-Meier of the whole sample, ignoring strata), centred on its mean over the events.  The
test is the score test of "all extra coefficients are 0" at ``(beta, 0)``:

    U = sum over events of g(t_i) * (x_i - xbar(t_i))            (Schoenfeld residuals times g)
    I = [[I_bb, I_bg], [I_gb, I_gg]],  I_bg = sum_e g_e V_e,  I_gg = sum_e g_e^2 V_e
    chisq = (0, U)' I^{-1} (0, U)

with ``V_e`` the (Efron or Breslow) weighted covariance of the covariates at event e.  A term
with several design columns (a categorical covariate) is tested jointly with df = its columns;
the global test uses every column.  This replaced the older correlation test of Grambsch and
Therneau (1994) in survival 3.0; lifelines' ``proportional_hazard_test`` is that older test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from toolkit.errors import AnalysisError


@dataclass(frozen=True)
class PHTestRow:
    term: str
    chisq: float
    df: int
    p: float

    def to_dict(self) -> dict[str, object]:
        return {"term": self.term, "chisq": self.chisq, "df": self.df, "p": self.p}


@dataclass(frozen=True)
class PHTestResult:
    terms: tuple[PHTestRow, ...]
    global_test: PHTestRow
    transform: str = "km"

    def to_dict(self) -> dict[str, object]:
        return {
            "method": "score test on scaled Schoenfeld residuals (R survival cox.zph)",
            "transform": self.transform,
            "terms": [r.to_dict() for r in self.terms],
            "global": self.global_test.to_dict(),
        }

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{r.term}</td><td>{r.chisq:.3f}</td><td>{r.df}</td><td>{r.p:.3g}</td></tr>"
            for r in (*self.terms, self.global_test)
        )
        return f"<table><tr><th>term</th><th>χ²</th><th>df</th><th>p</th></tr>{rows}</table>"


def km_time_transform(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """``1 - KM(t-)`` at each person's time: the Kaplan-Meier of the whole sample just before t."""
    uniq, first = np.unique(np.sort(time), return_index=True)
    order = np.argsort(time, kind="stable")
    d = np.add.reduceat(event[order].astype(float), first)
    y = (len(time) - first).astype(float)
    surv = np.cumprod(1.0 - d / y)
    left = np.concatenate(([1.0], surv[:-1]))  # KM just before each distinct time
    return 1.0 - left[np.searchsorted(uniq, time)]


def _stratum_parts(
    x: np.ndarray, t: np.ndarray, d: np.ndarray, eta: np.ndarray, g: np.ndarray, efron: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(U_g, I_bb, I_bg, I_gg) of one stratum; rows sorted by time."""
    n = x.shape[0]
    r = np.exp(eta)
    uniq, first = np.unique(t, return_index=True)
    s0 = np.cumsum(r[::-1])[::-1][first]
    s1 = np.cumsum((r[:, None] * x)[::-1], axis=0)[::-1][first]
    d_cnt = np.add.reduceat(d, first)
    d_s0 = np.add.reduceat(r * d, first)
    d_s1 = np.add.reduceat(r[:, None] * x * d[:, None], first, axis=0)
    g_time = np.add.reduceat(g * d, first) / np.maximum(d_cnt, 1)  # every death at a time shares g
    ev = np.nonzero(d_cnt > 0)[0]
    counts = d_cnt[ev].astype(int)
    tt = np.repeat(ev, counts)
    ll = np.arange(len(tt)) - np.repeat(np.cumsum(counts) - counts, counts)
    frac = ll / np.repeat(counts, counts) if efron else np.zeros(len(tt))
    s0l = s0[tt] - frac * d_s0[tt]
    s1l = s1[tt] - frac[:, None] * d_s1[tt]
    a = s1l / s0l[:, None]
    ge = g_time[tt]
    u_g = (g[:, None] * x * d[:, None]).sum(axis=0) - (ge[:, None] * a).sum(axis=0)
    time_idx = np.repeat(np.arange(len(uniq)), np.diff(np.append(first, n)))

    def weighted_info(h: np.ndarray) -> np.ndarray:
        # sum_e h_e * (S2_e / S0_e - a_e a_e'), S2 via per-person weights as in cox._stratum_stats
        c_time = np.zeros(len(uniq))
        np.add.at(c_time, tt, h / s0l)
        a_time = np.zeros(len(uniq))
        np.add.at(a_time, tt, h * frac / s0l)
        w = r * (np.cumsum(c_time)[time_idx] - d * a_time[time_idx])
        return (x * w[:, None]).T @ x - (a * h[:, None]).T @ a

    ones = np.ones(len(tt))
    return u_g, weighted_info(ones), weighted_info(ge), weighted_info(ge * ge)


def cox_zph(
    x: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    beta: np.ndarray,
    *,
    strata: np.ndarray | None = None,
    ties: str = "efron",
    term_columns: Sequence[tuple[str, Sequence[int]]] | None = None,
) -> PHTestResult:
    """The cox.zph test for a Cox fit with coefficients ``beta`` on design ``x``.

    ``term_columns`` groups design columns into terms (default: one term per column), e.g.
    ``[("age", [0]), ("celltype", [1, 2, 3])]``.  ``event`` is 0/1.
    """
    x = np.asarray(x, float)
    time = np.asarray(time, float)
    event = np.asarray(event, float)
    n, p = x.shape
    if event.sum() == 0:
        raise AnalysisError("proportional-hazards test: there are no events")
    ttimes = km_time_transform(time, event)
    gtime = ttimes - ttimes[event == 1].mean()
    xc = x - x.mean(axis=0)
    eta = xc @ beta
    u = np.zeros(2 * p)
    imat = np.zeros((2 * p, 2 * p))
    keys = np.zeros(n, dtype=int) if strata is None else np.asarray(strata)
    for s in np.unique(keys):
        idx = np.nonzero(keys == s)[0]
        idx = idx[np.argsort(time[idx], kind="stable")]
        ug, ibb, ibg, igg = _stratum_parts(
            xc[idx], time[idx], event[idx], eta[idx], gtime[idx], ties == "efron"
        )
        u[p:] += ug
        imat[:p, :p] += ibb
        imat[:p, p:] += ibg
        imat[p:, :p] += ibg.T
        imat[p:, p:] += igg
    groups = list(term_columns) if term_columns is not None else [(f"x{j}", [j]) for j in range(p)]
    rows = []
    for name, cols in groups:
        kk = list(range(p)) + [p + j for j in cols]
        rows.append(_score_row(name, u[kk], imat[np.ix_(kk, kk)], len(cols)))
    return PHTestResult(tuple(rows), _score_row("GLOBAL", u, imat, p))


def _score_row(name: str, u: np.ndarray, imat: np.ndarray, df: int) -> PHTestRow:
    try:
        chisq = float(u @ np.linalg.solve(imat, u))
    except np.linalg.LinAlgError:
        raise AnalysisError(
            f"proportional-hazards test: the information matrix for {name!r} is singular "
            "(all events at one time, or a covariate constant over the event times)"
        ) from None
    return PHTestRow(name, chisq, df, float(stats.chi2.sf(chisq, df)))
