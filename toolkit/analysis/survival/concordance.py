"""Harrell's concordance index in O(n log n), with R ``survival::concordance`` conventions.

A pair is comparable when the shorter time is an event; a censored time tied with an event
time counts as longer (it was still at risk).  Pairs tied on time with both events are not
comparable.  Ties in the risk score count one half.  Higher risk score = shorter survival.
"""

from __future__ import annotations

import numpy as np


class _Fenwick:
    def __init__(self, n: int) -> None:
        self.tree = np.zeros(n + 1)

    def add(self, i: int, v: float) -> None:
        i += 1
        while i < len(self.tree):
            self.tree[i] += v
            i += i & -i

    def prefix(self, i: int) -> float:
        """Sum of entries 0..i-1."""
        s = 0.0
        while i > 0:
            s += self.tree[i]
            i -= i & -i
        return s


def concordance_counts(
    time: np.ndarray, event: np.ndarray, score: np.ndarray, weight: np.ndarray | None = None
) -> tuple[float, float, float]:
    """(concordant, discordant, tied-on-score) pair counts."""
    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    score = np.asarray(score, float)
    w = np.ones(len(time)) if weight is None else np.asarray(weight, float)
    ranks = np.unique(score, return_inverse=True)[1]
    tree = _Fenwick(int(ranks.max()) + 1 if len(ranks) else 1)
    total = 0.0
    conc = disc = tied = 0.0
    order = np.lexsort((event, -time))  # time descending; censored before events at a tie
    i = 0
    n = len(time)
    while i < n:
        j = i
        t = time[order[i]]
        while j < n and time[order[j]] == t:
            j += 1
        block = order[i:j]
        cens = block[~event[block]]
        evs = block[event[block]]
        # censored at t are at risk for events at t: insert them first
        for k in cens:
            tree.add(int(ranks[k]), w[k])
            total += w[k]
        for k in evs:
            below = tree.prefix(int(ranks[k]))
            same = tree.prefix(int(ranks[k]) + 1) - below
            above = total - below - same
            conc += w[k] * below  # the event has the higher score: concordant
            disc += w[k] * above
            tied += w[k] * same
        for k in evs:
            tree.add(int(ranks[k]), w[k])
            total += w[k]
        i = j
    return conc, disc, tied


def concordance_index(
    time: np.ndarray, event: np.ndarray, score: np.ndarray, *, strata: np.ndarray | None = None
) -> float:
    """Harrell's C (stratified: pairs within strata only)."""
    keys = np.zeros(len(time), int) if strata is None else np.asarray(strata)
    c = d = t = 0.0
    for s in np.unique(keys):
        m = keys == s
        ci, di, ti = concordance_counts(np.asarray(time)[m], np.asarray(event)[m], np.asarray(score)[m])
        c, d, t = c + ci, d + di, t + ti
    if c + d + t == 0:
        return float("nan")
    return (c + 0.5 * t) / (c + d + t)
