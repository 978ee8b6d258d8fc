"""Figures of survival analyses (matplotlib, Agg), each rendered as PNG and SVG
(:class:`toolkit.analysis.figure.Plot`): Kaplan–Meier curves with an aligned number-at-risk
table, forest plots of hazard ratios, calibration.

Under a disclosure policy the release rules of :mod:`toolkit.analysis.survival.release` apply,
exactly as in the tables: a group with fewer than k persons or events has no curve, each curve
stops where its number at risk falls below k, and at-risk counts below k are not printed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.text import Text
from matplotlib.ticker import FixedLocator, NullLocator
from matplotlib.transforms import blended_transform_factory

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
from toolkit.analysis.labels import format_p, ordered
from toolkit.analysis.survival.cox import CoxResult
from toolkit.analysis.survival.km import KMCurve, KMResult
from toolkit.analysis.survival.release import group_reason, kept_steps
from toolkit.disclosure import DisclosurePolicy

__all__ = [
    "PALETTE",
    "Plot",
    "calibration_plot",
    "forest_figure",
    "forest_plot",
    "forest_plot_rows",
    "km_figure",
    "km_plot",
]


@dataclass(frozen=True)
class CurveText:
    """How survival figures name things: the grouping variable, its levels (in the declared order,
    with display labels) and the time axis."""

    by_label: str | None = None  # legend title (default: the column name)
    levels: Mapping[str, str] | None = None  # level -> label, in the order to show them
    time_label: str = "Time since cohort entry"

    def order(self, groups: Collection[str]) -> list[str]:
        return ordered(groups, list(self.levels or {}))

    def level(self, group: str) -> str:
        return (self.levels or {}).get(group, group) or group


def _released_steps(c: KMCurve, policy: DisclosurePolicy) -> tuple[bool, np.ndarray]:
    released = group_reason(c.n, c.events, policy) is None
    return released, kept_steps(c.n_risk, policy) & released


def _at_risk_counts(
    c: KMCurve, axis: TimeAxis, shown: bool, policy: DisclosurePolicy, hide_n: bool
) -> tuple[str, ...]:
    out = []
    for tk in axis.ticks:
        n = c.at(tk)[3] if tk > 0 else c.n
        value = policy.count(n) if shown and not (tk <= 0 and hide_n) else None
        out.append("–" if value is None else f"{value:,}")
    return tuple(out)


def km_figure(
    result: KMResult,
    *,
    title: str = "",
    policy: DisclosurePolicy | None = None,
    text: CurveText | None = None,
    horizon: float | None = None,
    until: float | None = None,
    censor_marks: bool = False,
    withheld_n: Collection[str] = (),
) -> plt.Figure:
    """Kaplan–Meier curves with 95% bands and a number-at-risk table aligned on the time ticks,
    over ``until`` days (default: ``horizon``, else the 90th percentile of follow-up); groups in
    the declared order (else natural order: ``<65`` before ``65-74``).  Under a policy, the
    release rules of :mod:`toolkit.analysis.survival.release` (a group below k persons or events
    is not drawn; a curve stops where fewer than k are at risk); ``withheld_n``: groups whose size
    the run withholds (their time-0 count is not printed)."""
    policy = policy or DisclosurePolicy(enabled=False)
    text = text or CurveText()
    by_group = {g.curve.group: g.curve for g in result.groups}
    names = text.order(by_group)
    end = time_range(np.concatenate([c.time for c in by_group.values()]), horizon=horizon, until=until)
    axis = time_axis(end, label=text.time_label)
    return without_overlaps(
        lambda ax: _km_draw(result, names, by_group, ax, policy, text, censor_marks, set(withheld_n), title),
        axis,
    )


def _km_draw(
    result: KMResult,
    names: list[str],
    by_group: dict[str, KMCurve],
    axis: TimeAxis,
    policy: DisclosurePolicy,
    text: CurveText,
    censor_marks: bool,
    withheld_n: set[str],
    title: str,
) -> plt.Figure:
    fig, (ax, tab) = plt.subplots(
        2, 1, figsize=(7.5, 4.2 + 0.28 * len(names)), sharex=True,
        gridspec_kw={"height_ratios": [4, 0.45 + 0.3 * len(names)], "hspace": 0.42},
    )  # fmt: skip
    rows = []
    for i, name in enumerate(names):
        c, color = by_group[name], PALETTE[i % len(PALETTE)]
        released, keep = _released_steps(c, policy)
        if released:
            t, s, lo, up = in_view(axis.end * 1.02, c.time[keep], c.survival[keep],
                                   np.nan_to_num(c.lower[keep], nan=0.0), np.nan_to_num(c.upper[keep], nan=1.0),
                                   start=1.0)  # fmt: skip
            ax.step(t, s, where="post", color=color, label=text.level(name), lw=1.8)
            ax.fill_between(t, lo, up, step="post", color=color, alpha=0.15, lw=0)
            if censor_marks:
                cens = keep & (c.n_censor > 0) & (c.time <= axis.end * 1.02)
                ax.plot(c.time[cens], c.survival[cens], "|", color=color, ms=5, mew=0.8)
        rows.append(
            RiskRow(text.level(name), color, _at_risk_counts(c, axis, released, policy, name in withheld_n))
        )
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("Survival probability")
    ax.grid(alpha=0.3)
    apply_time_axis(ax, axis)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False, title=text.by_label or result.by or None, loc="lower left", fontsize=9)
    if result.logrank is not None:
        ax.text(
            0.98,
            0.95,
            f"log-rank p {_p_text(result.logrank.p)}",
            transform=ax.transAxes,
            ha="right",
            va="top",
        )
    if title:
        ax.set_title(title)
    at_risk_table(tab, rows, axis)
    return fig


def _p_text(p: float | None) -> str:
    shown = format_p(p)
    return shown if shown[0] in "<>" else f"= {shown}"


def km_plot(result: KMResult, **options: object) -> Plot:
    """:func:`km_figure` rendered (PNG and SVG)."""
    return render(km_figure(result, **options))  # type: ignore[arg-type]


@dataclass(frozen=True)
class ForestRow:
    """One row of a forest plot: a label, its n and events (text), and the estimate (or none:
    a reference level or a heading)."""

    label: str
    counts: str = ""
    hr: float | None = None
    lower: float | None = None
    upper: float | None = None
    p: float | None = None
    note: str = ""  # instead of an estimate: "reference"


def forest_rows(result: CoxResult, *, labels: Mapping[str, str] | None = None,
                counts: Mapping[str, str] | None = None) -> list[ForestRow]:  # fmt: skip
    """One row per model term (display labels from ``labels``, term -> text; n and events from
    ``counts``, term -> text)."""
    labels, counts = labels or {}, counts or {}
    return [
        ForestRow(labels.get(t.term, t.term), counts.get(t.term, ""), t.hr, t.hr_lower, t.hr_upper, t.p)
        for t in result.terms
    ]


def hr_ticks(low: float, high: float) -> list[float]:
    """Hazard-ratio ticks by doubling around 1 (…, 0.25, 0.5, 1, 2, 4, …) covering [low, high]."""
    lo = 2.0 ** np.floor(np.log2(max(min(low, 1.0), 1e-3)))
    hi = 2.0 ** np.ceil(np.log2(min(max(high, 1.0), 1e3)))
    ticks = [float(lo * 2.0**k) for k in range(int(np.rint(np.log2(hi / lo))) + 1)]
    while len(ticks) > 7:
        ticks = ticks[::2] if 1.0 in ticks[::2] else ticks[1::2]
    return ticks


def forest_figure(
    rows: Sequence[ForestRow], *, title: str = "", counts_header: str = "n (events)"
) -> plt.Figure:
    """A forest plot: label and n (events) at the left, estimate and 95% CI on a log axis with
    ticks 0.5, 1, 2, … and a reference line at 1, HR (95% CI) and p at the right.  Columns are
    as wide as their longest text, so nothing overlaps."""
    rows = list(rows)
    finite = [v for r in rows for v in (r.lower, r.upper, r.hr) if v is not None and np.isfinite(v) and v > 0]
    ticks = hr_ticks(min(finite, default=0.5), max(finite, default=2.0))
    height = 0.3 * len(rows) + 1.2
    fig = plt.figure(figsize=(9.0, height))
    ax = fig.add_axes((0.4, 0.75 / height, 0.3, (height - 1.2) / height))
    ax.set_ylim(-0.6, len(rows) - 0.4)
    at = blended_transform_factory(fig.dpi_scale_trans, ax.transData)  # x in inches, y in rows
    y = np.arange(len(rows))[::-1].astype(float)
    cols: dict[str, list[Text]] = {"label": [], "counts": [], "estimate": [], "p": []}
    head_y = len(rows) - 0.35
    for key, head in (("counts", counts_header), ("estimate", "HR (95% CI)"), ("p", "p")):
        cols[key].append(
            fig.text(0, head_y, head, transform=at, va="bottom", fontsize=8.5, fontweight="bold")
        )
    for yi, r in zip(y, rows, strict=True):
        cols["label"].append(fig.text(0, yi, r.label, transform=at, va="center", fontsize=8.5))
        cols["counts"].append(fig.text(0, yi, r.counts, transform=at, va="center", fontsize=8.5))
        if r.hr is not None and r.lower is not None and r.upper is not None:
            lo, hi = max(r.lower, ticks[0] / 1.5), min(r.upper, ticks[-1] * 1.5)
            ax.plot([lo, hi], [yi, yi], color="#1f5a96", lw=1.4, solid_capstyle="butt")
            ax.plot(r.hr, yi, "s", color="#1f5a96", ms=5)
            est = f"{r.hr:.2f} ({r.lower:.2f}–{r.upper:.2f})"
            cols["estimate"].append(fig.text(0, yi, est, transform=at, va="center", fontsize=8.5))
            cols["p"].append(fig.text(0, yi, format_p(r.p), transform=at, va="center", fontsize=8.5))
        elif r.note:
            cols["estimate"].append(
                fig.text(0, yi, r.note, transform=at, va="center", fontsize=8.5, color="#5b6b7c")
            )
    _forest_columns(fig, ax, cols, height)
    ax.axvline(1.0, color="#333", lw=0.9)
    ax.set_xscale("log")
    ax.set_xlim(ticks[0] / 1.5, ticks[-1] * 1.5)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.set_yticks([])
    ax.set_xlabel("Hazard ratio (log scale)")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="x", alpha=0.25)
    if title:
        fig.suptitle(title, x=0.01, ha="left", fontsize=10)
    return fig


def _forest_columns(fig: plt.Figure, ax: plt.Axes, cols: dict[str, list[Text]], height: float) -> None:
    """Place the columns side by side, each as wide as its widest text (measured), and size the
    figure to them: label | n (events) | plot | HR (95% CI) | p."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]

    def width(texts: list[Text]) -> float:
        return max((t.get_window_extent(renderer).width / fig.dpi for t in texts), default=0.0)

    gap, plot_w = 0.2, 2.8
    x = 0.05
    for t in cols["label"]:
        t.set_x(x)
    x += width(cols["label"]) + gap + width(cols["counts"])
    for t in cols["counts"]:
        t.set_x(x)
        t.set_horizontalalignment("right")
    plot_x = x + gap
    x = plot_x + plot_w + gap
    for t in cols["estimate"]:
        t.set_x(x)
    x += width(cols["estimate"]) + gap + width(cols["p"])
    for t in cols["p"]:
        t.set_x(x)
        t.set_horizontalalignment("right")
    total = x + 0.05
    fig.set_size_inches(total, height)
    ax.set_position((plot_x / total, 0.75 / height, plot_w / total, (height - 1.2) / height))


def forest_plot_rows(rows: Sequence[ForestRow], *, title: str = "") -> Plot:
    """:func:`forest_figure` of prepared rows (headings, reference levels, counts), rendered."""
    return render(forest_figure(rows, title=title))


def forest_plot(result: CoxResult, *, title: str = "", labels: Mapping[str, str] | None = None,
                counts: Mapping[str, str] | None = None) -> Plot:  # fmt: skip
    """:func:`forest_figure` of a Cox model's terms, rendered (PNG and SVG)."""
    return render(forest_figure(forest_rows(result, labels=labels, counts=counts), title=title))


def calibration_plot(pred: np.ndarray, observed: np.ndarray, *, title: str = "") -> Plot:
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
    return render(fig)
