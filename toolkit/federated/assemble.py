"""Coordinator-side arithmetic: pooled Cox statistics from site risk-set pieces, Newton-Raphson
as a generator (one yield per round), and pooled pseudo-data from count histograms.

Summing site *partial likelihoods* would fit a model stratified by site, not the pooled Cox
model.  The pooled partial likelihood needs, at every event time, sums over the pooled risk
set, so sites send per-time pieces (:func:`toolkit.federated.site._cox_stats`) and
:func:`pooled_cox_stats` adds them on the merged time axis, takes reverse cumulative sums
(risk sets) and applies Efron's or Breslow's formulas — the same arithmetic as
:func:`toolkit.analysis.survival.cox.cox_stats` on the pooled rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from toolkit.analysis.survival.cox import CoxStats, Ties
from toolkit.errors import ConvergenceError


def _scatter(times: np.ndarray, parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Add per-time arrays from several sites onto the merged time axis ``times``."""
    shape = (len(times), *parts[0][1].shape[1:])
    out = np.zeros(shape)
    for t, v in parts:
        np.add.at(out, np.searchsorted(times, t), v)
    return out


def _revcumsum(a: np.ndarray) -> np.ndarray:
    return np.cumsum(a[::-1], axis=0)[::-1]


def _full(upper: np.ndarray, p: int) -> np.ndarray:
    """Symmetric p x p matrices from their packed upper triangles (one per row)."""
    i, j = np.triu_indices(p)
    out = np.zeros((len(upper), p, p))
    out[:, i, j] = upper
    out[:, j, i] = upper
    return out


def pooled_cox_stats(per_site: Sequence[dict[str, Any]], p: int, ties: Ties) -> CoxStats:
    """Log partial likelihood, score and information from every site's per-stratum pieces."""
    by_stratum: dict[str, list[dict[str, Any]]] = {}
    for reply in per_site:
        for s in reply["strata"]:
            by_stratum.setdefault(s["stratum"], []).append(s)
    loglik = 0.0
    score = np.zeros(p)
    info = np.zeros((p, p))
    for label in sorted(by_stratum):
        pieces = by_stratum[label]
        times = np.unique(np.concatenate([s["time"] for s in pieces]))

        def merged(key: str, pieces: list[dict[str, Any]] = pieces, times: np.ndarray = times) -> np.ndarray:
            return _scatter(times, [(s["time"], s[key]) for s in pieces])

        s0, s1, s2 = _revcumsum(merged("a0")), _revcumsum(merged("a1")), _revcumsum(_full(merged("a2"), p))
        d = np.rint(merged("d")).astype(int)
        e0, e1, e2 = merged("e0"), merged("e1"), _full(merged("e2"), p)
        ev = np.nonzero(d > 0)[0]
        counts = d[ev]
        tt = np.repeat(ev, counts)
        ll = np.arange(len(tt)) - np.repeat(np.cumsum(counts) - counts, counts)
        frac = ll / np.repeat(counts, counts) if ties == "efron" else np.zeros(len(tt))
        s0l = s0[tt] - frac * e0[tt]
        s1l = s1[tt] - frac[:, None] * e1[tt]
        s2l = s2[tt] - frac[:, None, None] * e2[tt]
        if np.any(s0l <= 0):
            raise ConvergenceError("Cox: a risk set became empty; check for extreme covariate values")
        a = s1l / s0l[:, None]
        loglik += sum(float(s["eeta"]) for s in pieces) - float(np.sum(np.log(s0l)))
        score += np.sum([s["ex"] for s in pieces], axis=0) - a.sum(axis=0)
        info += (s2l / s0l[:, None, None]).sum(axis=0) - a.T @ a
    return CoxStats(loglik, score, info)


def expand(columns: dict[str, Any], counts: Sequence[int]) -> pd.DataFrame:
    """Rows repeated by their counts: a count table laid out as pseudo-rows.

    Kaplan-Meier, the log-rank test and Table 1 depend on the data only through such counts,
    so running Regent's validated pooled code on the pseudo-rows gives the pooled statistics.
    """
    reps = np.asarray(counts, dtype=np.int64)
    return pd.DataFrame({k: np.repeat(np.asarray(v), reps) for k, v in columns.items()})
