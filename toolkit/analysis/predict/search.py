"""Hyperparameter search inside a training set: an inner k-fold CV over a small declared grid.

A model with ``search={"penalty": [0.1, 1, 10]}`` runs this in its own ``fit``, so wherever the
model is fitted (an outer CV fold, a bootstrap replicate, the final fit) the search sees only
that fit's training data: nested by construction, never tuned on the persons it is tested on.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd

from toolkit.analysis.predict.censored import brier_ipcw
from toolkit.analysis.predict.concordance import harrell_c
from toolkit.analysis.predict.folds import kfold_indices
from toolkit.analysis.predict.metrics import auroc, brier, horizon_label
from toolkit.errors import AnalysisError


class _Fittable(Protocol):
    def fit(self, x: pd.DataFrame, time: np.ndarray, event: np.ndarray) -> Any: ...

    def predict_risk(self, x: pd.DataFrame) -> np.ndarray: ...


def _evaluable(fn: Callable[[np.ndarray, np.ndarray], Any]) -> Callable[..., float]:
    def score(time: np.ndarray, event: np.ndarray, risk: np.ndarray, horizon: float) -> float:
        y = horizon_label(time, event, horizon)
        ok = ~np.isnan(y)
        return float(fn(y[ok], risk[ok]))

    return score


#: criterion -> (score function of (time, event, risk, horizon), higher is better)
CRITERIA: dict[str, tuple[Callable[..., float], bool]] = {
    "brier_ipcw": (lambda t, e, r, h: float(brier_ipcw(t, e, r, h)), False),
    "brier": (_evaluable(brier), False),
    "auroc": (_evaluable(auroc), True),
    "c_harrell": (lambda t, e, r, h: float(harrell_c(t, e, r)), True),
}


def grid(search: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    keys = sorted(search)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(search[k] for k in keys))]


def select_params(
    make: Callable[[dict[str, Any]], _Fittable],
    x: pd.DataFrame,
    time: np.ndarray,
    event: np.ndarray,
    *,
    search: Mapping[str, Sequence[Any]],
    horizon: float,
    folds: int = 3,
    metric: str = "brier_ipcw",
    seed: int = 0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The grid point with the best pooled inner out-of-fold score, and every point's score."""
    if metric not in CRITERIA:
        raise AnalysisError(f"search: unknown criterion {metric!r}; available: {sorted(CRITERIA)}")
    if (np.asarray(event).astype(int) == 1).sum() < folds:
        raise AnalysisError(f"search: fewer outcome events than the {folds} inner folds")
    score_fn, higher = CRITERIA[metric]
    inner = kfold_indices(event, folds, seed)
    table: list[dict[str, Any]] = []
    for params in grid(search):
        oof = np.full(len(time), np.nan)
        try:
            for test in inner:
                train = np.setdiff1d(np.arange(len(time)), test)
                oof[test] = (
                    make(params).fit(x.iloc[train], time[train], event[train]).predict_risk(x.iloc[test])
                )
            score = score_fn(time, event, oof, horizon)
        except AnalysisError as exc:
            table.append({"params": params, "score": None, "error": str(exc)})
            continue
        table.append({"params": params, "score": score})
    scored = [r for r in table if r["score"] is not None and np.isfinite(r["score"])]
    if not scored:
        raise AnalysisError(
            "search: no grid point could be evaluated: " + "; ".join(str(r.get("error")) for r in table)
        )
    best = (max if higher else min)(scored, key=lambda r: r["score"])
    return dict(best["params"]), table
