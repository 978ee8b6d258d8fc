"""Figures to journal standard: readable time ticks over the declared range, at-risk numbers that
never touch (checked on matplotlib's own bounding boxes), levels in order, hazard-ratio ticks,
and one rendering that carries both PNG and SVG."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from toolkit.analysis.cif_plot import cif_figure
from toolkit.analysis.figure import Plot, figure_overlaps, time_axis
from toolkit.analysis.labels import format_p, ordered
from toolkit.analysis.plots import CurveText, ForestRow, forest_figure, hr_ticks, km_figure, km_plot
from toolkit.analysis.survival.cif import cumulative_incidence
from toolkit.analysis.survival.km import kaplan_meier
from toolkit.disclosure import DisclosurePolicy

BANDS = ["85+", "75-84", "<65", "65-74"]


def _cohort(rng: np.random.Generator, n: int = 24_000, follow_up: float = 4000.0) -> pd.DataFrame:
    band = rng.choice(BANDS, n)
    scale = pd.Series(band).map({"<65": 6000, "65-74": 4000, "75-84": 2500, "85+": 1200}).to_numpy()
    t, c = rng.exponential(scale), rng.uniform(0, follow_up, n)
    return pd.DataFrame({"time": np.minimum(t, c).round(), "event": (t < c).astype(int), "age_band": band})


def test_time_axis_reads_in_round_steps() -> None:
    assert time_axis(365).ticks == (0, 90, 180, 270, 365)
    assert time_axis(730).ticks == (0, 180, 360, 540, 730)
    assert time_axis(100).ticks == (0, 30, 60, 90)
    long = time_axis(4000)
    assert long.unit == "years" and [long.tick_text(t) for t in long.ticks] == ["0", "2", "4", "6", "8", "10"]
    assert long.label.endswith("(years)") and time_axis(365).label.endswith("(days)")


def test_levels_in_natural_or_declared_order() -> None:
    assert ordered(BANDS) == ["<65", "65-74", "75-84", "85+"]
    assert ordered(["M", "F"], ["M", "F"]) == ["M", "F"]


@pytest.mark.parametrize(("p", "shown"), [(8.07e-80, "<0.001"), (0.0042, "0.004"), (0.0496, "0.050"),
                                          (0.0512, "0.051"), (0.213, "0.21"), (0.996, ">0.99"), (None, "NA")])  # fmt: skip
def test_p_values_as_journals_print_them(p: float | None, shown: str) -> None:
    assert format_p(p) == shown


@pytest.mark.parametrize(("until", "horizon"), [(None, None), (None, 365.0), (4000.0, None)])
def test_km_labels_never_overlap(
    rng: np.random.Generator, until: float | None, horizon: float | None
) -> None:
    km = kaplan_meier(_cohort(rng), by="age_band", times=[90, 180, 365])
    fig = km_figure(km, policy=DisclosurePolicy(), until=until, horizon=horizon, censor_marks=True,
                    text=CurveText(by_label="Age band (years)", time_label="Time since admission"))  # fmt: skip
    assert figure_overlaps(fig) == []
    ax, table = fig.axes
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert len(ticks) >= 4 and all(ticks)  # the curve panel carries its tick labels
    assert ax.get_xlabel().startswith("Time since admission (")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["<65", "65-74", "75-84", "85+"]
    assert [t.get_text() for t in table.get_yticklabels()] == ["<65", "65-74", "75-84", "85+"]
    # the at-risk numbers sit on the curve panel's ticks, one row per group
    xs = sorted({t.get_position()[0] for t in table.texts})
    assert xs == pytest.approx(list(ax.get_xticks()))
    assert ax.get_xlim()[1] == pytest.approx(1.02 * (until or horizon or np.percentile(km_times(km), 90)))


def km_times(km) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.concatenate([g.curve.time for g in km.groups])


def test_overlap_check_finds_touching_labels(rng: np.random.Generator) -> None:
    """The check itself: numbers forced onto the same spot are found."""
    km = kaplan_meier(_cohort(rng, 2000), by="age_band")
    fig = km_figure(km, until=365)
    fig.axes[1].text(0, 3.5, "12,345", gid="at-risk-0", fontsize=8)
    assert figure_overlaps(fig) != []


def test_cif_labels_never_overlap(rng: np.random.Generator) -> None:
    frame = _cohort(rng, 6000)
    frame["event"] = np.where(frame["event"] == 1, rng.choice([1, 2], len(frame)), 0)
    res = cumulative_incidence(frame, by="age_band", times=[365])
    fig = cif_figure(
        res, policy=DisclosurePolicy(), cause_labels={1: "Cardiovascular death", 2: "Other death"}
    )
    assert figure_overlaps(fig) == []
    assert [a.get_title() for a in fig.axes[:2]] == ["Cardiovascular death", "Other death"]


def test_forest_plot_has_ratio_ticks_a_reference_line_and_counts() -> None:
    rows = [
        ForestRow("Age (years)", "3,267 (1,844)", 1.03, 1.02, 1.04, 1e-9),
        ForestRow("Sex"),
        ForestRow("\u2003Female", "1,427 (786)", note="reference"),
        ForestRow("\u2003Male", "1,840 (1,058)", 1.22, 1.11, 1.34, 0.0001),
        ForestRow("Beta-blocker in the prior 90 days (yes vs no)", "3,267 (1,844)", 0.79, 0.71, 0.87, 0.3),
    ]
    fig = forest_figure(rows)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "1", "2"]
    assert any(np.allclose(line.get_xdata(), [1, 1]) for line in ax.get_lines())  # the reference line
    texts = [t.get_text() for t in fig.texts]
    assert {"n (events)", "HR (95% CI)", "1,840 (1,058)", "reference", "<0.001", "0.30"} <= set(texts)
    assert figure_overlaps(fig) == []
    assert hr_ticks(0.3, 5.0) == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]


def test_a_plot_is_png_bytes_carrying_the_same_figure_as_svg(rng: np.random.Generator) -> None:
    km = kaplan_meier(_cohort(rng, 3000), by="age_band")
    plot = km_plot(km, horizon=365)
    assert isinstance(plot, Plot) and plot[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.svg.lstrip().startswith("<?xml") and ">85+<" in plot.svg  # text stays text
    again = pickle.loads(pickle.dumps(plot))  # the step cache pickles it
    assert again == plot and again.svg == plot.svg
    assert km_plot(km, horizon=365).svg == plot.svg  # no date, fixed ids: the same bytes
    assert len(plot.svg) < 150_000  # only the points inside the range are drawn
