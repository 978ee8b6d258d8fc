"""Issue 15: what can be derived from published tables.

* the LP audit's bounds equal brute-force enumeration of every non-negative integer table that
  agrees with the published cells and margins (an independent reference);
* the scanner fails outputs with the two holes found on the MIMIC-IV demo: a Table 1 cell
  recoverable by subtraction (38 - 34 = 4) and a Kaplan-Meier median for a group of 6;
* complementary suppression leaves nothing the audit can recover in a two-way table;
* survival release rules: no estimate for a group below k persons or events, curves stop below k
  at risk.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from toolkit.disclosure import DisclosurePolicy
from toolkit.disclosure.audit import LinearTable, bounds, exposures, protect
from toolkit.disclosure.derive import derive_results
from toolkit.disclosure.scan import scan_html, scan_json


def two_way(cells: dict[tuple[str, str], int]) -> LinearTable:
    """A two-way table with its row, column and grand totals (the grand total the sum of the columns)."""
    rows = sorted({r for r, _ in cells})
    cols = sorted({c for _, c in cells})
    t = LinearTable(dict(cells))
    for r in rows:
        t.add((r, "T"), sum(cells[(r, c)] for c in cols))
        t.relate((r, "T"), [(r, c) for c in cols])
    for c in cols:
        t.add(("T", c), sum(cells[(r, c)] for r in rows))
        t.relate(("T", c), [(r, c) for r in rows])
    t.add(("T", "T"), sum(cells.values()))
    t.relate(("T", "T"), [("T", c) for c in cols])
    return t


def _brute(t: LinearTable, hidden: list[tuple[str, str]], top: int) -> dict[tuple[str, str], tuple[int, int]]:
    """Every assignment of 0..top to the hidden cells that satisfies all relations."""
    seen: dict[tuple[str, str], list[int]] = {h: [] for h in hidden}
    for combo in itertools.product(range(top + 1), repeat=len(hidden)):
        v = {**t.values, **dict(zip(hidden, combo, strict=True))}
        if all(v[r.total] == sum(v[p] for p in r.parts) for r in t.relations):
            for h, x in zip(hidden, combo, strict=True):
                seen[h].append(x)
    return {h: (min(x), max(x)) for h, x in seen.items()}


def test_lp_bounds_equal_brute_force_enumeration(rng: np.random.Generator) -> None:
    for _ in range(6):
        cells = {(r, c): int(rng.integers(0, 9)) for r in "ab" for c in "xyz"}
        t = two_way(cells)
        hidden = [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")]
        lp = bounds(t, hidden)
        ref = _brute(t, hidden, top=max(t.values.values()))
        assert {h: (round(lp[h][0]), round(lp[h][1])) for h in hidden} == ref


def test_the_table1_hole_is_determined_and_complementary_suppression_closes_it() -> None:
    cells = {("F", "85+"): 34, ("M", "85+"): 4, ("F", "<85"): 36, ("M", "<85"): 26}
    t = two_way(cells)
    found = exposures(t, {("M", "85+")}, min_cell=10)
    assert [(e.cells, e.why, e.lower) for e in found] == [((("M", "85+"),), "determined", 4.0)]
    status = protect(t, min_cell=10, fixed={("T", "85+"): "published", ("T", "T"): "published"})
    hidden = {k for k, s in status.items() if s != "published"}
    assert status[("M", "85+")] == "small" and len(hidden) >= 4
    assert exposures(t, hidden, min_cell=10) == []


def _hole_results() -> dict[str, object]:
    return {
        "cohort": {"n": 100, "events": 40, "attrition": [{"step": "all", "kind": "registry", "n": 100, "removed": 0, "events": None}]},
        "analyses": {
            "t1": {"type": "table1", "by": "age", "groups": ["Overall", "age=<85", "age=85+"], "rows": [
                {"label": "n", "variable": None, "counts": {"Overall": 100, "age=<85": 62, "age=85+": 38}},
                {"label": "sex = F, n (%)", "variable": "sex", "level": "F", "counts": {"Overall": 70, "age=<85": 36, "age=85+": 34}},
                {"label": "sex = M, n (%)", "variable": "sex", "level": "M", "counts": {"Overall": 30, "age=<85": 26, "age=85+": None}},
                {"label": "sex, missing", "variable": "sex", "counts": {"Overall": 0, "age=<85": 0, "age=85+": 0}},
            ]},
            "km": {"type": "kaplan_meier", "by": "band", "groups": [
                {"group": "85+", "n": None, "events": None, "counts_suppressed": {"n": "small", "events": "small"},
                 "median": 412.0, "median_lower": None, "median_upper": None,
                 "at": [{"time": 365, "survival": 0.5, "lower": 0.2, "upper": 0.8, "n_risk": None}]},
            ]},
        },
        "models": {},
    }  # fmt: skip


def test_the_scanner_fails_both_holes_in_results_json_and_html() -> None:
    found = list(derive_results(_hole_results(), min_cell=10))
    assert any(
        "sex=M [age=85+]" in d.where and d.why.startswith("withheld value is determined") for d in found
    )
    assert any(d.where.endswith("groups[85+].median") for d in found)
    assert any("at 365" in d.where for d in found)
    html = (
        "<table><tr><th></th><th>Overall</th><th>age=&lt;85</th><th>age=85+</th></tr>"
        "<tr><td>n</td><td>100</td><td>62</td><td>38</td></tr>"
        "<tr><td>sex = F, n (%)</td><td>70 (70.0%)</td><td>36 (58.1%)</td><td>34 (89.5%)</td></tr>"
        "<tr><td>sex = M, n (%)</td><td>30 (30.0%)</td><td>26 (41.9%)</td><td>&lt;10</td></tr>"
        "<tr><td>sex, missing</td><td>0</td><td>0</td><td>0</td></tr></table>"
        "<table><tr><th>group</th><th>n</th><th>events</th><th>median (95% CI)</th></tr>"
        "<tr><td>85+</td><td>&lt;10</td><td>&lt;10</td><td>412 (NA–NA)</td></tr></table>"
    )
    why = [f.why for f in scan_html(html, min_cell=10)]
    assert any("determined by the margins (4)" in w for w in why)
    assert any("published for a group below 10" in w for w in why)
    # the count scanner alone saw nothing wrong: every shown count is 0 or >= 10
    assert list(scan_json(json.loads(json.dumps(_hole_results())), min_cell=10)) == []


def test_table1_with_small_groups_leaves_nothing_derivable(rng: np.random.Generator) -> None:
    from toolkit.analysis.describe import table1

    n = 120
    frame = pd.DataFrame(
        {
            "band": rng.choice(["a", "b", "c", "d"], n, p=[0.45, 0.3, 0.2, 0.05]),
            "sex": rng.choice(["F", "M"], n),
            "age": rng.normal(70, 10, n),
        }
    )
    t = table1(frame, ["sex", "age"], by="band", policy=DisclosurePolicy())
    d = t.to_dict()
    small = frame["band"].value_counts().min()
    assert 1 <= small <= 12
    assert list(derive_results({"cohort": {"n": n}, "analyses": {"t1": d}}, min_cell=10)) == []
    shown = [c for r in d["rows"] for c in r["cells"].values()]  # type: ignore[index, union-attr]
    assert "<10" in shown and "None" not in " ".join(map(str, shown))


def test_a_kaplan_meier_group_below_k_releases_no_estimate(rng: np.random.Generator) -> None:
    from toolkit.study.kinds import run_analysis
    from toolkit.study.kinds.km import KaplanMeierAnalysis

    frame = pd.DataFrame(
        {
            "time": np.r_[rng.exponential(300, 60), rng.exponential(300, 6)].round() + 1,
            "event": np.r_[rng.random(60) < 0.7, np.ones(6, bool)].astype(int),
            "band": ["young"] * 60 + ["85+"] * 6,
        }
    )
    spec = KaplanMeierAnalysis(type="kaplan_meier", name="km", by="band", times=[30.0, 2000.0])
    entry, _ = run_analysis(spec, frame, DisclosurePolicy())
    old = next(g for g in entry["groups"] if g["group"] == "85+")
    assert old["suppressed"] == "fewer than 10 persons"
    assert old["median"] is None and all(a["survival"] is None for a in old["at"])
    young = next(g for g in entry["groups"] if g["group"] == "young")
    late = young["at"][-1]  # nobody is at risk at 2000 days: the curve has stopped
    assert late["survival"] is None and late["suppressed"] == "fewer than 10 at risk"
    assert list(derive_results({"cohort": {"n": 66, "events": int(frame.event.sum())},
                                "analyses": {"km": entry}}, min_cell=10)) == []  # fmt: skip


@pytest.mark.parametrize(("n", "expected"), [(0, "the cohort is empty"), (7, "fewer than 10 persons")])
def test_an_empty_or_tiny_cohort_stops_with_one_line(n: int, expected: str) -> None:
    from types import SimpleNamespace

    from toolkit.errors import DisclosureError
    from toolkit.study.publish import check_releasable

    plan = SimpleNamespace(name="s", policy=DisclosurePolicy())
    with pytest.raises(DisclosureError, match=expected) as err:
        check_releasable(plan, n)  # type: ignore[arg-type]
    assert "\n" not in str(err.value)
