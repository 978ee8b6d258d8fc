"""Fold assignment for cross-validation (outer folds, and inner folds of a hyperparameter search)."""

from __future__ import annotations

import numpy as np


def kfold_indices(event: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """Fold assignment stratified by event status, deterministic per seed."""
    rng = np.random.default_rng(seed)
    event = np.asarray(event).astype(int) == 1
    fold = np.empty(len(event), int)
    for grp in (np.nonzero(event)[0], np.nonzero(~event)[0]):
        perm = rng.permutation(grp)
        fold[perm] = np.arange(len(perm)) % k
    return [np.nonzero(fold == i)[0] for i in range(k)]
