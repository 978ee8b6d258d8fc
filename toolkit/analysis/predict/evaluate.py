"""Evaluation of risk models: discrimination and calibration at a horizon, and k-fold CV.

Metrics are pure functions of (time, event, predicted risk).  At the horizon, persons censored
before it are not evaluable for binary metrics (AUROC, Brier); they are never counted as
negatives.  Observed risk for calibration-in-the-large uses Kaplan-Meier, which accounts for
censoring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

from toolkit.analysis.predict.models import RiskModel
from toolkit.analysis.survival.concordance import concordance_index
from toolkit.analysis.survival.km import km_curve
from toolkit.errors import AnalysisError


def horizon_label(time: np.ndarray, event: np.ndarray, horizon: float) -> np.ndarray:
    """1 = event by the horizon, 0 = known event-free (or competing event) at it, NaN = not evaluable."""
    time = np.asarray(time, float)
    event = np.asarray(event).astype(int)
    out = np.full(len(time), np.nan)
    out[time >= horizon] = 0.0
    out[(event >= 2) & (time < horizon)] = 0.0
    out[(event == 1) & (time <= horizon)] = 1.0
    return out


def survival_metrics(
    time: np.ndarray, event: np.ndarray, risk: np.ndarray, horizon: float
) -> dict[str, float]:
    time = np.asarray(time, float)
    ev1 = (np.asarray(event).astype(int) == 1).astype(int)
    risk = np.asarray(risk, float)
    label = horizon_label(time, np.asarray(event), horizon)
    ok = ~np.isnan(label)
    out: dict[str, float] = {
        "n": float(len(time)),
        "events": float(ev1.sum()),
        "c_harrell": concordance_index(time, ev1, risk),
        "n_evaluable": float(ok.sum()),
    }
    if ok.sum() > 0 and 0 < label[ok].sum() < ok.sum():
        out["auroc"] = float(roc_auc_score(label[ok], risk[ok]))
        out["brier"] = float(np.mean((risk[ok] - label[ok]) ** 2))
    curve = km_curve(time, ev1)
    observed = 1.0 - curve.at(horizon)[0]
    out["observed_risk"] = observed
    out["mean_predicted_risk"] = float(risk.mean())
    out["o_e_ratio"] = (
        observed / out["mean_predicted_risk"] if out["mean_predicted_risk"] > 0 else float("nan")
    )
    return out


@dataclass(frozen=True)
class CVResult:
    folds: tuple[dict[str, float], ...]
    oof_risk: np.ndarray
    summary: dict[str, float]

    def to_dict(self) -> dict[str, object]:
        return {"folds": list(self.folds), "summary": self.summary}


def kfold_indices(event: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """Fold assignment stratified by event status, deterministic per seed."""
    rng = np.random.default_rng(seed)
    event = np.asarray(event).astype(int) == 1
    fold = np.empty(len(event), int)
    for grp in (np.nonzero(event)[0], np.nonzero(~event)[0]):
        perm = rng.permutation(grp)
        fold[perm] = np.arange(len(perm)) % k
    return [np.nonzero(fold == i)[0] for i in range(k)]


def cross_validate(
    make: Callable[[], RiskModel],
    x: pd.DataFrame,
    time: np.ndarray,
    event: np.ndarray,
    *,
    horizon: float,
    folds: int = 5,
    seed: int = 0,
) -> CVResult:
    """k-fold CV: every step of fitting (imputation, scaling, the model) happens inside the fold."""
    time = np.asarray(time, float)
    event = np.asarray(event).astype(int)
    if (event == 1).sum() < folds:
        raise AnalysisError(f"cross-validation: {int((event == 1).sum())} events for {folds} folds")
    oof = np.full(len(time), np.nan)
    results = []
    for i, test in enumerate(kfold_indices(event, folds, seed)):
        train = np.setdiff1d(np.arange(len(time)), test)
        model = make().fit(x.iloc[train], time[train], event[train])
        risk = model.predict_risk(x.iloc[test])
        oof[test] = risk
        m = survival_metrics(time[test], event[test], risk, horizon)
        m["fold"] = float(i)
        results.append(m)
    summary: dict[str, float] = {}
    for key in ("c_harrell", "auroc", "brier"):
        vals = np.array([r[key] for r in results if key in r])
        if len(vals) >= 2:
            half = stats.t.ppf(0.975, len(vals) - 1) * vals.std(ddof=1) / np.sqrt(len(vals))
            summary[f"{key}_mean"] = float(vals.mean())
            summary[f"{key}_sd"] = float(vals.std(ddof=1))
            summary[f"{key}_lower"] = float(vals.mean() - half)
            summary[f"{key}_upper"] = float(vals.mean() + half)
    pooled = survival_metrics(time, event, oof, horizon)
    summary.update({f"oof_{k}": v for k, v in pooled.items() if k not in ("n", "events", "n_evaluable")})
    return CVResult(tuple(results), oof, summary)
