"""Modality ablation: the same model and the same CV folds on nested feature sets.

For each set (structured only, + notes, + images, all) the model is cross-validated with the
study's folds (constant and duplicate columns are dropped first: :func:`informative`); the gain over the structured set is the mean of the per-fold paired differences
in Harrell's C-index with a t-interval (the folds are the same rows for every set, so the
comparison is paired and its interval narrower than the sets' own).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from toolkit.analysis.predict.evaluate import cross_validate
from toolkit.analysis.predict.models import make_model
from toolkit.errors import AnalysisError

if TYPE_CHECKING:
    from toolkit.analysis.figure import Plot


@dataclass(frozen=True)
class AblationResult:
    table: pd.DataFrame  # one row per set
    metric: str

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "sets": self.table.to_dict("records")}


def run_ablation(
    frame: pd.DataFrame,
    sets: Mapping[str, Sequence[str]],
    *,
    model: str = "cox",
    horizon: float,
    folds: int = 5,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    log: Sequence[str] = (),
    baseline: str = "structured",
) -> AblationResult:
    """Cross-validate ``model`` on each feature set; C-index per set and paired gain over ``baseline``."""
    if baseline not in sets:
        raise AnalysisError(f"ablation: the baseline set {baseline!r} is not among {sorted(sets)}")
    t = frame["time"].to_numpy(float)
    e = frame["event"].astype(int).to_numpy()
    per_fold: dict[str, np.ndarray] = {}
    rows: list[dict[str, Any]] = []
    for name, features in sets.items():
        feats = informative([f for f in features if f in frame.columns], frame)
        if not feats:
            raise AnalysisError(f"ablation: set {name!r} has no feature columns")
        p = {**dict(params or {}), "log": tuple(f for f in log if f in feats)}
        if model == "xgboost_survival":
            p.setdefault("seed", seed)

        def make(feats: list[str] = feats, p: dict[str, Any] = p) -> Any:
            return make_model(model, horizon=horizon, features=feats, params=p)

        cv = cross_validate(make, frame[feats], t, e, horizon=horizon, folds=folds, seed=seed)
        per_fold[name] = np.array([f["c_harrell"] for f in cv.folds])
        rows.append(
            {
                "set": name,
                "n_features": len(feats),
                "c_index": cv.summary["c_harrell_mean"],
                "c_index_lower": cv.summary["c_harrell_lower"],
                "c_index_upper": cv.summary["c_harrell_upper"],
                "oof_c_index": cv.summary.get("oof_c_harrell"),
            }
        )
    base = per_fold[baseline]
    for row in rows:
        d = per_fold[row["set"]] - base
        half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)) if d.any() else 0.0
        row.update(
            {
                "gain": float(d.mean()),
                "gain_lower": float(d.mean() - half),
                "gain_upper": float(d.mean() + half),
            }
        )
    return AblationResult(pd.DataFrame(rows), "c_harrell")


def informative(features: Sequence[str], frame: pd.DataFrame) -> list[str]:
    """Drop features that are constant or exact copies of an earlier one (e.g. the latest and the
    worst of a measurement taken once per person): they carry no information and make a Cox fit
    singular.  Uses the feature values only, never the outcome."""
    kept: list[str] = []
    seen: set[bytes] = set()
    for f in features:
        raw = frame[f]
        if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
            col = raw.to_numpy(float)
        else:  # categorical: its level codes (missing stays missing)
            codes = pd.factorize(raw)[0].astype(float)
            col = np.where(codes < 0, np.nan, codes)
        if np.nanstd(col) == 0 if np.isfinite(col).any() else True:
            continue
        key = np.nan_to_num(col, nan=np.inf).tobytes()
        if key in seen:
            continue
        seen.add(key)
        kept.append(f)
    return kept


def ablation_plot(result: AblationResult, *, title: str = "") -> Plot:
    """C-index with 95 % CI per feature set (PNG with SVG)."""
    import matplotlib.pyplot as plt

    from toolkit.analysis.figure import render

    t = result.table
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * len(t) + 0.9))
    y = np.arange(len(t))[::-1]
    ax.errorbar(
        t["c_index"],
        y,
        xerr=[t["c_index"] - t["c_index_lower"], t["c_index_upper"] - t["c_index"]],
        fmt="o",
        color="#1f4e79",
        capsize=4,
    )
    for yi, (_, r) in zip(y, t.iterrows(), strict=True):
        ax.annotate(f"{r['c_index']:.3f} ({r['gain']:+.3f})", (r["c_index_upper"], yi), xytext=(6, -3),
                    textcoords="offset points", fontsize=8)  # fmt: skip
    ax.set_yticks(y, t["set"])
    ax.set_xlabel("cross-validated C-index (95% CI); in brackets: gain over structured")
    if title:
        ax.set_title(title)
    ax.margins(x=0.25)
    fig.tight_layout()
    return render(fig)
