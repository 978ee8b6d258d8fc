"""The counts a run publishes, named by what they count, protected together.

Tables of one run share margins: Table 1's n row is the Kaplan-Meier table's group sizes, the
subgroup table's n and the cumulative-incidence table's n; ``by: sex`` with ``age_band`` rows and
``by: age_band`` with ``sex`` rows are the same cross-tabulation.  Protecting each table on its own
lets one table print a cell that another withheld (or a margin that gives it back), so every
count a run publishes is one cell of one linear system, named by what it counts:

=======================================  ==========================================================
``("n",)``                               persons in the cohort
``("m", var, level)``                    persons with ``var == level`` (``(missing)``: no value)
``("x", (v1, l1), (v2, l2))``            persons with both (sorted pair; Table 1's inner cells)
``("e", c)`` / ``("e", c, var, level)``  persons whose follow-up ends with event code ``c``
                                         (0: censored), in all / in one group
``("ne", var, level)``                   persons without event 1 (only with competing events)
``("eb", tau, var, level)``              events (code 1) by ``tau`` (RMST); ``("ea", ...)`` after it
=======================================  ==========================================================

with the relations that hold between them whatever is published (a group is the sum of its
levels, of its event codes; a margin is the sum of its row).  Each analysis declares what it
shows (:class:`Crosstab`, :class:`Partition`); a cell no analysis shows is *unpublished* (a
reader can only derive it) and is protected when it is 1..k-1.  :func:`protect_run` withholds
cells by :func:`toolkit.disclosure.suppress.suppress`; every table then reads its statuses from
the result (:class:`Decisions`), so a cell is withheld in every table or in none.  A table may
withhold more than the decision (a group whose curve is not released), never less.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from toolkit.disclosure.audit import Key, LinearTable, Status

MISSING = "(missing)"
PRESENT = "(present)"  # a numeric variable's count of values (never shown; its summary needs k)


@dataclass(frozen=True)
class Crosstab:
    """Table 1's counts of ``var`` (levels and missing; numeric: missing only) by ``by``.

    As a Table 1 shows them by default; a federated site's reply shows them differently:
    ``margins=False`` (no Overall column), ``all_groups`` (persons with no ``by`` are a column of
    their own) and ``values`` (a numeric variable's count of values per group, its histogram)."""

    var: str
    by: str | None = None
    numeric: bool = False
    margins: bool = True
    all_groups: bool = False
    values: bool = False


@dataclass(frozen=True)
class Partition:
    """Persons and events per level of ``by`` (survival tables, subgroup tables).

    ``causes``: event codes whose counts per level are shown; ``taus``: times by which the events
    (code 1) per level are shown (RMST); ``with_missing``: persons with no level are a group of
    their own (a subgroup table's ``(missing)`` row)."""

    by: str
    causes: tuple[int, ...] = (1,)
    taus: tuple[float, ...] = ()
    with_missing: bool = False


Tabulation = Crosstab | Partition


def x_key(a: tuple[str, str], b: tuple[str, str]) -> Key:
    """The cross-tabulation cell of two (variable, level) pairs, the same in either order."""
    return ("x", *sorted([a, b]))


@dataclass
class RunCells:
    """The cells of a run (true values), its relations, and which cells some table shows."""

    table: LinearTable = field(default_factory=lambda: LinearTable({}))
    shown: dict[Key, int] = field(default_factory=dict)  # cell -> how many tabulations show it
    marked: dict[Key, str] = field(default_factory=dict)  # never shown, its size class revealed
    #: cells a table reveals without printing them: a subgroup table lists no ``(missing)`` row
    #: when nobody lacks a level, so that count is known to be 0
    revealed: set[Key] = field(default_factory=set)
    unknown: set[Key] = field(default_factory=set)  # values the caller does not know (federated)
    _rels: set[tuple[Key, tuple[Key, ...]]] = field(default_factory=set)

    def cell(self, key: Key, value: int | None, *, shown: bool) -> Key:
        """Add (or meet again) a cell; ``value`` None: not known to the caller."""
        if value is None:
            if key not in self.table.values:
                self.table.values[key] = 0
                self.unknown.add(key)
        elif key in self.unknown:
            self.table.values[key] = int(value)
            self.unknown.discard(key)
        else:
            self.table.add(key, int(value))
        if shown:
            self.shown[key] = self.shown.get(key, 0) + 1
        return key

    def mark(self, key: Key) -> None:
        """A never-shown count whose size class a table reveals (a numeric summary per group:
        ``–`` for none, ``<k``, or a mean of at least k values; :func:`protect_run` knows k)."""
        self.marked[key] = "revealed"

    def relate(self, total: Key, parts: list[Key]) -> None:
        sig = (total, tuple(sorted(parts, key=repr)))
        if len(parts) > 0 and sig not in self._rels:
            self._rels.add(sig)
            self.table.relate(total, list(sig[1]))


def _levels(s: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Each person's level as text (``(missing)`` for none) and the levels, missing last."""
    text = np.where(s.isna().to_numpy(), MISSING, s.astype(str).to_numpy(dtype=object)).astype(str)
    levels = [*sorted({str(v) for v in text} - {MISSING}), MISSING]
    return text, levels


def run_cells(frame: pd.DataFrame, tabulations: Iterable[Tabulation], *, event: str = "event") -> RunCells:
    """Every cell the tabulations involve, computed from the cohort frame, with its relations."""
    cells = RunCells()
    cells.cell(("n",), len(frame), shown=True)
    for t in dict.fromkeys(tabulations):
        if isinstance(t, Crosstab):
            _crosstab(cells, frame, t)
        else:
            _partition(cells, frame, t, event)
    return cells


def _margin(
    cells: RunCells, frame: pd.DataFrame, var: str, *, shown: bool, missing: bool = False
) -> tuple[np.ndarray, list[str]]:
    text, levels = _levels(frame[var])
    keys = []
    for lv in levels:
        k = ("m", var, lv)
        keys.append(cells.cell(k, int((text == lv).sum()), shown=shown and (missing or lv != MISSING)))
    cells.relate(("n",), keys)
    return text, levels


def _crosstab(cells: RunCells, frame: pd.DataFrame, t: Crosstab) -> None:
    if t.numeric:
        vtext = np.where(frame[t.var].notna().to_numpy(), PRESENT, MISSING).astype(str)
        vlevels = [PRESENT, MISSING]
    else:
        vtext, vlevels = _levels(frame[t.var])
    if t.by is None:
        btext, blevels = np.full(len(frame), ALL), [ALL]
    else:
        btext, blevels = _levels(frame[t.by])
    counts = {(lv, b): int(((vtext == lv) & (btext == b)).sum()) for lv in vlevels for b in blevels}
    add_crosstab(cells, t, counts, {b: int((btext == b).sum()) for b in blevels})


ALL = "(all)"  # the one column of a Table 1 without groups


def add_crosstab(
    cells: RunCells,
    t: Crosstab,
    counts: Mapping[tuple[str, str], int | None],
    sizes: Mapping[str, int | None],
) -> None:
    """A cross-tabulation's cells from its counts ``(level, group) -> n`` and group sizes (``None``:
    not known, e.g. a pooled count a site withheld; group ``(all)`` when there is no ``by``), with
    the relations between them and the cohort's size."""
    vlevels = list(dict.fromkeys(lv for lv, _ in counts))
    blevels = list(sizes)

    cell = cells.cell

    def total(parts: list[int | None]) -> int | None:
        return None if any(p is None for p in parts) else int(sum(p for p in parts if p is not None))

    margins = t.by is None or t.margins
    for lv in vlevels:
        shown = margins and (lv != PRESENT or t.values)
        k = cell(("m", t.var, lv), total([counts[(lv, b)] for b in blevels]), shown=shown)
        if lv == PRESENT and not t.values:
            cells.mark(k)
    cells.relate(("n",), [("m", t.var, lv) for lv in vlevels])
    if t.by is None:
        return
    for b in blevels:
        cell(("m", t.by, b), sizes[b], shown=b != MISSING or t.all_groups)
    cells.relate(("n",), [("m", t.by, b) for b in blevels])
    for b in blevels:
        row = []
        for lv in vlevels:
            shown = (b != MISSING or t.all_groups) and (lv != PRESENT or t.values)
            k = cell(x_key((t.var, lv), (t.by, b)), counts[(lv, b)], shown=shown)
            row.append(k)
            if lv == PRESENT and b != MISSING and not t.values:
                cells.mark(k)
        cells.relate(("m", t.by, b), row)
    for lv in vlevels:
        cells.relate(("m", t.var, lv), [x_key((t.var, lv), (t.by, b)) for b in blevels])


def _partition(cells: RunCells, frame: pd.DataFrame, t: Partition, event: str) -> None:
    text, levels = _margin(cells, frame, t.by, shown=True, missing=t.with_missing)
    if t.with_missing and cells.table.values[("m", t.by, MISSING)] == 0:
        cells.revealed.add(("m", t.by, MISSING))
    ev = frame[event].astype(int).to_numpy()
    codes = sorted({0, 1, *ev.tolist(), *t.causes})
    for c in codes:
        total = cells.cell(("e", c), int((ev == c).sum()), shown=c == 1)
        parts = [
            cells.cell(("e", c, t.by, lv), int(((ev == c) & (text == lv)).sum()),
                       shown=c in t.causes and (t.with_missing or lv != MISSING))
            for lv in levels
        ]  # fmt: skip
        cells.relate(total, parts)
    cells.relate(("n",), [("e", c) for c in codes])
    competing = [c for c in codes if c >= 2]
    for lv in levels:
        group = ("m", t.by, lv)
        cells.relate(group, [("e", c, t.by, lv) for c in codes])
        if competing:
            ne = cells.cell(("ne", t.by, lv), int(((ev != 1) & (text == lv)).sum()), shown=False)
            cells.relate(group, [("e", 1, t.by, lv), ne])
            cells.relate(ne, [("e", c, t.by, lv) for c in codes if c != 1])
    time = frame["time"].to_numpy(float) if t.taus else None
    for tau in t.taus:
        assert time is not None
        by_tau = (ev == 1) & (time <= tau)
        tot_b = cells.cell(("eb", tau), int(by_tau.sum()), shown=False)
        tot_a = cells.cell(("ea", tau), int(((ev == 1) & ~by_tau).sum()), shown=False)
        cells.relate(("e", 1), [tot_b, tot_a])
        bs, as_ = [], []
        for lv in levels:
            sel = text == lv
            b = cells.cell(("eb", tau, t.by, lv), int((by_tau & sel).sum()), shown=lv != MISSING)
            a = cells.cell(("ea", tau, t.by, lv), int((~by_tau & (ev == 1) & sel).sum()), shown=False)
            cells.relate(("e", 1, t.by, lv), [b, a])
            bs.append(b)
            as_.append(a)
        cells.relate(tot_b, bs)
        cells.relate(tot_a, as_)


@dataclass(frozen=True)
class Decisions:
    """The statuses of a run's cells and the values they were decided for."""

    values: Mapping[Key, int]
    status: Mapping[Key, Status]

    def applies(self, values: Mapping[Key, int]) -> bool:
        """Whether these decisions are about exactly these counts (same persons, same cells)."""
        return all(self.values.get(k) == v for k, v in values.items())

    def withheld(self, key: Key) -> bool:
        return self.status.get(key, "published") != "published"

    def fingerprint(self, about: Iterable[str] | None = None) -> str:
        """A short hash of the statuses (of the cells that name one of ``about``), for cache keys."""
        names = None if about is None else set(about)
        items = sorted((repr(k), s) for k, s in self.status.items() if names is None or _names(k) & names)
        return hashlib.sha256(repr(items).encode()).hexdigest()[:16]


def _names(key: Hashable) -> set[str]:
    if not isinstance(key, tuple):
        return set()
    out = set()
    for part in key:
        if isinstance(part, tuple) and part:
            out.add(str(part[0]))
        elif isinstance(part, str):
            out.add(part)
    return out


def resolve_unknown(cells: RunCells) -> None:
    """Fill in the unknown cells that the known ones determine (a pooled count whose every other
    part is known): what the caller can work out, it knows."""
    from toolkit.disclosure.audit import bounds

    if not cells.unknown:
        return
    known = {k: float(v) for k, v in cells.table.values.items() if k not in cells.unknown}
    for key, (lo, hi) in bounds(cells.table, cells.unknown, known=known).items():
        if hi - lo < 0.5 and not np.isnan(lo):
            cells.table.values[key] = round(lo)
            cells.unknown.discard(key)


def protect_run(cells: RunCells, *, min_cell: int) -> Decisions:
    """Primary and optimal complementary suppression of every cell of a run at once.

    The cohort's size is published (a cohort below k stops the run before); the cohort's events
    are one more cell (withheld when their complement, the persons without an event, would give
    a small count away; :meth:`DisclosurePolicy.cohort_events`).  Cells no table shows are
    unpublished: protected when 1..k-1,
    never counted as a loss.
    """
    from toolkit.disclosure.suppress import suppress

    values = cells.table.values
    unpublished = {k for k in values if k not in cells.shown}
    marked = {
        k: "zero" if values[k] == 0 else "small" if values[k] < min_cell else "large"
        for k in cells.marked
        if k not in cells.unknown
    }
    fixed: dict[Key, Status] = {("n",): "published", **dict.fromkeys(cells.revealed, "published")}
    weights = {k: float(c) for k, c in cells.shown.items()}
    if ("e", 1) in values:  # the cohort's events: also in the cohort summary, the attrition, the CLI
        weights[("e", 1)] = weights.get(("e", 1), 0.0) + 4.0
    # a level a table lists has someone in it: the reader knows its size is at least 1
    listed: dict[Key, int] = {
        k: 1
        for k in cells.shown
        if isinstance(k, tuple)
        and k[0] == "m"
        and k[2] not in (MISSING, PRESENT, ALL)
        and (values[k] >= 1 or k in cells.unknown)
    }
    status = suppress(
        cells.table,
        min_cell=min_cell,
        unknown=cells.unknown,
        unpublished=unpublished - cells.revealed - cells.unknown,
        fixed=fixed,
        marked=marked,
        weights=weights,
        at_least=listed,
    )
    return Decisions(dict(values), status)
