"""Plots of a risk model's performance (matplotlib, Agg): ROC, calibration, decision curve, each
rendered as PNG with SVG (:class:`toolkit.analysis.figure.Plot`).

They draw only what :class:`~toolkit.analysis.predict.assess.Assessment` already released under
the disclosure policy (suppressed deciles and decision-curve points are left out).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from toolkit.analysis.figure import Plot, render

BLUE, RED, GREY = "#1f5a96", "#c0392b", "#888888"


def _png(fig: Any) -> Plot:
    return render(fig)  # PNG bytes carrying the SVG the report embeds


def _fmt_ci(metrics: dict[str, float], key: str) -> str:
    if key not in metrics:
        return "NA"
    lo, hi = metrics.get(f"{key}_lower"), metrics.get(f"{key}_upper")
    ci = f" ({lo:.3f}–{hi:.3f})" if lo is not None and hi is not None else ""
    return f"{metrics[key]:.3f}{ci}"


def roc_plot(roc: dict[str, np.ndarray], metrics: dict[str, float], *, title: str = "") -> bytes:
    """ROC among persons evaluable at the horizon, and the censoring-weighted cumulative/dynamic ROC."""
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    ax.plot([0, 1], [0, 1], ls="--", color=GREY, lw=1)
    if "fpr" in roc:
        ax.step(
            roc["fpr"],
            roc["tpr"],
            where="post",
            color=BLUE,
            label=f"evaluable: AUROC {_fmt_ci(metrics, 'auroc')}",
        )
    if "fpr_td" in roc:
        ax.step(
            roc["fpr_td"],
            roc["tpr_td"],
            where="post",
            color=RED,
            ls="-.",
            label=f"IPCW cumulative/dynamic: AUC {_fmt_ci(metrics, 'auc_td')}",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("1 − specificity")
    ax.set_ylabel("Sensitivity")
    ax.legend(frameon=False, loc="lower right", fontsize=7.5)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return _png(fig)


def calibration_plot(
    curve: Sequence[dict[str, Any]],
    deciles: Sequence[dict[str, Any]],
    risk: np.ndarray,
    metrics: dict[str, float],
    *,
    title: str = "",
    observed_label: str = "Observed risk",
) -> bytes:
    """Smoothed calibration curve, observed risk by decile (95% CI) and the distribution of risk."""
    fig, (ax, hist) = plt.subplots(
        2, 1, figsize=(4.8, 5.4), gridspec_kw={"height_ratios": [4, 1]}, sharex=True
    )
    top = float(min(1.0, max(0.05, np.quantile(risk, 0.995)) * 1.15))
    ax.plot([0, top], [0, top], ls="--", color=GREY, lw=1, label="ideal")
    if curve:
        ax.plot(
            [c["predicted_risk"] for c in curve],
            [c["observed_risk"] for c in curve],
            color=BLUE,
            lw=1.8,
            label="loess-smoothed",
        )
    shown = [d for d in deciles if d.get("observed_risk") is not None]
    if shown:
        p = np.array([d["predicted_risk"] for d in shown])
        o = np.array([d["observed_risk"] for d in shown])
        lo = np.array([d["observed_lower"] for d in shown])
        hi = np.array([d["observed_upper"] for d in shown])
        ax.errorbar(
            p, o, yerr=[o - lo, hi - o], fmt="o", color=RED, ms=4, capsize=2, label="deciles (95% CI)"
        )
    text = [
        f"slope {_fmt_ci(metrics, 'calibration_slope')}",
        f"CITL {_fmt_ci(metrics, 'citl')}",
    ]
    if "ici" in metrics:
        text.append(f"ICI {metrics['ici']:.3f}, E90 {metrics.get('e90', float('nan')):.3f}")
    ax.text(0.02, 0.98, "\n".join(text), transform=ax.transAxes, va="top", fontsize=7.5)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_ylabel(observed_label)
    ax.legend(frameon=False, loc="lower right", fontsize=7.5)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    hist.hist(np.clip(risk, 0, top), bins=40, range=(0, top), color=GREY)
    hist.set_yticks([])
    hist.set_xlabel("Predicted risk")
    return _png(fig)


def decision_curve_plot(rows: Sequence[dict[str, Any]], *, title: str = "") -> bytes:
    """Net benefit of the model against treat-all and treat-none across risk thresholds."""
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    t = np.array([r["threshold"] for r in rows])
    model = np.array([np.nan if r["net_benefit"] is None else r["net_benefit"] for r in rows], float)
    treat_all = np.array([r["treat_all"] for r in rows])
    ax.plot(t, model, color=BLUE, lw=1.8, label="model")
    ax.plot(t, treat_all, color=RED, lw=1.2, label="treat all")
    ax.axhline(0.0, color=GREY, lw=1.2, label="treat none")
    finite = model[np.isfinite(model)]
    hi = max(float(finite.max()) if len(finite) else 0.0, float(treat_all.max()), 0.01)
    ax.set_ylim(-0.1 * hi, hi * 1.1)
    ax.set_xlim(0, float(t.max()) if len(t) else 1.0)
    ax.set_xlabel("Threshold risk")
    ax.set_ylabel("Net benefit")
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return _png(fig)
