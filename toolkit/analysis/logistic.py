"""Unpenalised logistic regression by Newton-Raphson (= iteratively reweighted least squares).

The per-iteration sufficient statistics come from :func:`logistic_stats` (log-likelihood,
score ``X'(y - mu)`` and information ``X' W X``).  They are sums over persons, so the
federated coordinator adds site statistics and reproduces the pooled fit exactly
(:mod:`toolkit.federated`).  Validated against statsmodels' ``Logit``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special, stats

from toolkit.analysis.design import complete_cases, design_matrix
from toolkit.analysis.survival.cox import CoxStats, newton_raphson
from toolkit.errors import AnalysisError

INTERCEPT = "(Intercept)"


def logistic_stats(x: np.ndarray, y: np.ndarray, beta: np.ndarray) -> CoxStats:
    """Log-likelihood, score and information of a logistic model at ``beta``.

    ``x`` includes the intercept column; ``y`` is 0/1.
    """
    eta = x @ beta
    mu = special.expit(eta)
    loglik = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
    score = x.T @ (y - mu)
    info = (x * (mu * (1.0 - mu))[:, None]).T @ x
    return CoxStats(loglik, score, info)


@dataclass(frozen=True)
class LogisticTerm:
    term: str
    coef: float
    se: float
    odds_ratio: float
    or_lower: float
    or_upper: float
    z: float
    p: float


@dataclass(frozen=True)
class LogisticResult:
    outcome: str
    terms: tuple[LogisticTerm, ...]
    n: int
    events: int
    loglik: float
    loglik_null: float
    iterations: int
    covariance: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))
    warnings: tuple[str, ...] = ()

    @property
    def params(self) -> pd.Series:
        return pd.Series({t.term: t.coef for t in self.terms})

    def to_dict(self) -> dict[str, object]:
        df = len(self.terms) - 1
        chisq = 2 * (self.loglik - self.loglik_null)
        return {
            "type": "logistic",
            "outcome": self.outcome,
            "n": self.n,
            "events": self.events,
            "loglik": self.loglik,
            "loglik_null": self.loglik_null,
            "lr_test": {"chisq": chisq, "df": df, "p": float(stats.chi2.sf(chisq, df)) if df else None},
            "iterations": self.iterations,
            "coefficients": [t.__dict__ for t in self.terms],
            "warnings": list(self.warnings),
        }

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(t.term)}</td><td>{t.odds_ratio:.3f}</td>"
            f"<td>{t.or_lower:.3f}–{t.or_upper:.3f}</td><td>{t.p:.3g}</td></tr>"
            for t in self.terms
        )
        return (
            f"<p>Logistic regression of {html.escape(self.outcome)}: n={self.n}, events={self.events}</p>"
            f"<table><tr><th>term</th><th>OR</th><th>95% CI</th><th>p</th></tr>{rows}</table>"
        )


def logistic_result(
    outcome: str,
    names: Sequence[str],
    beta: np.ndarray,
    final: CoxStats,
    null_loglik: float,
    *,
    n: int,
    events: int,
    iterations: int,
    warnings: Sequence[str] = (),
    conf_level: float = 0.95,
) -> LogisticResult:
    """Assemble the result from a converged fit (shared by the pooled and federated fits)."""
    cov = np.linalg.inv(final.information)
    se = np.sqrt(np.diag(cov))
    z_crit = stats.norm.ppf(1 - (1 - conf_level) / 2)
    terms = []
    for j, name in enumerate(names):
        z = beta[j] / se[j]
        terms.append(
            LogisticTerm(
                name,
                float(beta[j]),
                float(se[j]),
                float(np.exp(beta[j])),
                float(np.exp(beta[j] - z_crit * se[j])),
                float(np.exp(beta[j] + z_crit * se[j])),
                float(z),
                float(2 * stats.norm.sf(abs(z))),
            )
        )
    warn = list(warnings)
    if np.any(np.abs(beta) > 20):
        warn.append("very large coefficients: possible (quasi-)complete separation")
    return LogisticResult(
        outcome, tuple(terms), n, events, final.loglik, null_loglik, iterations, cov, tuple(warn)
    )


def null_loglik(n: int, events: int) -> float:
    """Log-likelihood of the intercept-only model (closed form)."""
    if events in (0, n):
        return 0.0
    p = events / n
    return float(events * np.log(p) + (n - events) * np.log1p(-p))


def fit_logistic(
    frame: pd.DataFrame,
    *,
    outcome: str,
    covariates: Sequence[str],
    levels: dict[str, tuple[str, ...]] | None = None,
    conf_level: float = 0.95,
) -> LogisticResult:
    """Fit ``outcome`` (0/1) on ``covariates`` with an intercept; complete cases.

    Text covariates become indicators against their first sorted level.
    """
    cols = [outcome, *covariates]
    data, warnings = complete_cases(frame, cols, "logistic regression")
    y = data[outcome].astype(float).to_numpy()
    if not np.isin(y, (0.0, 1.0)).all():
        raise AnalysisError(f"logistic regression: outcome {outcome!r} must be 0/1")
    events = int(y.sum())
    if events == 0 or events == len(y):
        raise AnalysisError(f"logistic regression: outcome {outcome!r} has only one value")
    design = design_matrix(data, covariates, levels)
    x = np.column_stack([np.ones(len(data)), design.matrix])
    names = (INTERCEPT, *design.names)
    const = [n for n, col in zip(design.names, design.matrix.T, strict=True) if np.ptp(col) == 0]
    if const:
        raise AnalysisError(f"logistic regression: covariate(s) {const} are constant; remove them")
    if np.linalg.matrix_rank(x) < x.shape[1]:
        raise AnalysisError(
            f"logistic regression: covariates {list(design.names)} are collinear "
            "(the design matrix is rank deficient)"
        )
    beta, final, iters = newton_raphson(
        lambda b: logistic_stats(x, y, b), x.shape[1], what="logistic regression"
    )
    return logistic_result(
        outcome,
        names,
        beta,
        final,
        null_loglik(len(y), events),
        n=len(y),
        events=events,
        iterations=iters,
        warnings=warnings,
        conf_level=conf_level,
    )
