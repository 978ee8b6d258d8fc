"""Cumulative-incidence curves as PNG bytes, in the style of :func:`toolkit.analysis.plots.km_plot`.

One panel per cause (rising step curves with their log-scale confidence bands) and a
number-at-risk table.  Under a disclosure policy the release rules of
:mod:`toolkit.analysis.survival.release` apply as in the tables: no curve for a group with fewer
than k persons, or for a cause with fewer than k events in it; each curve stops where its number
at risk falls below k; at-risk counts below k are shown as "–".
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import matplotlib.pyplot as plt
import numpy as np

from toolkit.analysis.plots import PALETTE, _png
from toolkit.analysis.survival.cif import CIFResult
from toolkit.analysis.survival.release import group_reason, kept_steps
from toolkit.disclosure import DisclosurePolicy


def cif_plot(
    result: CIFResult,
    *,
    title: str = "",
    policy: DisclosurePolicy | None = None,
    time_unit: str = "days",
    ticks: Sequence[float] | None = None,
    cause_labels: dict[int, str] | None = None,
    withheld_n: Collection[str] = (),
) -> bytes:
    """Aalen-Johansen cumulative incidence of each cause by group, with an at-risk table."""
    policy = policy or DisclosurePolicy(enabled=False)
    labels = cause_labels or {}
    causes = list(result.causes)
    ng = len(result.groups)
    fig, axes = plt.subplots(
        2,
        len(causes),
        figsize=(4.2 * len(causes) + 1.5, 5.2),
        gridspec_kw={"height_ratios": [4, 1.2]},
        sharex=True,
        squeeze=False,
    )
    tmax = max(float(g.curve.time[-1]) for g in result.groups)
    ticks = list(ticks) if ticks is not None else list(np.linspace(0, tmax, 6).round(-1))
    top = 0.05
    for j, cause in enumerate(causes):
        ax, tab = axes[0, j], axes[1, j]
        for i, g in enumerate(result.groups):
            c = g.curve
            k = c.causes.index(cause)
            shown_group = group_reason(c.n, c.n, policy) is None
            released = shown_group and group_reason(c.n, int(c.n_event[:, k].sum()), policy) is None
            keep = kept_steps(c.n_risk, policy) & released
            t = np.concatenate([[0.0], c.time[keep]])
            f = np.concatenate([[0.0], c.cif[keep, k]])
            lo = np.concatenate([[0.0], c.lower[keep, k]])
            up = np.concatenate([[0.0], c.upper[keep, k]])
            top = max(top, float(up.max()))
            color = PALETTE[i % len(PALETTE)]
            if released:
                ax.step(t, f, where="post", color=color, label=c.group, lw=1.8)
                ax.fill_between(t, lo, up, step="post", color=color, alpha=0.15, lw=0)
            for tk in ticks:
                n = c.at(tk, cause)[4] if tk > 0 else c.n
                hide = not shown_group or (tk <= 0 and c.group in withheld_n)
                shown = None if hide else policy.count(n)
                tab.text(
                    tk,
                    ng - i - 0.5,
                    "–" if shown is None else str(shown),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color=color,
                )
        gray = next((t for t in result.gray if t.cause == cause and t.p is not None), None)
        if gray is not None:
            ax.text(0.02, 0.95, f"Gray's test p = {gray.p:.3g}", transform=ax.transAxes, ha="left", va="top")
        ax.set_title(labels.get(cause, f"cause {cause}"), fontsize=10)
        ax.grid(alpha=0.3)
        tab.set_ylim(0, ng)
        tab.set_yticks([ng - i - 0.5 for i in range(ng)])
        tab.set_yticklabels([g.curve.group for g in result.groups], fontsize=8)
        tab.set_xticks(ticks)
        tab.set_xlabel(f"Time ({time_unit})")
        tab.set_title("Number at risk", fontsize=9, loc="left")
        for side in ("top", "right", "left"):
            tab.spines[side].set_visible(False)
        tab.tick_params(left=False)
    for j in range(len(causes)):
        axes[0, j].set_ylim(0, min(1.0, top * 1.1))
    axes[0, 0].set_ylabel("Cumulative incidence")
    axes[0, 0].legend(frameon=False, title=result.by or None, loc="upper right")
    if title:
        fig.suptitle(title)
    return _png(fig)
