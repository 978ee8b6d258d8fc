"""Input and prediction drift on a reference's bins: population stability index and binned KS.

Both compare the share of calls in each reference bin (``q``) with the development share
(``p``):

* PSI (population stability index): ``sum_j (q_j - p_j) * ln(q_j / p_j)``, the symmetrised
  Kullback-Leibler divergence of the two histograms.  A window's empty bin would make it
  infinite, so every window count gets half a person added before shares are taken (the
  reference bins all hold at least k persons and need none).  Rules of thumb: < 0.1 stable,
  0.1-0.2 moderate, > 0.2 a shift worth acting on.
* binned KS: ``max_j |Q_j - P_j|`` over the cumulative shares at the bins' upper bounds (for a
  category the bins are in the reference's order).  On values that are bin indices it equals the
  two-sample Kolmogorov-Smirnov statistic (scipy's ``ks_2samp``), which the tests check.
"""

from __future__ import annotations

import numpy as np

from toolkit.errors import AnalysisError

PSEUDO_COUNT = 0.5


def _shares(counts: np.ndarray, pseudo: float) -> np.ndarray:
    c = np.asarray(counts, float) + pseudo
    total = c.sum()
    if total <= 0:
        raise AnalysisError("drift: no calls in the window")
    return c / total


def psi(reference_shares: np.ndarray, counts: np.ndarray, *, pseudo: float = PSEUDO_COUNT) -> float:
    """Population stability index of window ``counts`` against the reference shares."""
    p = np.asarray(reference_shares, float)
    if len(p) != len(counts):
        raise AnalysisError(f"drift: {len(counts)} window bins for {len(p)} reference bins")
    q = _shares(np.asarray(counts, float), pseudo)
    return float(np.sum((q - p) * np.log(q / p)))


def binned_ks(reference_shares: np.ndarray, counts: np.ndarray) -> float:
    """Largest gap between the cumulative reference and window shares over the bins."""
    p = np.asarray(reference_shares, float)
    if len(p) != len(counts):
        raise AnalysisError(f"drift: {len(counts)} window bins for {len(p)} reference bins")
    q = _shares(np.asarray(counts, float), 0.0)
    return float(np.max(np.abs(np.cumsum(q) - np.cumsum(p))))


def bin_counts(bins: np.ndarray, n_bins: int) -> np.ndarray:
    """Counts per bin of an array of bin indices (missing values, ``-1``, are left out)."""
    b = np.asarray(bins, int)
    return np.bincount(b[b >= 0], minlength=n_bins).astype(float)
