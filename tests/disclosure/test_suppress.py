"""Optimal complementary suppression (issue 15): the pattern is as small as an exhaustive search
finds, the marker-aware audit agrees with enumerating every table, and a run's tables protected
together leave nothing derivable where the same tables protected one by one do.

References are independent of the method under test: the exhaustive search tries every pattern
and judges it with the LP audit (itself checked against enumeration in test_derivable.py) and
with enumeration of every whole-number table the reader could hold.
"""

from __future__ import annotations

import itertools
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from toolkit.disclosure import DisclosurePolicy
from toolkit.disclosure.audit import LinearTable, exposures, labelled_exposures, protect_greedy
from toolkit.disclosure.derive import derive_results
from toolkit.disclosure.suppress import information_loss, suppress

from .test_derivable import two_way

K = 10


def _two_way(cells: dict[tuple[str, str], int]) -> LinearTable:
    """The two-way table of test_derivable, its grand total also the sum of the row totals."""
    t = two_way(cells)
    t.relate(("T", "T"), [(r, "T") for r in sorted({r for r, _ in cells})])
    return t


def _enumerate(t: LinearTable, hidden: list[object], labels: dict[object, str]) -> dict[object, set[int]]:
    """Every value each hidden cell takes over all whole-number tables that agree with the
    published cells, the relations and the markers (<k: 1..k-1; withheld: 0 or >= k)."""
    top = t.values[("T", "T")]
    allowed = [
        np.array([v for v in range(top + 1) if (1 <= v < K if labels[h] == "small" else v == 0 or v >= K)])
        for h in hidden
    ]
    grid = np.stack([g.ravel() for g in np.meshgrid(*allowed, indexing="ij")], axis=1)
    ok = np.ones(len(grid), bool)
    col = {h: i for i, h in enumerate(hidden)}
    for r in t.relations:
        lhs = grid[:, col[r.total]] if r.total in col else np.full(len(grid), t.values[r.total])
        rhs = sum(grid[:, col[p]] if p in col else t.values[p] for p in r.parts)
        ok &= lhs == rhs
    return {h: {int(v) for v in grid[ok, col[h]]} for h in hidden}


def _valid(t: LinearTable, hidden: set[object], small: set[object]) -> bool:
    """Whether a pattern protects: no relation with one withheld cell, the LP audit finds nothing,
    and no withheld cell is determined as the markers read."""
    for r in t.relations:
        if sum(c in hidden for c in (r.total, *r.parts)) == 1:
            return False
    if exposures(t, hidden, min_cell=K):
        return False
    labels = {h: "small" if h in small else "complementary" for h in hidden}
    return not labelled_exposures(t, hidden, min_cell=K, labels=labels)


def test_the_marker_aware_audit_equals_enumeration(rng: np.random.Generator) -> None:
    checked = 0
    for _ in range(12):
        cells = {(r, c): int(rng.choice([0, 2, 4, 7, 11, 12, 15])) for r in "ab" for c in "xyz"}
        t = _two_way(cells)
        hidden = [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")]
        labels = {h: "small" if 1 <= t.values[h] < K else "complementary" for h in hidden}
        seen = _enumerate(t, hidden, labels)
        found = set(labelled_exposures(t, set(hidden), min_cell=K, labels=labels, big=t.values[("T", "T")]))
        assert found == {h for h in hidden if len(seen[h]) == 1}
        checked += len(found)
    assert checked > 0  # the draw includes tables the markers give away


def test_the_pattern_is_as_small_as_an_exhaustive_search_finds(rng: np.random.Generator) -> None:
    for _ in range(4):
        cells = {(r, c): int(rng.choice([0, 3, 6, 12, 14, 20, 25])) for r in "ab" for c in "xyz"}
        t = _two_way(cells)
        fixed = {("T", "T"): "published"}
        small = {k for k, v in t.values.items() if 1 <= v < K}
        status = suppress(t, min_cell=K, fixed=fixed)
        hidden = {k for k, s in status.items() if s != "published"}
        assert {k for k, s in status.items() if s == "small"} == small
        assert _valid(t, hidden, small)
        free = [k for k in t.values if k not in small and k != ("T", "T")]
        best = None
        for size in range(len(free) + 1):
            for extra in itertools.combinations(free, size):
                if _valid(t, small | set(extra), small):
                    loss = (size, sum(t.values[c] for c in extra))
                    best = loss if best is None else min(best, loss)
            if best is not None:
                break
        assert information_loss(t, status) == best


def test_a_withheld_zero_under_a_published_zero_total_is_never_chosen() -> None:
    # a 0 whose row adds up to a published 0 would be determined at once
    t = _two_way(
        {("a", "x"): 0, ("a", "y"): 0, ("b", "x"): 4, ("b", "y"): 30, ("c", "x"): 20, ("c", "y"): 22}
    )
    status = suppress(t, min_cell=K, fixed={("T", "T"): "published"})
    assert status[("a", "x")] == "published" and status[("a", "y")] == "published"
    hidden = {k for k, s in status.items() if s != "published"}
    assert _valid(t, hidden, {("b", "x")})


def test_the_greedy_heuristic_it_replaced_withholds_more() -> None:
    rng = np.random.default_rng(2)
    for _ in range(5):  # the fifth draw of bench/disclosure.py's tables
        cells = {
            (r, c): int(rng.choice([0, 1, 2, 5, 12, 30, 3, 40, 60, 15])) for r in "abcdef" for c in "vwxyz"
        }
    t = _two_way(cells)
    fixed = {("T", "T"): "published"}
    greedy = protect_greedy(t, min_cell=K, fixed=fixed)
    optimal = suppress(t, min_cell=K, fixed=fixed)
    assert information_loss(t, optimal) < information_loss(t, greedy)
    hidden = {k for k, s in optimal.items() if s != "published"}
    assert not exposures(t, hidden, min_cell=K)
    assert not labelled_exposures(t, hidden, min_cell=K, labels={k: optimal[k] for k in hidden})


def test_a_cell_whose_value_is_unknown_is_protected_as_if_small() -> None:
    """A pooled count a site withheld: the coordinator does not know it, and withholds enough
    around it that the published margins do not give it back."""
    t = _two_way({("a", "x"): 25, ("a", "y"): 30, ("b", "x"): 0, ("b", "y"): 40})
    status = suppress(t, min_cell=K, unknown={("a", "x")}, fixed={("T", "T"): "published"})
    assert status[("a", "x")] == "complementary"
    hidden = {k for k, s in status.items() if s != "published"}
    assert len(hidden) >= 4 and not exposures(t, hidden, min_cell=K)


def _frame(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 120
    return pd.DataFrame(
        {
            "band": rng.choice(["<65", "65-74", "75-84", "85+"], n, p=[0.35, 0.35, 0.22, 0.08]),
            "sex": rng.choice(["F", "M"], n),
            "diab": rng.choice([0, 1], n, p=[0.7, 0.3]),
            "time": rng.exponential(400, n).round() + 1,
            "event": (rng.random(n) < 0.4).astype(int),
        }
    )


@pytest.mark.parametrize("seed", [0])
def test_tables_protected_together_leave_nothing_that_one_by_one_they_give_away(seed: int) -> None:
    """Table 1 by sex (band rows), Table 1 by band (sex rows) and Kaplan-Meier by band share
    their margins.  Protected one by one (each table alone), another table prints what one
    withheld; with the run's decisions (every count at once) the scanner finds nothing and a
    cell reads the same in every table."""
    from toolkit.study.kinds import run_analysis, run_tabulations
    from toolkit.study.kinds.km import KaplanMeierAnalysis
    from toolkit.study.kinds.table1 import Table1Analysis

    frame = _frame(seed)
    specs = [
        Table1Analysis(type="table1", name="t1_sex", by="sex", variables=["band", "diab"]),
        Table1Analysis(type="table1", name="t1_band", by="band", variables=["sex", "diab"]),
        KaplanMeierAnalysis(type="kaplan_meier", name="km", by="band", times=[365.0]),
    ]
    cohort = {"n": len(frame), "events": int(frame["event"].sum())}

    def results(policy: DisclosurePolicy) -> dict[str, object]:
        analyses = {s.name: run_analysis(s, frame, policy)[0] for s in specs}
        return json.loads(json.dumps({"cohort": cohort, "analyses": analyses}))

    alone = results(DisclosurePolicy())
    assert list(derive_results(alone, min_cell=K))  # the hole: one table gives another's cell away
    spec = SimpleNamespace(analyses=specs, models=[], validation=SimpleNamespace(external=None))
    together = results(DisclosurePolicy().for_run(frame, run_tabulations(spec, frame)))
    assert list(derive_results(together, min_cell=K)) == []
    t1s, t1b, km = (together["analyses"][s.name] for s in specs)  # type: ignore[index]
    sizes_t1 = next(r for r in t1b["rows"] if r["label"] == "n")["counts"]
    sizes_km = {f"band={g['group']}": g["n"] for g in km["groups"]}
    overall = {
        f"band={r['level']}": r["counts"]["Overall"]
        for r in t1s["rows"]
        if r.get("variable") == "band" and "level" in r
    }
    assert {g: sizes_t1[g] for g in sizes_km} == sizes_km == overall
