"""Internal validation of risk models: k-fold cross-validation and Harrell's bootstrap optimism.

At the horizon, persons censored before it are not evaluable for the 0/1 metrics (AUROC, AUPRC,
Brier); they are never counted as negatives.  The censoring-aware metrics (Kaplan-Meier observed
risk, IPCW, pseudo-observations: :mod:`toolkit.analysis.predict.censored`) use everyone.

Every step of fitting (imputation, scaling, splines, a declared hyperparameter search, the
model) happens inside each training set: the CV fold, or the bootstrap sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from toolkit.analysis.predict.assess import ibs_times, point_metrics
from toolkit.analysis.predict.folds import kfold_indices
from toolkit.analysis.predict.metrics import horizon_label
from toolkit.analysis.predict.models import RiskModel
from toolkit.errors import AnalysisError

__all__ = [
    "OPTIMISM_METRICS",
    "SUMMARY_METRICS",
    "CVResult",
    "Optimism",
    "cross_validate",
    "horizon_label",
    "kfold_indices",
    "optimism_bootstrap",
    "survival_metrics",
]

#: metrics summarised across CV folds as mean, SD and a t-interval
SUMMARY_METRICS = (
    "c_harrell",
    "c_uno",
    "auroc",
    "auprc",
    "brier",
    "scaled_brier",
    "auc_td",
    "brier_ipcw",
    "calibration_slope",
    "citl",
    "ici",
)
#: metrics corrected for optimism by the bootstrap
OPTIMISM_METRICS = (
    "c_harrell",
    "c_uno",
    "auroc",
    "auprc",
    "brier",
    "scaled_brier",
    "auc_td",
    "brier_ipcw",
    "ipa",
    "calibration_slope",
    "citl",
    "ici",
)


def survival_metrics(
    time: np.ndarray, event: np.ndarray, risk: np.ndarray, horizon: float
) -> dict[str, float]:
    """Every point metric at ``horizon`` (see :func:`toolkit.analysis.predict.assess.point_metrics`)."""
    return point_metrics(time, event, risk, horizon)[0]


@dataclass(frozen=True)
class CVResult:
    folds: tuple[dict[str, float], ...]
    oof_risk: np.ndarray
    summary: dict[str, float]
    oof_risk_matrix: np.ndarray | None = None  # survival models: risk at ibs_times(horizon)
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"folds": list(self.folds), "summary": self.summary}


def cross_validate(
    make: Callable[[], RiskModel],
    x: pd.DataFrame,
    time: np.ndarray,
    event: np.ndarray,
    *,
    horizon: float,
    folds: int = 5,
    seed: int = 0,
    ibs_from_zero: bool = False,
) -> CVResult:
    """k-fold CV stratified by event: per-fold metrics, their mean with a t-interval, and the
    pooled out-of-fold predictions (the summary's ``oof_*`` keys are computed on those)."""
    time = np.asarray(time, float)
    event = np.asarray(event).astype(int)
    if (event == 1).sum() < folds:
        raise AnalysisError(f"cross-validation: fewer outcome events than the {folds} folds")
    oof = np.full(len(time), np.nan)
    grid = ibs_times(horizon, from_zero=ibs_from_zero)
    matrix: np.ndarray | None = None
    results = []
    notes: list[str] = []
    for i, test in enumerate(kfold_indices(event, folds, seed)):
        train = np.setdiff1d(np.arange(len(time)), test)
        model = make().fit(x.iloc[train], time[train], event[train])
        risk = model.predict_risk(x.iloc[test])
        oof[test] = risk
        if model.task == "survival":
            if matrix is None:
                matrix = np.full((len(time), len(grid)), np.nan)
            matrix[test] = model.predict_risk_at(x.iloc[test], grid)
        m, w = point_metrics(time[test], event[test], risk, horizon)
        notes += [f"fold {i}: {s}" for s in w]
        m = {k: v for k, v in m.items() if not k.endswith(("_lower", "_upper"))}
        m["fold"] = float(i)
        results.append(m)
    summary: dict[str, float] = {}
    for key in SUMMARY_METRICS:
        vals = np.array([r[key] for r in results if key in r])
        if len(vals) >= 2:
            half = stats.t.ppf(0.975, len(vals) - 1) * vals.std(ddof=1) / np.sqrt(len(vals))
            summary[f"{key}_mean"] = float(vals.mean())
            summary[f"{key}_sd"] = float(vals.std(ddof=1))
            summary[f"{key}_lower"] = float(vals.mean() - half)
            summary[f"{key}_upper"] = float(vals.mean() + half)
    pooled, w = point_metrics(time, event, oof, horizon, risk_matrix=matrix, ibs_from_zero=ibs_from_zero)
    summary.update({f"oof_{k}": v for k, v in pooled.items() if k not in ("n", "events", "n_evaluable")})
    return CVResult(tuple(results), oof, summary, matrix, tuple(dict.fromkeys([*notes, *w])))


@dataclass(frozen=True)
class Optimism:
    """Harrell's bootstrap: ``optimism[m]`` = mean over replicates of (metric of the replicate's
    model on its own bootstrap sample) - (the same model on the original data); ``corrected[m]`` =
    apparent - optimism."""

    apparent: dict[str, float]
    optimism: dict[str, float]
    corrected: dict[str, float]
    replicates: int
    failed: int
    warnings: tuple[str, ...]

    def metrics(self) -> dict[str, float]:
        out = {f"optimism_{k}": v for k, v in self.optimism.items()}
        out.update({f"corrected_{k}": v for k, v in self.corrected.items()})
        return out


def optimism_bootstrap(
    make: Callable[[], RiskModel],
    x: pd.DataFrame,
    time: np.ndarray,
    event: np.ndarray,
    *,
    horizon: float,
    apparent: dict[str, float],
    replicates: int = 40,
    seed: int = 0,
    metrics: Sequence[str] = OPTIMISM_METRICS,
    progress: Callable[[str], object] | None = None,
) -> Optimism:
    """Harrell's optimism-corrected metrics (Harrell, Lee & Mark 1996; rms ``validate``).

    Each replicate refits the whole model (including any hyperparameter search) on a bootstrap
    sample.  A replicate whose fit fails (e.g. no events) is skipped and counted.
    """
    time = np.asarray(time, float)
    event = np.asarray(event).astype(int)
    n = len(time)
    rng = np.random.default_rng(seed)
    diffs: dict[str, list[float]] = {m: [] for m in metrics}
    failed = 0
    notes: list[str] = []
    for b in range(replicates):
        if progress is not None:
            progress(f"bootstrap {b + 1}/{replicates}")
        idx = rng.integers(0, n, n)
        try:
            model = make().fit(x.iloc[idx], time[idx], event[idx])
            app, _ = point_metrics(time[idx], event[idx], model.predict_risk(x.iloc[idx]), horizon)
            test, _ = point_metrics(time, event, model.predict_risk(x), horizon)
        except AnalysisError as exc:
            failed += 1
            if len(notes) < 3:
                notes.append(f"optimism bootstrap: replicate {b} skipped: {exc}")
            continue
        for m in metrics:
            if m in app and m in test:
                diffs[m].append(app[m] - test[m])
    optimism: dict[str, float] = {}
    corrected: dict[str, float] = {}
    done = replicates - failed
    for m in metrics:
        vals = diffs[m]
        if m in apparent and done > 0 and len(vals) >= 0.9 * done:
            optimism[m] = float(np.mean(vals))
            corrected[m] = float(apparent[m] - optimism[m])
        elif m in apparent and done > 0:
            notes.append(f"optimism bootstrap: {m} undefined in {done - len(vals)} of {done} replicates")
    if failed:
        notes.append(f"optimism bootstrap: {failed} of {replicates} replicates failed and were skipped")
    return Optimism(dict(apparent), optimism, corrected, replicates, failed, tuple(notes))
