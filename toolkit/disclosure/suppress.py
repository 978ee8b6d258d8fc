"""Optimal complementary cell suppression: a mixed-integer model solved with scipy's HiGHS.

The cell suppression problem (Kelly, Golden & Assad 1992; Fischetti & Salazar-González 2001,
the "optimal" method of tau-ARGUS and the ``OPT`` method of sdcTable): choose the cells to
withhold, at least cost, so that a reader who knows every published cell, every relation
``total = part_1 + ... + part_m``, that counts are non-negative and that no count exceeds the
largest count of the system (the cohort's size) cannot

* determine any withheld cell, nor bound a count 1..k-1 inside 1..k-1 (its feasible range must
  reach 0 or k: the *protection* of a sensitive cell), and
* learn that the withheld parts of one published total add up to 1..k-1 (the differencing rule).

Formulation.  One binary ``x_j`` per cell (1 = withheld); primary cells (1..k-1, or declared),
never-published cells and cells a site already withheld are fixed at 1.  The reader's best
bound on a cell is a linear programme whose feasible set depends on ``x``; by LP duality every
dual solution of it gives a linear inequality in ``x`` that every protecting pattern satisfies
(a Benders cut, Fischetti & Salazar-González's *capacity constraint*).  The master problem
minimises the information lost (the number of withheld cells, then their total value) subject to
the cuts found so far and to the singleton rule (no relation with exactly one withheld cell);
each solution is audited exactly and every unmet protection adds its cut, until the audit finds
nothing.  A protection that either reaching 0 or reaching k satisfies is a disjunction, one
binary per cell choosing the side.  Last, the pattern is audited as the published markers read
(``<k`` is 1..k-1, ``withheld`` is 0 or at least k) with integer counts (:mod:`.audit`); a
pattern that fails that audit is cut off and the search continues.

Only cells named by keys and the relations between them enter; the module imports nothing from
Regent but :mod:`.audit`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import coo_matrix

from toolkit.disclosure.audit import Key, LinearTable, Status, labelled_exposures

_TOL = 1e-6
#: seconds HiGHS may spend on one master problem; past it the best pattern found so far is used
#: (still audited, so it protects; it may withhold more than the optimum)
MASTER_TIME_LIMIT = 20.0


class SuppressionError(RuntimeError):
    """No pattern protects every cell (only when declared-published cells leave no room)."""


@dataclass(frozen=True)
class _Need:
    """A protection: the reader's maximum of the cell must reach ``up`` or its minimum ``lo``
    (``lo`` None: only ``up``); ``conditional``: only when the cell itself is withheld."""

    cell: int
    up: float
    lo: float | None
    conditional: bool
    big_up: float
    big_lo: float


@dataclass
class _Master:
    """The master problem's rows, grown by cuts (over the variables x (cells) then d (sides))."""

    n: int
    rows: list[dict[int, float]] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)

    def add(self, coefs: Mapping[int, float], lower: float) -> None:
        row = {j: float(c) for j, c in coefs.items() if abs(c) > 1e-9}
        self.rows.append(row)
        self.lower.append(float(lower))

    def matrix(self) -> LinearConstraint | None:
        if not self.rows:
            return None
        r, c, v = [], [], []
        for i, row in enumerate(self.rows):
            for j, x in row.items():
                r.append(i)
                c.append(j)
                v.append(x)
        a = coo_matrix((v, (r, c)), shape=(len(self.rows), self.n)).tocsr()
        return LinearConstraint(a, np.array(self.lower), np.full(len(self.rows), np.inf))


class _Problem:
    def __init__(
        self,
        table: LinearTable,
        *,
        min_cell: int,
        primary: set[Key],
        unpublished: set[Key],
        unknown: set[Key],
        fixed: Mapping[Key, Status],
        marked: Mapping[Key, str],
        at_least: Mapping[Key, int],
    ) -> None:
        self.k = min_cell
        self.at_least = dict(at_least)
        self.marked = {c: m for c, m in marked.items() if c in unpublished}
        self.keys: list[Key] = sorted(table.values, key=repr)
        self.index = {c: i for i, c in enumerate(self.keys)}
        n = len(self.keys)
        self.unknown = np.array([c in unknown for c in self.keys])
        self.a = np.array([0.0 if c in unknown else float(table.values[c]) for c in self.keys])
        self.unpublished = np.array([c in unpublished for c in self.keys])
        known = self.a[~self.unknown]
        self.big = float(max(known.max() if len(known) else 1.0, 1.0))  # no count exceeds it
        self.rels = [
            (self.index[r.total], tuple(self.index[p] for p in r.parts))
            for r in sorted(table.relations, key=lambda r: repr((r.total, r.parts)))
        ]
        small = (self.a >= 1) & (self.a <= min_cell - 1) & ~self.unknown
        self.status: list[Status] = ["published"] * n
        self.lb = np.zeros(n)
        self.ub = np.ones(n)
        for i, c in enumerate(self.keys):
            if self.unpublished[i]:
                self.status[i] = "unpublished"
            elif self.unknown[i]:
                self.status[i] = "complementary"
            elif small[i] or c in primary:
                self.status[i] = "small"
            if c in fixed and not self.unpublished[i] and not self.unknown[i]:
                self.status[i] = fixed[c]
            if self.status[i] != "published":
                self.lb[i] = 1.0
            elif c in fixed:
                self.ub[i] = 0.0
            if self.marked.get(c) == "zero":  # shown as a dash: the reader knows it is 0
                self.lb[i] = self.ub[i] = 0.0
        # the least value a withheld cell can take as the reader sees it (a numeric variable's
        # count of values is at least k where its summary is shown)
        self.floor = np.array([float(min_cell) if self.marked.get(c) == "large" else 0.0 for c in self.keys])
        self.fixed_shown = {i for i in range(n) if self.ub[i] == 0}
        #: cells the markers and the cells that must be published give away whatever is withheld
        #: (two parts of a published total, both <k, adding up to 2k-2): the pattern still meets
        #: the margins-only rules for them, and the scanner reports them
        self.unprotectable: set[Key] = set()
        self.needs = self._needs(small)

    def _needs(self, small: np.ndarray) -> list[_Need]:
        k, big = float(self.k), self.big
        needs = []
        for i in range(len(self.keys)):
            a = self.a[i]
            if self.unknown[i]:
                needs.append(_Need(i, k, 0.0, False, k + 1, big + 1))
            elif small[i]:
                needs.append(_Need(i, k, 0.0, False, k - a + 1, a + 1))
            elif self.unpublished[i]:
                continue
            else:  # withheld (declared, or as a complement): its value must not be determined
                lo = a - 1 if a >= 1 else None
                needs.append(_Need(i, a + 1, lo, self.lb[i] == 0, 2.0, 2.0))
        return needs

    # --- the reader's linear programme and its dual ----------------------------------------
    def components(self, hidden: np.ndarray) -> dict[int, tuple[list[int], list[int]]]:
        """Per hidden cell: the hidden cells linked to it and the relations that link them."""
        parent: dict[int, int] = {int(i): int(i) for i in np.nonzero(hidden)[0]}

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for t, parts in self.rels:
            cells = [c for c in (t, *parts) if hidden[c]]
            for c in cells[1:]:
                parent[find(c)] = find(cells[0])
        groups: dict[int, list[int]] = {}
        for i in parent:
            groups.setdefault(find(i), []).append(i)
        rels: dict[int, list[int]] = {}
        for r, (t, parts) in enumerate(self.rels):
            cells = [c for c in (t, *parts) if hidden[c]]
            if cells:
                rels.setdefault(find(cells[0]), []).append(r)
        out = {}
        for root, cells in groups.items():
            for c in cells:
                out[c] = (cells, rels.get(root, []))
        return out

    def lp(self, hidden: np.ndarray, comp: tuple[list[int], list[int]]) -> _ComponentLP:
        return _ComponentLP(self, hidden, comp)


class _ComponentLP:
    """The reader's linear programme over one component of withheld cells (the relations that
    hold them, the published cells in those relations fixed at their values)."""

    def __init__(self, p: _Problem, hidden: np.ndarray, comp: tuple[list[int], list[int]]) -> None:
        self.p = p
        _, rel_ids = comp
        self.cells = sorted({c for r in rel_ids for c in (p.rels[r][0], *p.rels[r][1])} | set(comp[0]))
        self.pos = {c: i for i, c in enumerate(self.cells)}
        m, v = len(rel_ids), len(self.cells)
        self.m = np.zeros((m, v))  # relation r: y_total - sum(y_parts) = 0
        for ri, r in enumerate(rel_ids):
            t, parts = p.rels[r]
            self.m[ri, self.pos[t]] += 1.0
            for q in parts:
                self.m[ri, self.pos[q]] -= 1.0
        self.lo = np.array([p.floor[c] if hidden[c] else p.a[c] for c in self.cells])
        self.hi = np.array([p.big if hidden[c] else p.a[c] for c in self.cells])
        self.pool: list[np.ndarray] = []

    def reach(self, cell: int, sign: float) -> float:
        """The reader's max of ``sign * y_cell``, from the pool of solutions or a new one."""
        j = self.pos[cell]
        known = [sign * y[j] for y in self.pool]
        if not self.m.shape[0]:
            return self.hi[j] if sign > 0 else -self.lo[j]
        cost = np.zeros(len(self.cells))
        cost[j] = -sign
        res = linprog(
            cost,
            A_eq=self.m,
            b_eq=np.zeros(self.m.shape[0]),
            bounds=list(zip(self.lo, self.hi, strict=True)),
            method="highs",
        )
        if res.status != 0:  # pragma: no cover - the true values are a solution
            raise SuppressionError(f"the audit's problem failed: {res.message}")
        self.pool.append(res.x)
        return max([*known, sign * float(res.x[j])])

    def pooled(self, cell: int, sign: float) -> float:
        j = self.pos[cell]
        return max((sign * y[j] for y in self.pool), default=-math.inf)

    def cut(self, cell: int, sign: float) -> tuple[dict[int, float], float]:
        """The cut ``sum coef_j x_j + const >= target`` from the optimal dual of max sign*y_cell."""
        p = self.p
        r, v = self.m.shape
        rhs = np.zeros(v)
        rhs[self.pos[cell]] = sign
        # dual variables: alpha (free, r), beta (>= 0, v), gamma (>= 0, v)
        cost = np.concatenate([np.zeros(r), self.hi, -self.lo])
        a_eq = np.hstack([self.m.T, np.eye(v), -np.eye(v)])
        bounds = [(None, None)] * r + [(0, None)] * (2 * v)
        res = linprog(cost, A_eq=a_eq, b_eq=rhs, bounds=bounds, method="highs")
        if res.status != 0:  # pragma: no cover - the reader's problem is feasible and bounded
            raise SuppressionError(f"the audit's dual problem failed: {res.message}")
        beta, gamma = res.x[r : r + v], res.x[r + v :]
        coef: dict[int, float] = {}
        const = 0.0
        for c, i in self.pos.items():
            b, g = beta[i], gamma[i]
            if p.unknown[c]:
                const += b * p.big
                continue
            const += (b - g) * p.a[c]
            coef[c] = b * (p.big - p.a[c]) + g * (p.a[c] - p.floor[c])
        return coef, const


def suppress(
    table: LinearTable,
    *,
    min_cell: int,
    primary: Iterable[Key] = (),
    unpublished: Iterable[Key] = (),
    unknown: Iterable[Key] = (),
    fixed: Mapping[Key, Status] | None = None,
    marked: Mapping[Key, str] | None = None,
    weights: Mapping[Key, float] | None = None,
    at_least: Mapping[Key, int] | None = None,
    time_limit: float = MASTER_TIME_LIMIT,
) -> dict[Key, Status]:
    """Each cell's status after primary and optimal complementary suppression.

    ``primary``: withheld whatever the value (besides every count 1..k-1).  ``unpublished``:
    cells a reader never sees that relations involve (persons with no group, the persons a
    step removed); those 1..k-1 are protected like shown ones.  ``unknown``: cells whose value
    the caller does not know (a site withheld part of a pooled count); withheld, and protected
    as if they could be small.  ``fixed``: statuses that must hold (the cohort's size is
    published).  When fixed published cells leave no protecting pattern they are released
    from that promise one by one, largest first.  ``marked``: unpublished cells whose size class
    a table reveals (``zero``, ``small``, ``large``: a numeric summary reads ``–``, ``<k`` or a
    mean), which the reader uses.  ``weights``: the loss of withholding a cell (default 1); the
    method minimises the total loss, ties going to the pattern of least total value.
    ``at_least``: lower limits the reader knows besides the markers (a listed group has someone
    in it), used by the marker-aware audit.

    Example: a group of 38 with levels 34 and 4 and a group of 62 with 36 and 26 (sizes and
    level totals published) withholds the four cells of the rectangle, and nothing else.
    """
    fixed = dict(fixed or {})
    args = {
        "min_cell": min_cell,
        "primary": set(primary),
        "unpublished": set(unpublished) & set(table.values),
        "unknown": set(unknown) & set(table.values),
        "marked": dict(marked or {}),
        "at_least": dict(at_least or {}),
    }
    while True:
        prob = _Problem(table, fixed=fixed, **args)  # type: ignore[arg-type]
        try:
            return _solve(prob, time_limit, weights or {})
        except SuppressionError:
            shown = [c for c, s in fixed.items() if s == "published" and c in table.values]
            if not shown:
                raise
            fixed.pop(max(shown, key=lambda c: (table.values[c], repr(c))))


def _solve(p: _Problem, time_limit: float, weights: Mapping[Key, float]) -> dict[Key, Status]:
    n = len(p.keys)
    needs = p.needs
    nd = len(needs)
    side = {need.cell: n + j for j, need in enumerate(needs)}  # d = 1: the upper side
    master = _Master(n + nd)
    needy = {need.cell for need in needs}
    for t, parts in p.rels:  # the singleton rule: a withheld cell never alone in a relation
        cells = (t, *parts)
        for i in cells:
            if i in needy and len(cells) > 1:
                master.add({**{j: 1.0 for j in cells if j != i}, i: -1.0}, 0.0)
    total = float(p.a[~p.unknown].sum()) + 1.0
    # loss first, then total value, then a fixed order of the cells' names: the same table gets
    # the same pattern whatever else the system holds
    tie = np.array([_rank(c) for c in p.keys]) / (4 * total * (n + 1))
    weight = np.array([weights.get(c, 1.0) + p.a[i] / (2 * total) for i, c in enumerate(p.keys)]) + tie
    cost = np.concatenate([np.where(p.lb == 1, 0.0, weight), np.zeros(nd)])
    lb = np.concatenate([p.lb, np.zeros(nd)])
    ub = np.concatenate([p.ub, np.ones(nd)])
    for j, need in enumerate(needs):
        if need.lo is None:
            lb[n + j] = 1.0  # only the upper side can protect it
    seen: set[tuple[int, ...]] = set()
    for _ in range(10_000):
        x, d = _master(master, cost, lb, ub, n, time_limit)
        hidden = x > 0.5
        added = _cuts(p, needs, side, hidden, d, master)
        added += _differences(p, hidden, master)
        if added:
            continue
        pattern = tuple(int(i) for i in np.nonzero(hidden)[0])
        if pattern in seen:  # pragma: no cover - a cut always removes the pattern it came from
            raise SuppressionError("the suppression search revisited a pattern")
        seen.add(pattern)
        if _labelled_ok(p, hidden, master):
            return {c: ("complementary" if hidden[i] and p.status[i] == "published" else p.status[i])
                    for i, c in enumerate(p.keys)}  # fmt: skip
    raise SuppressionError("the suppression search did not converge")  # pragma: no cover


def _master(
    master: _Master, cost: np.ndarray, lb: np.ndarray, ub: np.ndarray, n: int, time_limit: float
) -> tuple[np.ndarray, np.ndarray]:
    cons = master.matrix()
    res = milp(
        cost,
        integrality=np.ones(len(cost)),
        bounds=Bounds(lb, ub),
        constraints=[cons] if cons is not None else [],
        options={"time_limit": time_limit, "disp": False, "mip_rel_gap": 1e-9},
    )
    if res.x is None:
        raise SuppressionError("no suppression pattern protects every cell")
    x = np.round(res.x)
    return x[:n], x[n:]


def _cuts(
    p: _Problem, needs: list[_Need], side: dict[int, int], hidden: np.ndarray, d: np.ndarray, master: _Master
) -> int:
    """Audit every protection under the pattern; add the cuts of each one that fails."""
    comps = p.components(hidden)
    lps: dict[int, _ComponentLP] = {}
    added = 0
    for need in needs:
        i = need.cell
        if not hidden[i]:
            continue
        cells = comps[i][0]
        lp = lps.get(min(cells))
        if lp is None:
            lp = lps[min(cells)] = p.lp(hidden, comps[i])
        if _met(lp, need):
            continue
        di = side[i]
        cu, ku = lp.cut(i, 1.0)
        # upper side (d = 1): sum cu x + ku >= up; relaxed by big-M when d = 0 or (conditional) x_i = 0
        row = dict(cu)
        row[di] = row.get(di, 0.0) - need.big_up
        rhs = need.up - ku - need.big_up
        if need.conditional:
            row[i] = row.get(i, 0.0) - need.big_up
            rhs -= need.big_up
        master.add(row, rhs)
        added += 1
        if need.lo is not None:
            cl, kl = lp.cut(i, -1.0)
            row = dict(cl)
            row[di] = row.get(di, 0.0) + need.big_lo
            rhs = -need.lo - kl
            if need.conditional:
                row[i] = row.get(i, 0.0) - need.big_lo
                rhs -= need.big_lo
            master.add(row, rhs)
            added += 1
    return added


def _met(lp: _ComponentLP, need: _Need) -> bool:
    """Whether the reader's range of the cell reaches ``up`` (or goes down to ``lo``): solutions
    already found are tried first, so one solution of a cycle of cells serves all of them."""
    i = need.cell
    if lp.pooled(i, 1.0) >= need.up - _TOL:
        return True
    if need.lo is not None and -lp.pooled(i, -1.0) <= need.lo + _TOL:
        return True
    if lp.reach(i, 1.0) >= need.up - _TOL:
        return True
    return need.lo is not None and -lp.reach(i, -1.0) <= need.lo + _TOL


def _differences(p: _Problem, hidden: np.ndarray, master: _Master) -> int:
    """A published total whose withheld parts add up to 1..k-1: withhold one more cell there."""
    added = 0
    for t, parts in p.rels:
        gone = [j for j in parts if hidden[j]]
        if hidden[t] or len(gone) < 2 or any(p.unknown[j] for j in (t, *parts) if not hidden[j]):
            continue
        rest = p.a[t] - sum(p.a[j] for j in parts if not hidden[j])
        if 0.5 <= rest <= p.k - 1 + _TOL:
            row = {j: 1.0 for j in (t, *parts) if not hidden[j]}
            free = [j for j in gone if p.lb[j] == 0]
            for j in free:
                row[j] = row.get(j, 0.0) - 1.0
            master.add(row, 1.0 - len(free))
            added += 1
    return added


def _labelled_ok(p: _Problem, hidden: np.ndarray, master: _Master) -> bool:
    """The pattern as the markers read it (<k: 1..k-1; withheld: 0 or >= k), counts whole:
    no withheld cell determined.  A failing component is cut off (one more cell next to it)."""
    table = LinearTable({c: round(p.a[i]) for i, c in enumerate(p.keys)})
    for t, parts in p.rels:
        table.relate(p.keys[t], [p.keys[j] for j in parts])
    labels: dict[Key, str | None] = {}
    for i in np.nonzero(hidden)[0]:
        c = p.keys[i]
        if p.unknown[i]:
            continue
        if p.unpublished[i]:
            labels[c] = p.marked.get(c)
        else:
            labels[c] = "small" if p.status[i] == "small" else "complementary"
    hid = {p.keys[i] for i in np.nonzero(hidden)[0]}
    watch = {
        c
        for c in hid
        if not p.unknown[p.index[c]]
        and (not p.unpublished[p.index[c]] or 1 <= table.values[c] < p.k)
        and c not in p.unprotectable
    }
    found = labelled_exposures(
        table, hid, min_cell=p.k, labels=labels, watch=watch, big=p.big, at_least=p.at_least
    )
    if not found:
        return True
    comps = p.components(hidden)
    cut = False
    for c in found:
        ci = int(p.index[c])
        _, rel_ids = comps[ci]
        near = {j for r in rel_ids for j in (p.rels[r][0], *p.rels[r][1]) if not hidden[j]}
        near -= p.fixed_shown
        if not near:  # the markers and the published totals alone give it away (see docs/privacy.md)
            p.unprotectable.add(c)
            continue
        row = {j: 1.0 for j in near}
        if p.lb[ci] == 0:  # a complement: only while it is withheld
            row[ci] = -1.0
        master.add(row, 1.0 if p.lb[ci] == 1 else 0.0)
        cut = True
    return not cut


def _rank(key: Key) -> float:
    """A number in [0, 1) fixed by the cell's name (not by the other cells of the system)."""
    return int(hashlib.sha256(repr(key).encode()).hexdigest()[:8], 16) / 16**8


def information_loss(table: LinearTable, status: Mapping[Key, Status]) -> tuple[int, int]:
    """(cells withheld beyond the primary ones, their total value): what the method minimises."""
    comp = [c for c, s in status.items() if s == "complementary"]
    return len(comp), int(sum(table.values[c] for c in comp if not math.isnan(table.values[c])))
