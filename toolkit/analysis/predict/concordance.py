"""Harrell's and Uno's concordance in numpy, weighted and vectorised over bootstrap replicates.

The pair counts are a two-dimensional dominance count: for each person with the event at
``T_i`` (a *query*), sum the weights of persons still at risk after ``T_i`` (an *element*)
whose score is below (concordant), equal to (tied) or above (discordant) the query's.  Queries
and elements are laid on one axis by time order; at each of ``log2(n)`` levels, queries in the
left half of a block are matched against the elements in the right half of the same block by
one sort and one ``searchsorted`` (blocks are kept apart by adding ``block * (K + 1)`` to the
score rank).  Every (query, later element) pair is counted exactly once, at the level where the
two first fall into different halves: O(n log^2 n) operations, no Python loop over persons, and
a weight matrix ``(B, n)`` gives all bootstrap replicates at once.

Conventions are those of R ``survival::concordance`` (and :mod:`toolkit.analysis.survival.
concordance`): a pair is comparable when the shorter time is an event; a censored time tied with
an event time counts as longer; two events at the same time are not comparable; tied scores
count one half.  Uno's C weights each event by ``G(T_i-)^-2`` and keeps events before ``tau``.
"""

from __future__ import annotations

import numpy as np

from toolkit.analysis.predict.censored import _check, censoring_survival
from toolkit.analysis.predict.metrics import weights_2d
from toolkit.errors import AnalysisError


def pair_counts(
    time: np.ndarray, status: np.ndarray, score: np.ndarray, Wq: np.ndarray, We: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted (concordant, tied, comparable) pair sums, one per row of the weight matrices.

    ``Wq`` weights each event as the earlier member of a pair (0 for censored persons), ``We``
    each person as the later member.
    """
    n = len(time)
    B = len(We)
    # time order: time ascending, events before censored at a tie
    order = np.lexsort((1 - status, time))
    t_sorted, s_sorted = time[order], status[order]
    key = np.unique(time, return_inverse=True)[1][order] * 2 + (1 - s_sorted).astype(int)
    vals = np.unique(score, return_inverse=True)[1]
    K = int(vals.max()) + 1 if n else 1
    ev = np.nonzero(status == 1)[0]
    # the first element position after i's block of tied events: censored at T_i and later times
    ev_key = np.unique(time, return_inverse=True)[1][ev] * 2 + 1
    q_start = np.searchsorted(key, ev_key, side="left")
    del t_sorted
    # coordinates on one axis: element at position p -> 2p+1, a query starting at p -> 2p
    e_coord = 2 * np.arange(n) + 1
    e_val = vals[order]
    e_w = We[:, order]
    q_coord = 2 * q_start
    q_val = vals[ev]
    q_w = Wq[:, ev]
    conc = np.zeros(B)
    tied = np.zeros(B)
    total = np.zeros(B)
    span = 2 * n + 1
    r = 1
    while r < span:
        e_right = (e_coord // r) & 1 == 1
        q_left = (q_coord // r) & 1 == 0
        if e_right.any() and q_left.any():
            e_block = e_coord[e_right] // (2 * r)
            ekeys = e_block * (K + 1) + e_val[e_right]
            srt = np.argsort(ekeys, kind="mergesort")
            ekeys = ekeys[srt]
            cum = np.concatenate([np.zeros((B, 1)), np.cumsum(e_w[:, e_right][:, srt], axis=1)], axis=1)
            q_block = q_coord[q_left] // (2 * r)
            base = q_block * (K + 1)
            qk = base + q_val[q_left]
            lo = np.searchsorted(ekeys, base, side="left")
            lt = np.searchsorted(ekeys, qk, side="left")
            le = np.searchsorted(ekeys, qk, side="right")
            hi = np.searchsorted(ekeys, base + K + 1, side="left")
            w = q_w[:, q_left]
            conc += (w * (cum[:, lt] - cum[:, lo])).sum(axis=1)
            tied += (w * (cum[:, le] - cum[:, lt])).sum(axis=1)
            total += (w * (cum[:, hi] - cum[:, lo])).sum(axis=1)
        r *= 2
    return conc, tied, total


def harrell_c(
    time: np.ndarray, event: np.ndarray, score: np.ndarray, w: np.ndarray | None = None
) -> np.ndarray | float:
    """Harrell's C of ``score`` (higher = shorter survival) with the outcome ``event == 1``."""
    time, status = _check(time, event)
    score = np.asarray(score, float)
    W, single = weights_2d(w, len(time))
    conc, tied, total = pair_counts(time, status, score, W * status, W)
    if (total == 0).all():
        raise AnalysisError("concordance: no comparable pairs (no events, or all events tied)")
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (conc + 0.5 * tied) / total
    return float(c[0]) if single else c


def uno_c(
    time: np.ndarray, event: np.ndarray, score: np.ndarray, tau: float, w: np.ndarray | None = None
) -> np.ndarray | float:
    """Uno's C (Uno et al. 2011) truncated at ``tau``: IPCW-weighted, so its limit does not depend
    on the censoring distribution.  As scikit-survival's ``concordance_index_ipcw`` with the
    censoring distribution estimated on the same data."""
    time, status = _check(time, event)
    score = np.asarray(score, float)
    W, single = weights_2d(w, len(time))
    g = censoring_survival(time, status, W, time, left=True)
    use = (status == 1) & (time < tau)
    with np.errstate(divide="ignore"):
        q = np.where(use[None], W / np.where(g > 0, g, np.nan) ** 2, 0.0)
    if not np.isfinite(q).all():
        raise AnalysisError(f"uno_c: the censoring survival reaches 0 before tau ({tau:g} days)")
    conc, tied, total = pair_counts(time, status, score, q, W)
    if (total == 0).all():
        raise AnalysisError(f"uno_c: no comparable pairs with an event before tau ({tau:g} days)")
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (conc + 0.5 * tied) / total
    return float(c[0]) if single else c
