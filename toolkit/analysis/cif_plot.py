"""Cumulative-incidence figures in the style of :func:`toolkit.analysis.plots.km_figure`.

One panel per cause (rising step curves with their log-scale confidence bands) over the declared
time range, and one number-at-risk table aligned on the time ticks.  Under a disclosure policy
the release rules of :mod:`toolkit.analysis.survival.release` apply as in the tables: no curve
for a group with fewer than k persons, or for a cause with fewer than k events in it; each curve
stops where its number at risk falls below k; at-risk counts below k are shown as "–".
"""

from __future__ import annotations

from collections.abc import Collection

import matplotlib.pyplot as plt
import numpy as np

from toolkit.analysis.figure import (
    PALETTE,
    Plot,
    RiskRow,
    TimeAxis,
    apply_time_axis,
    at_risk_table,
    in_view,
    render,
    time_axis,
    time_range,
    without_overlaps,
)
from toolkit.analysis.labels import format_p
from toolkit.analysis.plots import CurveText
from toolkit.analysis.survival.cif import CIFCurve, CIFResult
from toolkit.analysis.survival.release import group_reason, kept_steps
from toolkit.disclosure import DisclosurePolicy


def cif_figure(
    result: CIFResult,
    *,
    title: str = "",
    policy: DisclosurePolicy | None = None,
    text: CurveText | None = None,
    horizon: float | None = None,
    until: float | None = None,
    censor_marks: bool = False,
    cause_labels: dict[int, str] | None = None,
    withheld_n: Collection[str] = (),
) -> plt.Figure:
    """Aalen–Johansen cumulative incidence of each cause by group, with 95% bands and an at-risk
    table, over ``until`` days (default ``horizon``, else the 90th percentile of follow-up)."""
    policy = policy or DisclosurePolicy(enabled=False)
    text = text or CurveText()
    by_group = {g.curve.group: g.curve for g in result.groups}
    names = text.order(by_group)
    end = time_range(np.concatenate([c.time for c in by_group.values()]), horizon=horizon, until=until)
    axis = time_axis(end, label=text.time_label)
    return without_overlaps(
        lambda ax: _draw(result, names, by_group, ax, policy, text, censor_marks, cause_labels or {},
                         set(withheld_n), title),
        axis,
    )  # fmt: skip


def _draw(
    result: CIFResult,
    names: list[str],
    by_group: dict[str, CIFCurve],
    axis: TimeAxis,
    policy: DisclosurePolicy,
    text: CurveText,
    censor_marks: bool,
    labels: dict[int, str],
    withheld_n: set[str],
    title: str,
) -> plt.Figure:
    causes = list(result.causes)
    fig = plt.figure(figsize=(max(7.5, 4.0 * len(causes) + 1.5), 4.4 + 0.28 * len(names)))
    grid = fig.add_gridspec(2, len(causes), height_ratios=[4, 0.45 + 0.3 * len(names)], hspace=0.45)
    axes = [fig.add_subplot(grid[0, j]) for j in range(len(causes))]
    top = 0.05
    for j, cause in enumerate(causes):
        ax = axes[j]
        for i, name in enumerate(names):
            c, color = by_group[name], PALETTE[i % len(PALETTE)]
            k = c.causes.index(cause)
            shown = group_reason(c.n, c.n, policy) is None
            released = shown and group_reason(c.n, int(c.n_event[:, k].sum()), policy) is None
            keep = kept_steps(c.n_risk, policy) & released
            if released:
                t, f, lo, up = in_view(axis.end * 1.02, c.time[keep], c.cif[keep, k], c.lower[keep, k],
                                       c.upper[keep, k], start=0.0)  # fmt: skip
                ax.step(t, f, where="post", color=color, label=text.level(name), lw=1.8)
                ax.fill_between(t, lo, up, step="post", color=color, alpha=0.15, lw=0)
                top = max(top, float(np.nanmax(up)))
                if censor_marks:
                    cens = keep & (c.n_censor > 0) & (c.time <= axis.end * 1.02)
                    ax.plot(c.time[cens], c.cif[cens, k], "|", color=color, ms=5, mew=0.8)
        gray = next((t for t in result.gray if t.cause == cause and t.p is not None), None)
        if gray is not None:
            shown_p = format_p(gray.p)
            ax.text(0.02, 0.95, f"Gray's test p {shown_p if shown_p[0] in '<>' else '= ' + shown_p}",
                    transform=ax.transAxes, ha="left", va="top")  # fmt: skip
        ax.set_title(labels.get(cause, f"cause {cause}"), fontsize=10)
        ax.grid(alpha=0.3)
        apply_time_axis(ax, axis)
    for ax in axes:
        ax.set_ylim(0, min(1.0, top * 1.1))
    axes[0].set_ylabel("Cumulative incidence")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(frameon=False, title=text.by_label or result.by or None, loc="upper right", fontsize=9)
    rows = [_risk_row(by_group[name], PALETTE[i % len(PALETTE)], text.level(name), axis, policy,
                      name in withheld_n) for i, name in enumerate(names)]  # fmt: skip
    for j, ax in enumerate(axes):  # the same persons are at risk for every cause: one table per panel
        at_risk_table(fig.add_subplot(grid[1, j], sharex=ax), rows, axis)
    if title:
        fig.suptitle(title)
    return fig


def _risk_row(c: CIFCurve, color: str, label: str, axis: TimeAxis, policy: DisclosurePolicy,
              hide_n: bool) -> RiskRow:  # fmt: skip
    shown_group = group_reason(c.n, c.n, policy) is None
    counts = []
    for tk in axis.ticks:
        n = c.at(tk, c.causes[0])[4] if tk > 0 else c.n
        value = None if not shown_group or (tk <= 0 and hide_n) else policy.count(n)
        counts.append("–" if value is None else f"{value:,}")
    return RiskRow(label, color, tuple(counts))


def cif_plot(result: CIFResult, **options: object) -> Plot:
    """:func:`cif_figure` rendered (PNG and SVG)."""
    return render(cif_figure(result, **options))  # type: ignore[arg-type]
