"""Plots as PNG bytes (matplotlib, Agg backend): KM curves with an at-risk table, forest plots.

Under a disclosure policy the release rules of :mod:`toolkit.analysis.survival.release` apply,
exactly as in the tables: a group with fewer than k persons or events has no curve, each curve
stops where its number at risk falls below k, and at-risk counts below k are not printed.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from toolkit.analysis.survival.cox import CoxResult
from toolkit.analysis.survival.km import KMResult
from toolkit.analysis.survival.release import group_reason, kept_steps
from toolkit.disclosure import DisclosurePolicy

PALETTE = ("#1f5a96", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#16a085")


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def km_plot(
    result: KMResult,
    *,
    title: str = "",
    policy: DisclosurePolicy | None = None,
    time_unit: str = "days",
    ticks: Sequence[float] | None = None,
    withheld_n: Collection[str] = (),
) -> bytes:
    """Curves with an at-risk table; under a policy, the release rules of
    :mod:`toolkit.analysis.survival.release` (a group below k persons or events is not drawn; a
    curve stops where fewer than k are at risk); ``withheld_n``: groups whose size the run withholds."""
    policy = policy or DisclosurePolicy(enabled=False)
    fig, (ax, tab) = plt.subplots(
        2, 1, figsize=(7.5, 5.2), gridspec_kw={"height_ratios": [4, 1.2]}, sharex=True
    )
    tmax = max(float(g.curve.time[-1]) for g in result.groups)
    ticks = list(ticks) if ticks is not None else list(np.linspace(0, tmax, 6).round(-1))
    for i, g in enumerate(result.groups):
        c = g.curve
        released = group_reason(c.n, c.events, policy) is None
        keep = kept_steps(c.n_risk, policy) & released
        t = np.concatenate([[0.0], c.time[keep]])
        s = np.concatenate([[1.0], c.survival[keep]])
        lo = np.concatenate([[1.0], np.nan_to_num(c.lower[keep], nan=0.0)])
        up = np.concatenate([[1.0], np.nan_to_num(c.upper[keep], nan=1.0)])
        color = PALETTE[i % len(PALETTE)]
        if released:
            ax.step(t, s, where="post", color=color, label=f"{g.curve.group}", lw=1.8)
            ax.fill_between(t, lo, up, step="post", color=color, alpha=0.15, lw=0)
        for j, tk in enumerate(ticks):
            n = c.at(tk)[3] if tk > 0 else c.n
            shown = policy.count(n) if released and not (tk <= 0 and c.group in withheld_n) else None
            tab.text(
                tk,
                len(result.groups) - i - 0.5,
                "–" if shown is None else str(shown),
                ha="center",
                va="center",
                fontsize=8,
                color=color,
            )
            del j
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("Survival probability")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, title=result.by or None, loc="lower left")
    if result.logrank is not None:
        ax.text(
            0.98, 0.95, f"log-rank p = {result.logrank.p:.3g}", transform=ax.transAxes, ha="right", va="top"
        )
    if title:
        ax.set_title(title)
    tab.set_ylim(0, len(result.groups))
    tab.set_yticks([len(result.groups) - i - 0.5 for i in range(len(result.groups))])
    tab.set_yticklabels([g.curve.group for g in result.groups], fontsize=8)
    tab.set_xticks(ticks)
    tab.set_xlabel(f"Time ({time_unit})")
    tab.set_title("Number at risk", fontsize=9, loc="left")
    for side in ("top", "right", "left"):
        tab.spines[side].set_visible(False)
    tab.tick_params(left=False)
    return _png(fig)


def forest_plot(result: CoxResult, *, title: str = "") -> bytes:
    terms = list(result.terms)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(terms) + 1.2))
    y = np.arange(len(terms))[::-1]
    for yi, t in zip(y, terms, strict=True):
        ax.plot([t.hr_lower, t.hr_upper], [yi, yi], color="#1f5a96", lw=1.5)
        ax.plot(t.hr, yi, "s", color="#1f5a96")
    ax.axvline(1.0, color="#888", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_yticks(y)
    ax.set_yticklabels([t.term for t in terms])
    ax.set_xlabel("Hazard ratio (95% CI, log scale)")
    if title:
        ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def calibration_plot(pred: np.ndarray, observed: np.ndarray, *, title: str = "") -> bytes:
    """Observed against predicted risk by group (deciles), with the identity line."""
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    ax.plot([0, 1], [0, 1], ls="--", color="#888", lw=1)
    ax.plot(pred, observed, "o-", color="#1f5a96")
    top = float(max(np.nanmax(pred), np.nanmax(observed), 0.05)) * 1.1
    ax.set_xlim(0, min(1, top))
    ax.set_ylim(0, min(1, top))
    ax.set_xlabel("Predicted risk")
    ax.set_ylabel("Observed risk (Kaplan–Meier)")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    return _png(fig)
