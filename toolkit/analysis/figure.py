"""What every figure shares: one rendering into PNG *and* SVG, a readable time axis, the
number-at-risk table under survival curves, and a check that no two labels overlap (level order
and p-values as journals print them come from :mod:`toolkit.analysis.labels`).

A figure is rendered once into both formats (:class:`Plot`): the report embeds the SVG (sharp at
any zoom and in print), MLflow and notebooks get the PNG.  ``Plot`` *is* the PNG bytes, so every
place that stores or writes a plot as bytes keeps working; the SVG travels with it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.text import Text

PALETTE = ("#1f5a96", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#16a085")
DAYS_PER_YEAR = 365.25  # the same year as study.yaml durations (toolkit.specs)
AT_RISK_FONT = 8.0


class Plot(bytes):
    """A figure's PNG bytes that also carry the same figure as SVG text (``.svg``)."""

    svg: str

    def __new__(cls, png: bytes, svg: str = "") -> Plot:
        obj = super().__new__(cls, png)
        obj.svg = svg
        return obj

    def __reduce__(self) -> tuple[type[Plot], tuple[bytes, str]]:  # pickled by the step cache
        return (type(self), (bytes(self), self.svg))


def render(fig: plt.Figure, *, dpi: int = 150) -> Plot:
    """PNG and SVG of ``fig`` (closed afterwards).  The SVG keeps text as text (small, searchable)
    and carries no date, so the same figure gives the same bytes."""
    png, svg = io.BytesIO(), io.StringIO()
    fig.savefig(png, format="png", dpi=dpi, bbox_inches="tight")
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "regent"}):
        fig.savefig(svg, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return Plot(png.getvalue(), svg.getvalue())


@dataclass(frozen=True)
class TimeAxis:
    """A time axis over ``[0, end]`` days with readable ticks, shown in days or years."""

    end: float  # days
    ticks: tuple[float, ...]  # days
    unit: str  # "days" or "years"
    label: str  # "Time since cohort entry (days)"

    def tick_text(self, t: float) -> str:
        if self.unit == "years":
            return f"{t / DAYS_PER_YEAR:g}"
        return f"{t:g}"

    def thinned(self) -> TimeAxis:
        """Every other tick: for when labels would touch."""
        return TimeAxis(self.end, self.ticks[::2], self.unit, self.label)


_DAY_STEPS = (7, 14, 30, 60, 90, 120, 180, 365)
_YEAR_STEPS = (1, 2, 5, 10)


def time_axis(end: float, *, label: str = "Time since cohort entry", max_ticks: int = 8) -> TimeAxis:
    """Ticks over ``[0, end]`` days: up to two years in days at the largest round step (7, 14, 30,
    60, 90, 120, 180) giving at least four intervals (a last tick within a quarter step of ``end``
    moves onto it, so a 365-day horizon reads 0, 90, 180, 270, 365); beyond two years in whole
    years (every 1, 2, 5 or 10)."""
    if not end > 0:
        raise ValueError(f"a time axis needs a positive end; got {end}")
    if end <= 2 * DAYS_PER_YEAR:
        # the largest round step that still gives four intervals (365 days: 90; 730: 180)
        fits = [s for s in _DAY_STEPS if 4 <= end / s <= max_ticks - 1]
        step = max(fits) if fits else next((s for s in _DAY_STEPS if end / s <= max_ticks - 1), 365)
        ticks = [float(k * step) for k in range(int(end // step) + 1)]
        if end - ticks[-1] > 0 and end - ticks[-1] < 0.25 * step:
            ticks[-1] = float(end)
        return TimeAxis(float(end), tuple(ticks), "days", f"{label} (days)")
    years = end / DAYS_PER_YEAR
    ystep = next((s for s in _YEAR_STEPS if years / s <= max_ticks - 1), _YEAR_STEPS[-1])
    ticks = [k * ystep * DAYS_PER_YEAR for k in range(int(years // ystep + 1e-9) + 1)]
    return TimeAxis(float(end), tuple(ticks), "years", f"{label} (years)")


def time_range(
    times: Sequence[float] | np.ndarray, *, horizon: float | None = None, until: float | None = None
) -> float:
    """The declared range (``until``), else the study's horizon, else the 90th percentile of
    follow-up (beyond it a curve rests on few persons)."""
    if until is not None:
        return float(until)
    if horizon is not None:
        return float(horizon)
    return float(np.percentile(np.asarray(times, float), 90))


def overlapping(texts: Sequence[Text], *, pad: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of visible, non-empty texts whose drawn boxes overlap (in display pixels)."""
    shown = [t for t in texts if t.get_visible() and t.get_text().strip()]
    if not shown:
        return []
    fig = shown[0].figure
    assert fig is not None
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    boxes = [(t.get_text(), t.get_window_extent(renderer=renderer).expanded(1, 1).padded(pad)) for t in shown]
    out = []
    for i, (a, ba) in enumerate(boxes):
        for b, bb in boxes[i + 1 :]:
            if ba.overlaps(bb):
                out.append((a, b))
    return out


def figure_overlaps(fig: plt.Figure) -> list[tuple[str, str]]:
    """Every overlap among a figure's own texts, its tick labels (per axis) and the texts of each
    number-at-risk row (those drawn with ``gid`` ``at-risk-<row>``)."""
    fig.canvas.draw()
    found = overlapping(fig.texts)  # texts placed on the figure (a forest plot's columns)
    for ax in fig.axes:
        found += overlapping(ax.get_xticklabels())
        found += overlapping(ax.get_yticklabels())
        at_risk = [t for t in ax.texts if (t.get_gid() or "").startswith("at-risk")]
        if at_risk:  # the numbers of every row together with the row labels beside them
            found += overlapping([*at_risk, *ax.get_yticklabels()])
    return found


def without_overlaps(draw: Callable[[TimeAxis], plt.Figure], axis: TimeAxis) -> plt.Figure:
    """``draw(axis)``, with the time ticks thinned until no label overlaps another (three ticks
    at the least)."""
    while True:
        fig = draw(axis)
        if len(axis.ticks) <= 3 or not figure_overlaps(fig):
            return fig
        plt.close(fig)
        axis = axis.thinned()


@dataclass(frozen=True)
class RiskRow:
    """One row of a number-at-risk table: its label, colour and the count shown at each tick."""

    label: str
    color: str
    counts: tuple[str, ...]


def at_risk_table(
    ax: plt.Axes, rows: Sequence[RiskRow], axis: TimeAxis, *, title: str = "Number at risk"
) -> None:
    """Draw the at-risk numbers on ``ax`` (sharing the curve's x axis): one row per group, each
    number centred under its tick, the group's label at the left in its colour."""
    n = len(rows)
    for i, row in enumerate(rows):
        y = n - i - 0.5
        for tk, text in zip(axis.ticks, row.counts, strict=True):
            ax.text(tk, y, text, ha="center", va="center_baseline", fontsize=AT_RISK_FONT, color=row.color,
                    gid=f"at-risk-{i}")  # fmt: skip
    ax.set_ylim(0, n)
    ax.set_yticks([n - i - 0.5 for i in range(n)])
    ax.set_yticklabels([r.label for r in rows], fontsize=AT_RISK_FONT)
    for tick, row in zip(ax.get_yticklabels(), rows, strict=True):
        tick.set_color(row.color)
    ax.set_title(title, fontsize=9, loc="left")
    # the row labels clear the first column of numbers, which is centred on time 0
    fig = ax.figure
    fig.canvas.draw()
    first = [t for t in ax.texts if t.get_position()[0] == axis.ticks[0]]
    half = max((t.get_window_extent().width for t in first), default=0.0) / 2 * 72 / fig.dpi
    ax.tick_params(left=False, bottom=False, labelbottom=False, pad=half + 6)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)


def apply_time_axis(ax: plt.Axes, axis: TimeAxis) -> None:
    """Ticks, their labels and the axis label on the curve panel; the range [0, end]."""
    ax.set_xlim(0, axis.end * 1.02)
    ax.set_xticks(list(axis.ticks))
    ax.set_xticklabels([axis.tick_text(t) for t in axis.ticks])
    ax.tick_params(labelbottom=True)
    ax.set_xlabel(axis.label)


def in_view(xmax: float, time: np.ndarray, *values: np.ndarray, start: float) -> tuple[np.ndarray, ...]:
    """A step curve's points from time 0 up to ``xmax`` (beyond it nothing is seen; leaving the
    points out keeps the SVG small), held flat to ``xmax`` when the curve goes on past it."""
    inside = time <= xmax
    t = np.concatenate([[0.0], time[inside]])
    out = [np.concatenate([[start], v[inside]]) for v in values]
    if len(time) and time[-1] > xmax:
        t = np.append(t, xmax)
        out = [np.append(v, v[-1]) for v in out]
    return (t, *out)
