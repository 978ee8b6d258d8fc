"""The log-rank test between groups, optionally stratified (as R's ``survdiff``).

``rho`` gives the Fleming-Harrington G^rho family (Harrington & Fleming 1982), as
``survdiff(rho = )``: each event time t_j is weighted by w_j = S(t_j-)^rho, the left-continuous
Kaplan-Meier estimate of the pooled sample (within the stratum, when stratified).  Observed and
expected counts are weighted sums (sum w_j d_gj and sum w_j d_j Y_gj / Y_j), the covariance uses
w_j^2.  rho = 0 is the log-rank test, rho = 1 the Peto-Peto (Prentice) modification of the
Gehan-Wilcoxon test, which weighs early differences more.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import linalg, stats

from toolkit.errors import AnalysisError


@dataclass(frozen=True)
class LogRankResult:
    groups: tuple[str, ...]
    observed: tuple[float, ...]
    expected: tuple[float, ...]
    chisq: float
    df: int
    p: float
    stratified: bool = False
    rho: float = 0.0  # Fleming-Harrington weight S(t-)^rho; observed/expected are weighted sums
    events: tuple[int, ...] = ()  # the unweighted event count per group

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "type": "logrank",
            "chisq": self.chisq,
            "df": self.df,
            "p": self.p,
            "stratified": self.stratified,
            "groups": [
                {"group": g, "observed": o, "expected": e}
                for g, o, e in zip(self.groups, self.observed, self.expected, strict=True)
            ],
        }
        if self.rho != 0:
            # weighted sums are statistics, not counts: released under their own names, beside
            # the event count (which disclosure control treats as the count it is)
            out["groups"] = [
                {"group": g, "events": n, "weighted_observed": o, "weighted_expected": e}
                for g, n, o, e in zip(self.groups, self.events, self.observed, self.expected, strict=True)
            ]
            out["rho"] = self.rho
        return out

    def _repr_html_(self) -> str:
        digits = 0 if self.rho == 0 else 1  # weighted counts are not whole numbers
        rows = "".join(
            f"<tr><td>{html.escape(g)}</td><td>{o:.{digits}f}</td><td>{e:.1f}</td></tr>"
            for g, o, e in zip(self.groups, self.observed, self.expected, strict=True)
        )
        name = "log-rank" if self.rho == 0 else f"Fleming–Harrington (ρ={self.rho:g})"
        kind = f"Stratified {name}" if self.stratified else name[0].upper() + name[1:]
        return (
            f"<p>{kind} test: χ²={self.chisq:.2f}, df={self.df}, p={self.p:.3g}</p>"
            f"<table><tr><th>group</th><th>observed</th><th>expected</th></tr>{rows}</table>"
        )


def _oe_var(
    time: np.ndarray, event: np.ndarray, g: np.ndarray, k: int, rho: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted observed, expected and the covariance of O-E for one stratum (hypergeometric)."""
    order = np.argsort(time, kind="stable")
    t, e, gg = time[order], event[order], g[order]
    _, first = np.unique(t, return_index=True)
    n = len(t)
    at_risk_total = n - first
    onehot = np.zeros((n, k))
    onehot[np.arange(n), gg] = 1.0
    # number at risk per group at each distinct time: reverse cumulative counts
    rev = np.cumsum(onehot[::-1], axis=0)[::-1]
    n_g = rev[first]  # (times, k)
    d_g = np.add.reduceat(onehot * e[:, None], first, axis=0)
    d = d_g.sum(axis=1)
    nt = at_risk_total.astype(float)
    mask = d > 0
    n_g, d_g, d, nt = n_g[mask], d_g[mask], d[mask], nt[mask]
    w = _fh_weights(d, nt, rho)
    exp_g = n_g * (d / nt)[:, None]
    obs = (d_g * w[:, None]).sum(axis=0)
    expd = (exp_g * w[:, None]).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(nt > 1, d * (nt - d) / (nt * nt * (nt - 1)), 0.0) * w * w
    p_ = n_g  # (times, k)
    var = np.einsum("t,ti,tj->ij", factor, p_, p_) * -1.0
    var[np.diag_indices(k)] += (factor[:, None] * p_ * nt[:, None]).sum(axis=0)
    return obs, expd, var


def _fh_weights(d: np.ndarray, nt: np.ndarray, rho: float) -> np.ndarray:
    """S(t_j-)^rho at each event time, S the Kaplan-Meier of the pooled stratum (1 when rho = 0)."""
    if rho == 0:
        return np.ones(len(d))
    km_after = np.cumprod(1.0 - d / nt)
    return np.asarray(np.concatenate([[1.0], km_after[:-1]]) ** rho)


def logrank_test(
    frame: pd.DataFrame,
    *,
    time: str = "time",
    event: str = "event",
    by: str,
    strata: str | None = None,
    rho: float = 0.0,
) -> LogRankResult:
    """Log-rank test of equal hazards across the levels of ``by`` (event == 1 is the event).

    ``rho > 0`` weights each event time by S(t-)^rho (Fleming-Harrington G^rho, R's
    ``survdiff(rho = )``; ``rho = 1`` is the Peto-Peto test).
    """
    if not (np.isfinite(rho) and rho >= 0):
        raise AnalysisError(f"log-rank: rho must be a finite number >= 0; got {rho!r}")
    data = frame.dropna(subset=[time, event, by] + ([strata] if strata else []))
    labels = sorted(data[by].astype(str).unique())
    if len(labels) < 2:
        raise AnalysisError(f"log-rank: column {by!r} has fewer than two groups")
    code = {lab: i for i, lab in enumerate(labels)}
    g = data[by].astype(str).map(code).to_numpy()
    t = data[time].to_numpy(float)
    e = (data[event].astype(int) == 1).to_numpy().astype(float)
    if e.sum() == 0:
        raise AnalysisError("log-rank: there are no events")
    k = len(labels)
    obs = np.zeros(k)
    expd = np.zeros(k)
    var = np.zeros((k, k))
    keys = data[strata].astype(str).to_numpy() if strata else np.zeros(len(data), dtype=object)
    for s in np.unique(keys):
        m = keys == s
        o, ex, v = _oe_var(t[m], e[m], g[m], k, rho)
        obs += o
        expd += ex
        var += v
    diff = obs - expd
    # generalized inverse on the first k-1 groups (the variance is singular by construction)
    sub = var[: k - 1, : k - 1]
    chisq = float(diff[: k - 1] @ linalg.pinv(sub) @ diff[: k - 1])
    df = int(np.linalg.matrix_rank(sub))
    return LogRankResult(
        tuple(labels),
        tuple(float(x) for x in obs),
        tuple(float(x) for x in expd),
        chisq,
        df,
        float(stats.chi2.sf(chisq, df)),
        stratified=strata is not None,
        rho=float(rho),
        events=tuple(int(e[g == i].sum()) for i in range(k)),
    )
