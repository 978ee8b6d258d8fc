"""What can be derived from a published table: exact linear bounds on its withheld cells, and
complementary (secondary) suppression until no withheld cell can be recovered.

A published table is a linear system: cells with non-negative values and *relations*
``total = part_1 + ... + part_m`` (a row or column margin, a group size made of its levels, an
attrition step).  A reader knows every published cell and every relation, so each withheld cell
lies in an interval found by linear programming: minimise and maximise it subject to the
relations and non-negativity (scipy's HiGHS).  A withheld cell is **exposed** when

* its interval is a single value (it is *determined*: the 38 - 34 = 4 of a Table 1 row), or
* its interval lies inside 1..k-1 (it is known to be a small count), or
* the cells withheld from one relation add up to a number in 1..k-1 that the relation reveals
  (the *differencing* rule: two withheld cells of 3 and 4 in a row whose total is published).

:func:`protect` is the suppression method: the cells 1..k-1 are withheld (primary suppression);
then, while some withheld cell is exposed, one more cell of a relation it belongs to is withheld
(complementary suppression), choosing a non-zero part before a total, the smallest count first — the classic singleton/differencing heuristic with an exact LP audit after every step (as
sdcTable's and tau-ARGUS's audits do).  It stops when the audit finds nothing; withholding every
cell of a relation always ends it.

Cells are identified by any hashable key; the module imports nothing from Regent.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Key = Hashable
#: Why a cell is not shown: a count 1..k-1, withheld to protect one, or never published at all.
Status = Literal["published", "small", "complementary", "unpublished"]
_EPS = 1e-6


@dataclass(frozen=True)
class Relation:
    """``total = sum(parts)``: a margin a reader can use."""

    total: Key
    parts: tuple[Key, ...]


@dataclass(frozen=True)
class Exposure:
    """A withheld cell (or a set of them) that a reader can recover or bound inside 1..k-1."""

    cells: tuple[Key, ...]
    lower: float
    upper: float
    why: Literal["determined", "small", "difference"]


@dataclass
class LinearTable:
    """Cells (true values) and the relations a reader of the published table knows."""

    values: dict[Key, int]
    relations: list[Relation] = field(default_factory=list)

    def add(self, key: Key, value: int) -> None:
        if key in self.values and self.values[key] != int(value):
            raise ValueError(f"cell {key!r} given two values")
        self.values[key] = int(value)

    def relate(self, total: Key, parts: Iterable[Key]) -> None:
        parts = tuple(parts)
        missing = [c for c in (total, *parts) if c not in self.values]
        if missing:
            raise ValueError(f"relation refers to unknown cells {missing!r}")
        if parts:
            self.relations.append(Relation(total, parts))


def bounds(
    table: LinearTable, hidden: Iterable[Key], *, known: Mapping[Key, float] | None = None
) -> dict[Key, tuple[float, float]]:
    """Exact LP bounds ``(lower, upper)`` of every hidden cell (``upper`` may be ``inf``).

    ``known`` are the published values (default: the table's values of every cell not hidden):
    a scanner passes what it read, the suppression passes the truth.
    """
    hidden = set(hidden)
    shown = {k: float(v) for k, v in table.values.items() if k not in hidden}
    if known is not None:
        shown.update({k: float(v) for k, v in known.items() if k not in hidden})
    out: dict[Key, tuple[float, float]] = {}
    for comp, rels in _components(table.relations, hidden):
        out.update(_solve(comp, rels, shown))
    for k in hidden:
        out.setdefault(k, (0.0, math.inf))
    return out


def _components(relations: Sequence[Relation], hidden: set[Key]) -> list[tuple[list[Key], list[Relation]]]:
    """Groups of hidden cells linked by relations (each solved as its own small LP)."""
    parent: dict[Key, Key] = {k: k for k in hidden}

    def find(x: Key) -> Key:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for r in relations:
        cells = [c for c in (r.total, *r.parts) if c in hidden]
        for c in cells[1:]:
            parent[find(c)] = find(cells[0])
    groups: dict[Key, list[Key]] = {}
    for k in sorted(hidden, key=repr):
        groups.setdefault(find(k), []).append(k)
    rels: dict[Key, list[Relation]] = {}
    for r in relations:
        cells = [c for c in (r.total, *r.parts) if c in hidden]
        if cells:
            rels.setdefault(find(cells[0]), []).append(r)
    return [(g, rels.get(root, [])) for root, g in groups.items()]


def _solve(
    cells: list[Key], rels: list[Relation], shown: Mapping[Key, float]
) -> dict[Key, tuple[float, float]]:
    from scipy.optimize import linprog  # on first use: the CLI and the server start without scipy

    if not rels:
        return {c: (0.0, math.inf) for c in cells}
    index = {c: i for i, c in enumerate(cells)}
    a = np.zeros((len(rels), len(cells)))
    b = np.zeros(len(rels))
    for i, r in enumerate(rels):
        for c, sign in ((r.total, 1.0), *((p, -1.0) for p in r.parts)):
            if c in index:
                a[i, index[c]] += sign
            else:
                b[i] -= sign * shown[c]
    out: dict[Key, tuple[float, float]] = {}
    for c, j in index.items():
        lim = []
        for sense in (1.0, -1.0):
            cost = np.zeros(len(cells))
            cost[j] = sense
            res = linprog(cost, A_eq=a, b_eq=b, bounds=(0, None), method="highs")
            if res.status == 3:  # unbounded
                lim.append(math.inf)
            elif res.status != 0:  # infeasible: published values disagree with the relations
                lim.append(math.nan)
            else:
                lim.append(sense * float(res.fun))
        out[c] = (lim[0], lim[1])
    return out


def exposures(
    table: LinearTable,
    hidden: Iterable[Key],
    *,
    min_cell: int,
    watch: Iterable[Key] | None = None,
    known: Mapping[Key, float] | None = None,
) -> list[Exposure]:
    """Every exposed withheld cell among ``watch`` (default: all hidden), and every relation whose
    withheld parts add up to a revealed 1..k-1 (its total published)."""
    hidden = set(hidden)
    return _Auditor(table, min_cell, known).exposures(hidden, hidden if watch is None else set(watch))


class _Auditor:
    """Exposures of a table, one LP component at a time, each component solved once."""

    def __init__(self, table: LinearTable, min_cell: int, known: Mapping[Key, float] | None = None) -> None:
        self.table = table
        self.min_cell = min_cell
        self.values = {k: float(v) for k, v in table.values.items()}
        self.values.update(known or {})
        self._cache: dict[frozenset[Key], dict[Key, tuple[float, float]]] = {}

    def exposures(self, hidden: set[Key], watch: set[Key], *, first: bool = False) -> list[Exposure]:
        """Exposed cells; ``first``: stop at the first relation or LP component that has one."""
        found = self._differences(hidden, watch)
        if found and first:
            return found
        for cells, rels in _components(self.table.relations, hidden):
            if not any(c in watch for c in cells):
                continue
            found += self._judge(self.solve(cells, rels), watch)
            if found and first:
                return found
        return found

    def solve(self, cells: list[Key], rels: list[Relation]) -> dict[Key, tuple[float, float]]:
        key = frozenset(cells)
        if key not in self._cache:
            self._cache[key] = _solve(cells, rels, self.values)
        return self._cache[key]

    def _judge(self, lims: Mapping[Key, tuple[float, float]], watch: set[Key]) -> list[Exposure]:
        found = []
        for c, (lo, hi) in lims.items():
            if c not in watch or math.isnan(lo) or math.isnan(hi):
                continue
            if hi - lo < 0.5:
                found.append(Exposure((c,), lo, hi, "determined"))
            elif lo >= 1 - _EPS and hi <= self.min_cell - 1 + _EPS:
                found.append(Exposure((c,), lo, hi, "small"))
        return found

    def _differences(self, hidden: set[Key], watch: set[Key]) -> list[Exposure]:
        found = []
        for r in self.table.relations:
            gone = [p for p in r.parts if p in hidden]
            if r.total in hidden or len(gone) < 2 or not any(p in watch for p in gone):
                continue
            rest = self.values[r.total] - sum(self.values[p] for p in r.parts if p not in hidden)
            if 0.5 <= rest <= self.min_cell - 1 + _EPS:
                found.append(Exposure(tuple(gone), rest, rest, "difference"))
        return found

    def still_exposed(self, exp: Exposure, hidden: set[Key], watch: set[Key]) -> bool:
        """Whether ``exp`` survives with ``hidden`` withheld (only its own component is solved)."""
        if exp.why == "difference":
            return exp in self._differences(hidden, watch)
        for cells, rels in _components(self.table.relations, hidden):
            if exp.cells[0] in cells:
                return exp.cells[0] in {e.cells[0] for e in self._judge(self.solve(cells, rels), watch)}
        return False


def protect(
    table: LinearTable,
    *,
    min_cell: int,
    primary: Iterable[Key] = (),
    unpublished: Iterable[Key] = (),
    fixed: Mapping[Key, Status] | None = None,
    unknown: Iterable[Key] = (),
) -> dict[Key, Status]:
    """Each cell's status after primary and optimal complementary suppression
    (:func:`toolkit.disclosure.suppress.suppress`, whose arguments these are)."""
    from toolkit.disclosure.suppress import suppress

    return suppress(
        table, min_cell=min_cell, primary=primary, unpublished=unpublished, fixed=fixed, unknown=unknown
    )


def protect_greedy(
    table: LinearTable,
    *,
    min_cell: int,
    primary: Iterable[Key] = (),
    unpublished: Iterable[Key] = (),
    fixed: Mapping[Key, Status] | None = None,
) -> dict[Key, Status]:
    """The singleton/differencing heuristic that :func:`protect` replaced: one complementary
    cell at a time, audited after each.  Kept as the baseline of ``bench/disclosure.py``; its
    patterns withhold more and can fail the marker-aware audit (:func:`labelled_exposures`).

    ``primary``: cells withheld whatever their value, besides every count 1..k-1 (e.g. a group
    that releases nothing).  ``unpublished``: cells a reader never sees but that relations
    involve (the persons with a missing group, the events a step removed); those that are 1..k-1
    are protected like shown ones.  ``fixed``: statuses decided elsewhere (the same partition in
    another table of the run); they change only if nothing else can protect a cell.
    """
    fixed = {k: v for k, v in (fixed or {}).items() if k in table.values}
    unpublished = set(unpublished) & set(table.values)
    primary = set(primary)
    status: dict[Key, Status] = {k: "published" for k in table.values}
    for k, v in table.values.items():
        if k in unpublished:
            status[k] = "unpublished"
        elif 0 < v < min_cell or k in primary:
            status[k] = "small"
    status.update(fixed)
    watch = {k for k, s in status.items() if s != "unpublished"} | {
        k for k in unpublished if 0 < table.values[k] < min_cell
    }
    auditor = _Auditor(table, min_cell)
    for _ in range(len(table.values) + 1):
        hidden = {k for k, s in status.items() if s != "published"}
        found = auditor.exposures(hidden, watch, first=True)
        if not found:
            return status
        # shown cells first: protecting them usually protects what is derived from them
        exp = min(found, key=lambda e: (any(status[c] == "unpublished" for c in e.cells), repr(e.cells)))
        choice = _complement(table, exp, status, set(fixed), auditor, hidden, watch)
        if choice is None:
            raise RuntimeError(f"cannot protect {exp.cells!r}: nothing left to withhold")
        status[choice] = "complementary"
        fixed.pop(choice, None)
    raise RuntimeError("complementary suppression did not converge")  # pragma: no cover


def _complement(
    table: LinearTable,
    exp: Exposure,
    status: Mapping[Key, Status],
    fixed: set[Key],
    auditor: _Auditor,
    hidden: set[Key],
    watch: set[Key],
) -> Key | None:
    """The next cell to withhold for one exposure: a cell of a relation of the exposed cells
    (non-zero parts before totals, the smallest count first; a decided-elsewhere cell only as a
    last resort), the first in that order that resolves the exposure."""
    near = [r for r in table.relations if any(c in exp.cells for c in (r.total, *r.parts))]
    far = [r for r in table.relations if r not in near]
    for rels, allow_fixed in ((near, False), (near, True), (far, True)):
        cands = {
            (c, c == r.total)
            for r in rels
            for c in (r.total, *r.parts)
            if status[c] == "published" and (allow_fixed or c not in fixed)
        }
        if not cands:
            continue

        def closes(c: Key) -> bool:
            """Whether ``c`` has another relation that already withholds a cell (a cell there
            closes a cycle of withheld cells, the rectangle of a two-way table)."""
            return any(
                c in (r.total, *r.parts) and r not in near and any(x in hidden for x in (r.total, *r.parts))
                for r in table.relations
            )

        def rank(ct: tuple[Key, bool]) -> tuple[bool, bool, bool, int, str]:
            c, is_total = ct
            v = table.values[c]
            return (v == 0, not closes(c), is_total, v, repr(c))

        # a zero whose relation adds up to a published 0 would be determined at once
        zero_totals = {
            r.total for r in table.relations if table.values[r.total] == 0 and r.total not in hidden
        }
        useless = {c for r in table.relations if r.total in zero_totals for c in r.parts}
        ordered = [c for c, _ in sorted(cands, key=rank) if c not in useless] or [
            c for c, _ in sorted(cands, key=rank)
        ]
        for c in ordered[:_TRIALS]:
            more, watched = hidden | {c}, watch | {c}
            if not auditor.still_exposed(exp, more, watched) and not auditor.still_exposed(
                Exposure((c,), 0, 0, "determined"), more, watched
            ):
                return c
        return ordered[0]
    return None


_TRIALS = 8  # complements tried per exposure before taking the first in rank order


def protect_partition(
    sizes: Mapping[Key, int],
    *,
    min_cell: int,
    primary: Iterable[Key] = (),
    unpublished: Iterable[Key] = (),
) -> dict[Key, Status]:
    """Statuses of the parts of one published total (group sizes, events per group).

    Deterministic in its inputs, so every table of a run that publishes the same partition (Table
    1's n row, the Kaplan-Meier groups, the log-rank groups) withholds the same cells.
    """
    total = ("__total__",)
    table = LinearTable({**{k: int(v) for k, v in sizes.items()}, total: int(sum(sizes.values()))})
    table.relate(total, list(sizes))
    status = protect(
        table, min_cell=min_cell, primary=primary, unpublished=unpublished, fixed={total: "published"}
    )
    status.pop(total)
    return status


def labelled_exposures(
    table: LinearTable,
    hidden: Iterable[Key],
    *,
    min_cell: int,
    labels: Mapping[Key, str | None],
    watch: Iterable[Key] | None = None,
    known: Mapping[Key, float] | None = None,
    big: float | None = None,
    values: bool = False,
    at_least: Mapping[Key, float] | None = None,
) -> list[Any]:
    """Withheld cells whose value a reader who also reads the markers can work out exactly
    (``values=True``: ``(cell, value)`` pairs).

    The reader knows the relations, every published value, that counts are whole numbers
    between 0 and ``big`` (default: the largest known value), that a cell labelled ``small``
    (shown ``<k``) is 1..k-1, one labelled ``complementary`` (shown ``withheld``) is 0 or at
    least k, one labelled ``large`` at least k and one labelled ``zero`` 0, and the lower
    limits ``at_least`` (a group a table lists has someone in it); each watched cell's least and greatest value under all of that (a small
    mixed-integer programme per component, HiGHS) are compared.
    """
    hidden = set(hidden)
    known_values = {k: float(v) for k, v in table.values.items()}
    known_values.update(known or {})
    top = big if big is not None else max([v for k, v in known_values.items() if k not in hidden] or [1.0])
    watch = hidden if watch is None else set(watch) & hidden
    found: list[Any] = []
    for cells, rels in _components(table.relations, hidden):
        mine = [c for c in cells if c in watch]
        if mine and rels:
            got = _labelled_component(cells, rels, known_values, labels, mine, min_cell, top, at_least or {})
            found += got if values else [c for c, _ in got]
    return found


def _labelled_component(
    cells: list[Key],
    rels: list[Relation],
    values: Mapping[Key, float],
    labels: Mapping[Key, str | None],
    watch: list[Key],
    k: int,
    top: float,
    at_least: Mapping[Key, float],
) -> list[tuple[Key, float]]:
    from scipy.optimize import Bounds, LinearConstraint, milp

    index = {c: i for i, c in enumerate(cells)}
    comp = [c for c in cells if labels.get(c) == "complementary"]
    n, nb = len(cells), len(comp)
    a = np.zeros((len(rels) + 2 * nb, n + nb))
    lo = np.zeros(len(rels) + 2 * nb)
    hi = np.zeros(len(rels) + 2 * nb)
    for i, r in enumerate(rels):
        for c, sign in ((r.total, 1.0), *((p, -1.0) for p in r.parts)):
            if c in index:
                a[i, index[c]] += sign
            else:
                lo[i] -= sign * values[c]
        hi[i] = lo[i]
    for j, c in enumerate(comp):  # 0 or >= k: y <= top * b and y >= k * b
        row = len(rels) + 2 * j
        a[row, index[c]], a[row, n + j] = 1.0, -top
        lo[row], hi[row] = -np.inf, 0.0
        a[row + 1, index[c]], a[row + 1, n + j] = 1.0, -float(k)
        lo[row + 1], hi[row + 1] = 0.0, np.inf
    lb = np.zeros(n + nb)
    ub = np.concatenate([np.full(n, top), np.ones(nb)])
    for c in cells:
        bound = {"small": (1.0, float(k - 1)), "large": (float(k), top), "zero": (0.0, 0.0)}.get(
            str(labels.get(c))
        )
        if bound is not None:
            lb[index[c]], ub[index[c]] = bound
        lb[index[c]] = max(lb[index[c]], float(at_least.get(c, 0.0)))
    cons = LinearConstraint(a, lo, hi)
    # solutions found so far: a cell that differs between two of them is not determined, so one
    # solution of a cycle of withheld cells answers for all of them
    pool: list[np.ndarray] = []
    out = []
    for c in watch:
        j = index[c]
        for sense in (1.0, -1.0):
            seen = [y[j] for y in pool]
            if seen and max(seen) - min(seen) >= 0.5:
                break
            cost = np.zeros(n + nb)
            cost[j] = -sense
            res = milp(cost, integrality=np.ones(n + nb), bounds=Bounds(lb, ub), constraints=[cons])
            if res.x is None:  # the published values contradict the markers: nothing to derive
                break
            pool.append(np.round(res.x))
        else:
            seen = [y[j] for y in pool]
            if seen and max(seen) - min(seen) < 0.5:
                out.append((c, float(seen[0])))
    return out
