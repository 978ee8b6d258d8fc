"""Multiple imputation of covariates by chained equations, and Rubin's rules.

Imputation uses statsmodels' ``MICEData`` (fully conditional specification with predictive mean
matching: each incomplete variable is regressed on all the others, the regression's coefficients
are drawn from their approximate posterior, and each missing value takes the observed value of
one of the ``k_pmm`` donors whose predictions are closest, as R's ``mice(method = "pmm")``).
Each of the ``m`` completed data sets comes from its own chain of ``iterations`` cycles, seeded
from the study seed.  Outcome information enters every imputation model, as it must for an
unbiased regression on the imputed covariates (White & Royston, Stat Med 2009): for survival
data the event indicator and the Nelson–Aalen cumulative hazard at the person's time.

Text covariates with missing values are imputed as their level codes (predictive mean matching
only ever imputes a level that occurs); complete text covariates enter the imputation models as
indicators.

:func:`rubin_pool` combines the per-imputation estimates: the pooled estimate is their mean, the
total variance the mean within-imputation variance plus (1 + 1/m) times the between-imputation
variance, with Barnard and Rubin's (1999) small-sample degrees of freedom; it reproduces R's
``mice::pool.scalar`` (tests/_scripts/pool_reference.R).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from toolkit.errors import AnalysisError

LIBRARY = "statsmodels MICEData (chained equations, predictive mean matching)"


@dataclass(frozen=True)
class Pooled:
    """Rubin's rules for one scalar estimate (as ``mice::pool.scalar``)."""

    estimate: float  # qbar
    within: float  # ubar: mean within-imputation variance
    between: float  # b
    total: float  # t = ubar + (1 + 1/m) b
    df: float  # Barnard-Rubin degrees of freedom
    riv: float  # relative increase in variance, (1 + 1/m) b / ubar
    fmi: float  # fraction of missing information

    @property
    def se(self) -> float:
        return float(np.sqrt(self.total))

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        q = stats.t.ppf(0.5 + level / 2, self.df)
        return self.estimate - q * self.se, self.estimate + q * self.se

    @property
    def p(self) -> float:
        return float(2 * stats.t.sf(abs(self.estimate / self.se), self.df)) if self.se > 0 else float("nan")


def rubin_pool(
    estimates: Sequence[float] | np.ndarray, variances: Sequence[float] | np.ndarray, *, df_complete: float
) -> Pooled:
    """Pool ``m`` estimates of one quantity and their variances by Rubin's rules, with
    Barnard-Rubin degrees of freedom for complete-data degrees of freedom ``df_complete``
    (``mice`` uses n - k, or infinity when unknown)."""
    q = np.asarray(estimates, float)
    u = np.asarray(variances, float)
    m = len(q)
    if m < 2 or len(u) != m:
        raise AnalysisError(f"Rubin's rules need at least two imputations with a variance each; got {m}")
    qbar, ubar = float(q.mean()), float(u.mean())
    b = float(q.var(ddof=1))
    t = ubar + (1 + 1 / m) * b
    riv = (1 + 1 / m) * b / ubar if ubar > 0 else float("inf")
    lam = max((1 + 1 / m) * b / t if t > 0 else 0.0, 1e-4)  # mice's floor: no infinite df_old
    df_old = (m - 1) / lam**2
    if np.isfinite(df_complete):
        df_obs = (df_complete + 1) / (df_complete + 3) * df_complete * (1 - lam)
        df = df_old * df_obs / (df_old + df_obs)
    else:
        df = df_old
    fmi = (riv + 2 / (df + 3)) / (riv + 1)
    return Pooled(qbar, ubar, b, t, float(df), float(riv), float(fmi))


def nelson_aalen(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """The Nelson-Aalen cumulative hazard at each person's own time (ties: all events at a time
    count before anyone leaves)."""
    t = np.asarray(time, float)
    d = np.asarray(event).astype(bool)
    uniq, idx = np.unique(t, return_inverse=True)
    at_risk = len(t) - np.searchsorted(np.sort(t), uniq, side="left")
    deaths = np.bincount(idx, weights=d.astype(float), minlength=len(uniq))
    return np.cumsum(deaths / at_risk)[idx]


def impute(
    frame: pd.DataFrame,
    covariates: Sequence[str],
    *,
    outcome: dict[str, np.ndarray],
    m: int,
    iterations: int,
    seed: int,
) -> list[pd.DataFrame]:
    """``m`` completed copies of ``frame`` (only ``covariates`` change), each from its own chain
    of ``iterations`` chained-equation cycles; ``outcome``: named columns that enter every
    imputation model but are never imputed (e.g. the event indicator and the cumulative hazard)."""
    from statsmodels.imputation.mice import MICEData

    work, decode = _numeric_block(frame, covariates, outcome)
    incomplete = [f"c{i}" for i, c in enumerate(covariates) if frame[c].isna().any()]
    if not incomplete:
        return [frame.copy() for _ in range(m)]
    out = []
    seeds = np.random.SeedSequence(seed).spawn(m)
    for s in seeds:
        data = MICEData(work, k_pmm=5, rng=np.random.default_rng(s))
        data.update_all(iterations)
        done = frame.copy()
        for i, c in enumerate(covariates):
            if frame[c].isna().any():
                done[c] = decode[c](data.data[f"c{i}"].to_numpy())
        out.append(done)
    return out


def _numeric_block(
    frame: pd.DataFrame, covariates: Sequence[str], outcome: dict[str, np.ndarray]
) -> tuple[pd.DataFrame, dict[str, Callable[[np.ndarray], np.ndarray]]]:
    """The columns the imputation models see, with formula-safe names: covariates as ``c<i>``
    (text with missing values as level codes; complete text as indicators ``d<i>_<j>``) and the
    outcome columns as ``o<j>``."""
    cols: dict[str, np.ndarray] = {}
    decode: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    for i, c in enumerate(covariates):
        s = frame[c]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            cols[f"c{i}"] = s.astype(float).to_numpy()
            decode[c] = _same
        elif s.isna().any():
            levels = sorted(s.dropna().astype(str).unique())
            codes = s.astype(str).map({lv: k for k, lv in enumerate(levels)}).where(s.notna())
            cols[f"c{i}"] = codes.astype(float).to_numpy()
            decode[c] = _levels(levels)
        else:
            levels = sorted(s.astype(str).unique())
            for j, lv in enumerate(levels[1:]):
                cols[f"d{i}_{j}"] = (s.astype(str) == lv).to_numpy(float)
    for j, (_, v) in enumerate(outcome.items()):
        cols[f"o{j}"] = np.asarray(v, float)
    return pd.DataFrame(cols, index=range(len(frame))), decode


def _same(x: np.ndarray) -> np.ndarray:
    return x


def _levels(levels: list[str]) -> Callable[[np.ndarray], np.ndarray]:
    def decode(x: np.ndarray) -> np.ndarray:
        return np.array(levels, dtype=object)[np.rint(x).astype(int)]

    return decode
