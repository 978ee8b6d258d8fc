"""What a reader can *derive* from published tables: the scanner's second half.

All the counts of a results.json are one linear system, the cells named by what they count as
the run named them when it protected them (:mod:`.joint`): the cohort's size and events, persons
per level of a variable (Table 1's Overall column and n row, the survival tables' and the subgroup
tables' group sizes), Table 1's cross-tabulations (``by: sex`` with ``age_band`` rows is the
same cells as ``by: age_band`` with ``sex`` rows), events per group and cause, events by tau,
with the relations that hold whatever is published.  A table whose counts disagree with the
shared cells (another population) gets cells of its own.  The scanner then asks, for each
withheld cell:

* margins only (exact LP bounds, :func:`toolkit.disclosure.audit.exposures`): is it determined,
  or bounded inside 1..k-1?  Do the withheld parts of a published total add up to 1..k-1?
* as the markers read (``<k`` is 1..k-1, ``withheld`` 0 or at least k, a numeric summary shown
  means at least k values), counts whole (:func:`toolkit.disclosure.audit.labelled_exposures`):
  is it determined?  A derived (never shown) cell is a finding when it is determined and 1..k-1.

It also flags survival quantities published for a group shown to be below k, or at a time with
fewer than k at risk.

Tables it reads: results.json (above; attrition steps add up to the step before, the last step
is the cohort); HTML and Markdown pages (every Table 1 of a page in one system, recognised by its
``Overall`` column and ``n`` row; attrition tables ``step | remaining | removed``; survival tables
``group | n | events | ...``); attrition.csv.  A withheld cell reads ``null`` in JSON and
``<k``/``withheld`` (or blank) in tables.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from toolkit.disclosure.audit import Key, LinearTable, exposures, labelled_exposures
from toolkit.disclosure.joint import MISSING, PRESENT, x_key

_LABELS = {"small": "small", "complementary": "complementary"}


@dataclass(frozen=True)
class Derived:
    where: str
    value: float
    why: str


@dataclass
class _System:
    """Cells a reader knows (value) or not (None), the relations between them, and the markers."""

    cells: dict[Key, float | None] = field(default_factory=dict)
    relations: list[tuple[Key, tuple[Key, ...]]] = field(default_factory=list)
    names: dict[Key, str] = field(default_factory=dict)
    unshown: set[Key] = field(default_factory=set)  # never published (derived counts, no-group columns)
    labels: dict[Key, str] = field(default_factory=dict)
    listed: set[Key] = field(default_factory=set)  # a level a table lists has someone in it
    _seen: set[tuple[Key, tuple[Key, ...]]] = field(default_factory=set)

    def cell(self, key: Key, value: Any, name: str, *, shown: bool = True, label: str | None = None) -> Key:
        v = _number(value)
        if not shown:
            if key not in self.cells:
                self.unshown.add(key)
        elif key in self.unshown:
            self.unshown.discard(key)
        old = self.cells.get(key)
        if key not in self.cells or (old is None and v is not None):
            self.cells[key] = v
        if v is None and label is not None:
            self.labels.setdefault(key, label)
        self.names.setdefault(key, name)
        return key

    def agrees(self, pairs: Sequence[tuple[Key, Any]]) -> bool:
        """Whether published values agree with what is already known under the same keys."""
        for key, value in pairs:
            v, old = _number(value), self.cells.get(key)
            if v is not None and old is not None and abs(v - old) > 0.5:
                return False
        return True

    def relate(self, total: Key, parts: list[Key]) -> None:
        sig = (total, tuple(sorted(parts, key=repr)))
        if parts and sig not in self._seen:
            self._seen.add(sig)
            self.relations.append((total, tuple(parts)))

    def findings(self, *, min_cell: int) -> Iterator[Derived]:
        hidden = {k for k, v in self.cells.items() if v is None}
        if not hidden:
            return
        table = LinearTable({k: 0 if v is None else round(v) for k, v in self.cells.items()})
        for total, parts in self.relations:
            table.relate(total, parts)
        known = {k: float(v) for k, v in self.cells.items() if v is not None}
        flagged: set[Key] = set()
        for e in exposures(table, hidden, min_cell=min_cell, known=known):
            # a count never shown matters only when it is derivable and small
            if set(e.cells) <= self.unshown and not (e.lower >= 0.5 and e.upper <= min_cell - 0.5):
                continue
            flagged |= set(e.cells)
            where = " + ".join(self.names.get(c, repr(c)) for c in e.cells)
            if e.why == "difference":
                yield Derived(
                    where, e.lower, f"withheld cells add up to {e.lower:g}, derivable from the margins"
                )
            elif e.why == "determined":
                yield Derived(where, e.lower, f"withheld value is determined by the margins ({e.lower:g})")
            else:
                yield Derived(
                    where, e.lower, f"withheld value is bounded in {e.lower:g}..{e.upper:g} (< {min_cell})"
                )
        yield from self._labelled(table, hidden - flagged, known, min_cell)

    def _labelled(
        self, table: LinearTable, hidden: set[Key], known: Mapping[Key, float], min_cell: int
    ) -> Iterator[Derived]:
        """Cells the markers and whole counts pin down (a reader who reads `<k` as 1..k-1)."""
        top = 10.0 * max([v for v in known.values()] or [1.0]) + 1e6  # the reader knows no upper limit
        labels = {k: self.labels.get(k) for k in self.cells if k not in known}
        for c, value in labelled_exposures(
            table,
            set(labels),
            min_cell=min_cell,
            labels=labels,
            watch=hidden,
            known=known,
            big=top,
            values=True,
        ):
            if c in self.unshown and not 1 <= value <= min_cell - 1:
                continue
            yield Derived(
                self.names.get(c, repr(c)),
                value,
                f"withheld value is determined by the margins and the markers ({value:g})",
            )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return None if isinstance(value, float) and math.isnan(value) else float(value)
    m = re.match(r"\s*(\d[\d,]*)(?![\d.])", str(value))
    return float(m.group(1).replace(",", "")) if m else None


def _small_marker(value: Any, min_cell: int) -> bool:
    return isinstance(value, str) and value.strip().startswith(f"<{min_cell}")


# --- results.json --------------------------------------------------------------------------
def derive_results(data: Any, *, min_cell: int) -> Iterator[Derived]:
    """Findings in a results.json (anything else yields nothing)."""
    if not isinstance(data, dict) or not isinstance(data.get("cohort"), dict):
        return
    sys = _System()
    cohort = data["cohort"]
    steps = cohort.get("attrition") or []
    last = steps[-1] if steps and isinstance(steps[-1], dict) else {}
    sys.cell(("n",), cohort.get("n"), "cohort.n")
    sys.cell(("e", 1), cohort.get("events"), "cohort.events", label=_label(last.get("suppressed"), "events"))
    sys.relate(("n",), [("e", 1), sys.cell(("ne",), None, "persons without the event", shown=False)])
    _attrition(sys, steps, "cohort.attrition", link=True)
    for name, entry in (data.get("analyses") or {}).items():
        if not isinstance(entry, dict):
            continue
        where = f"analyses.{name}"
        if entry.get("type") == "table1":
            _table1_json(sys, entry, where)
        elif entry.get("type") in ("kaplan_meier", "cumulative_incidence", "rmst", "logrank"):
            _groups_json(sys, entry, where)
            if entry.get("type") == "kaplan_meier" and isinstance(entry.get("logrank"), dict):
                _groups_json(sys, {**entry["logrank"], "type": "logrank", "by": entry.get("by")}, where)
            yield from _survival_json(entry, where, min_cell=min_cell)
    for name, model in (data.get("models") or {}).items():
        if isinstance(model, dict) and isinstance(model.get("subgroups"), dict):
            _subgroups_json(sys, model, f"models.{name}")
        if isinstance(model, dict) and isinstance(model.get("folds"), list):
            _folds_json(sys, model, f"models.{name}")
    yield from sys.findings(min_cell=min_cell)


def _label(marks: Any, key: str) -> str | None:
    return _LABELS.get(str(marks.get(key))) if isinstance(marks, dict) else None


def _attrition(sys: _System, rows: list[Any], where: str, *, link: bool = False) -> None:
    for i, r in enumerate(rows):
        for col in ("n", "removed", "events"):
            if col in r and not (col == "events" and i == 0):
                sys.cell(
                    (where, i, col), r.get(col), f"{where}[{i}].{col}", label=_label(r.get("suppressed"), col)
                )
    for i in range(1, len(rows)):
        sys.relate((where, i - 1, "n"), [(where, i, "n"), (where, i, "removed")])
        if (where, i - 1, "events") in sys.cells and (where, i, "events") in sys.cells:
            gone = sys.cell((where, i, "events removed"), None, f"{where}[{i}] events removed", shown=False)
            sys.relate((where, i - 1, "events"), [(where, i, "events"), gone])
    if rows and link:  # the last step is the cohort: its persons and its events
        sys.relate(("n",), [(where, len(rows) - 1, "n")])
        if (where, len(rows) - 1, "events") in sys.cells:
            sys.relate(("e", 1), [(where, len(rows) - 1, "events")])


def _space(sys: _System, where: str, pairs: Sequence[tuple[Key, Any]]) -> Callable[[Key], Key]:
    """Shared cell names when the table's counts agree with the shared cells; its own otherwise."""
    if sys.agrees(pairs):
        return lambda k: k
    return lambda k: (where, *k) if isinstance(k, tuple) else (where, k)


def _table1_json(sys: _System, entry: dict[str, Any], where: str) -> None:
    groups = [str(g) for g in entry.get("groups", [])]
    by = entry.get("by")
    n_row = next((r for r in entry.get("rows", []) if r.get("label") == "n"), None)
    if not groups or n_row is None:
        return
    blv = {g: g.split("=", 1)[1] if by and "=" in g else g for g in groups[1:]}
    counts = n_row.get("counts") or {}
    K = _space(
        sys,
        where,
        [(("n",), counts.get(groups[0]))] + [(("m", by, blv[g]), counts.get(g)) for g in groups[1:]],
    )
    marks = n_row.get("suppressed") or {}
    total = sys.cell(
        K(("n",)), counts.get(groups[0]), f"{where} n [{groups[0]}]", label=_label(marks, groups[0])
    )
    cols: dict[str, Key] = {}
    if by:
        for g in groups[1:]:
            cols[g] = sys.cell(
                K(("m", by, blv[g])), counts.get(g), f"{where} n [{g}]", label=_label(marks, g)
            )
        cols[MISSING] = sys.cell(K(("m", by, MISSING)), None, f"{where} n [no {by}]", shown=False)
        sys.relate(total, list(cols.values()))
    blocks: dict[str, list[dict[str, Any]]] = {}
    for r in entry.get("rows", [])[1:]:
        if r.get("variable") is not None:
            blocks.setdefault(str(r["variable"]), []).append(r)
    for v, rows in blocks.items():
        _t1_block(sys, v, rows, groups, by, blv, total, cols, K, where)


Level = tuple[str, dict[str, Any], dict[str, Any], bool]


def _t1_levels(rows: list[dict[str, Any]], groups: list[str]) -> tuple[list[Level], bool]:
    """(level, counts per group, markers per group, shown) of one variable's rows; whether the
    variable is numeric (its missing counts, and what its summaries say of its count of values)."""
    levels: list[Level] = []
    numeric = not any("level" in r for r in rows)
    for r in rows:
        marks = r.get("suppressed") or {}
        if "level" in r:
            levels.append((str(r["level"]), r.get("counts") or {}, marks, True))
        elif "missing" in r or "summary" in r:
            levels.append((MISSING, r.get("missing") or {}, marks, "missing" in r))
            cells = r.get("cells") or {}
            levels.append(
                (PRESENT, {g: None for g in groups}, {g: _present(cells.get(g)) for g in groups}, False)
            )
        elif str(r.get("label", "")).endswith(", missing"):
            levels.append((MISSING, r.get("counts") or {}, marks, True))
    return levels, numeric


def _present(text: Any) -> str | None:
    """What a numeric summary says of its count of values: none (–), 1..k-1 (<k), or >= k."""
    if not isinstance(text, str):
        return None
    t = text.strip()
    if t in ("–", "-", ""):
        return "zero"
    if t.startswith("<"):
        return "small"
    if t.lower().startswith("withheld"):
        return None
    return "large"


def _t1_block(
    sys: _System,
    v: str,
    rows: list[dict[str, Any]],
    groups: list[str],
    by: str | None,
    blv: Mapping[str, str],
    total: Key,
    cols: Mapping[str, Key],
    K: Callable[[Key], Key],
    where: str,
) -> None:
    """One variable of Table 1: its level (and missing) counts per group, with their margins."""
    levels, numeric = _t1_levels(rows, groups)
    if not levels:
        return
    overall = groups[0]
    for lv, counts, marks, shown in levels:
        label = marks.get(overall) if lv == PRESENT else _label(marks, overall)
        m = sys.cell(
            K(("m", v, lv)), counts.get(overall), f"{where} {v}={lv} [{overall}]", shown=shown, label=label
        )
        if not by:
            continue
        parts = []
        for g in groups[1:]:
            label = marks.get(g) if lv == PRESENT else _label(marks, g)
            parts.append(sys.cell(K(x_key((v, lv), (by, blv[g]))), counts.get(g), f"{where} {v}={lv} [{g}]",
                                  shown=shown, label=label))  # fmt: skip
        parts.append(
            sys.cell(K(x_key((v, lv), (by, MISSING))), None, f"{where} {v}={lv} [no {by}]", shown=False)
        )
        sys.relate(m, parts)
    keys = [lv for lv, *_ in levels]
    if numeric and PRESENT not in keys:
        return
    sys.relate(total, [K(("m", v, lv)) for lv in keys])
    if by:
        for g, col in cols.items():
            b = MISSING if g == MISSING else blv[g]
            sys.relate(col, [K(x_key((v, lv), (by, b))) for lv in keys])


def _groups_json(sys: _System, entry: dict[str, Any], where: str) -> None:
    """Group sizes and events of a grouped survival table: cells shared with every other table."""
    by = entry.get("by")
    groups = entry.get("groups") or []
    if not by or not groups:
        return
    kind = entry.get("type")
    n_pairs = [(("m", by, str(g["group"])), g.get("n")) for g in groups if "n" in g]
    K = _space(sys, where, n_pairs)
    causes: set[int] = set()
    tau = entry.get("tau")
    for g in groups:
        lv, marks = str(g["group"]), g.get("counts_suppressed") or {}
        m = K(("m", by, lv))
        sys.listed.add(m)
        if "n" in g:
            sys.cell(m, g.get("n"), f"{where} n [{lv}]", label=_label(marks, "n"))
        if kind == "cumulative_incidence":
            for c in g.get("causes") or []:
                code = int(c.get("cause", 1))
                causes.add(code)
                sys.cell(K(("e", code, by, lv)), c.get("events"), f"{where} events [{lv}, cause {code}]",
                         label=_label(c.get("counts_suppressed"), "events"))  # fmt: skip
        elif kind == "rmst" and tau is not None:
            sys.cell(K(("eb", float(tau), by, lv)), g.get("events"), f"{where} events by tau [{lv}]",
                     label=_label(marks, "events"))  # fmt: skip
        elif kind == "logrank":
            key = "events" if "rho" in entry and entry.get("rho") else "observed"
            if key in g:
                sys.cell(K(("e", 1, by, lv)), g.get(key), f"{where} events [{lv}]", label=_label(marks, key))
        elif "events" in g:
            sys.cell(
                K(("e", 1, by, lv)), g.get("events"), f"{where} events [{lv}]", label=_label(marks, "events")
            )
    _partition_relations(
        sys, K, by, [str(g["group"]) for g in groups], causes, tau if kind == "rmst" else None
    )


def _partition_relations(
    sys: _System, K: Callable[[Key], Key], by: str, levels: list[str], causes: set[int], tau: Any
) -> None:
    """What holds between the cells of a grouping, whichever of them a table shows."""
    levels = [*levels, MISSING]
    hidden = lambda key, name: sys.cell(K(key), None, name, shown=False)  # noqa: E731
    sizes = [
        hidden(("m", by, lv), f"n [{by}={lv}]") if K(("m", by, lv)) not in sys.cells else K(("m", by, lv))
        for lv in levels
    ]
    sys.relate(K(("n",)), sizes)
    ne_total = hidden(("ne",), "persons without the event") if K(("ne",)) not in sys.cells else K(("ne",))
    sys.relate(K(("n",)), [K(("e", 1)) if K(("e", 1)) in sys.cells else hidden(("e", 1), "events"), ne_total])
    e1, nes = [], []
    for lv in levels:
        e = K(("e", 1, by, lv))
        if e not in sys.cells:
            hidden(("e", 1, by, lv), f"events [{by}={lv}]")
        ne = K(("ne", by, lv))
        if ne not in sys.cells:
            hidden(("ne", by, lv), f"persons without the event [{by}={lv}]")
        sys.relate(K(("m", by, lv)), [e, ne])
        e1.append(e)
        nes.append(ne)
        other = sorted(c for c in causes if c != 1)
        if other:
            parts = [
                K(("e", c, by, lv))
                if K(("e", c, by, lv)) in sys.cells
                else hidden(("e", c, by, lv), f"events {c} [{by}={lv}]")
                for c in other
            ]
            parts.append(
                hidden(("e", 0, by, lv), f"censored [{by}={lv}]")
                if K(("e", 0, by, lv)) not in sys.cells
                else K(("e", 0, by, lv))
            )
            sys.relate(ne, parts)
    sys.relate(K(("e", 1)), e1)
    sys.relate(ne_total, nes)
    if tau is None:
        return
    t = float(tau)
    tb = hidden(("eb", t), "events by tau") if K(("eb", t)) not in sys.cells else K(("eb", t))
    ta = hidden(("ea", t), "events after tau") if K(("ea", t)) not in sys.cells else K(("ea", t))
    sys.relate(K(("e", 1)), [tb, ta])
    bs, as_ = [], []
    for lv in levels:
        b = (
            K(("eb", t, by, lv))
            if K(("eb", t, by, lv)) in sys.cells
            else hidden(("eb", t, by, lv), f"events by tau [{by}={lv}]")
        )
        a = (
            K(("ea", t, by, lv))
            if K(("ea", t, by, lv)) in sys.cells
            else hidden(("ea", t, by, lv), f"events after tau [{by}={lv}]")
        )
        sys.relate(K(("e", 1, by, lv)), [b, a])
        bs.append(b)
        as_.append(a)
    sys.relate(tb, bs)
    sys.relate(ta, as_)


def _subgroups_json(sys: _System, model: dict[str, Any], where: str) -> None:
    """A model's subgroup table: its persons and events per level add up to the model's; when
    the model used the whole cohort they are the cohort's partitions, shared with other tables."""
    same = (
        _number(model.get("n")) is not None
        and sys.agrees([(("n",), model.get("n")), (("e", 1), model.get("events"))])
        and _number(model.get("n")) == sys.cells.get(("n",))
    )
    K: Callable[[Key], Key] = (lambda k: k) if same else (lambda k: (where, *k))  # type: ignore[misc]
    sys.cell(K(("n",)), model.get("n"), f"{where}.n")
    sys.cell(K(("e", 1)), model.get("events"), f"{where}.events")
    for var, cells in (model["subgroups"].get("variables") or {}).items():
        levels = []
        for c in cells:
            lv = str(c.get("level"))
            levels.append(lv)
            sys.listed.add(sys.cell(K(("m", var, lv)), c.get("n"), f"{where}.subgroups.{var}[{lv}].n"))
            sys.cell(K(("e", 1, var, lv)), c.get("events"), f"{where}.subgroups.{var}[{lv}].events")
        # the subgroup table lists every level, missing included: nobody is left out
        _partition_relations(sys, K, var, [lv for lv in levels if lv != MISSING], set(), None)
        if MISSING not in levels:
            sys.cell(K(("m", var, MISSING)), 0, f"{where}.subgroups.{var}[(none)].n")


def _folds_json(sys: _System, model: dict[str, Any], where: str) -> None:
    """Cross-validation folds split the model's persons and events."""
    for key in ("n", "events"):
        total = sys.cell((where, key), model.get(key), f"{where}.{key}")
        parts = [
            sys.cell((where, "fold", i, key), f.get(key), f"{where}.folds[{i}].{key}")
            for i, f in enumerate(model["folds"])
            if isinstance(f, dict) and key in f
        ]
        if len(parts) == len(model["folds"]):
            sys.relate(total, parts)


def _survival_json(entry: dict[str, Any], where: str, *, min_cell: int) -> Iterator[Derived]:
    """Survival quantities published for a group shown to be below k, or past k at risk."""
    for g in entry.get("groups") or []:
        marks = g.get("counts_suppressed") or {}
        small = any(marks.get(k) == "small" for k in ("n", "events")) or any(
            isinstance(g.get(k), int | float) and 0 < g[k] < min_cell for k in ("n", "events")
        )
        name = f"{where}.groups[{g.get('group')}]"
        if small:
            for key in ("median", "median_lower", "median_upper", "rmst", "lower", "upper"):
                if isinstance(g.get(key), int | float):
                    yield Derived(f"{name}.{key}", float(g[key]), f"published for a group below {min_cell}")
        rows = [(name, a) for a in g.get("at") or []] + [
            (f"{name}.cause {c.get('cause')}", a) for c in g.get("causes") or [] for a in c.get("at") or []
        ]
        for label, a in rows:
            for key in ("survival", "cif"):
                if not isinstance(a.get(key), int | float):
                    continue
                if small:
                    yield Derived(
                        f"{label} at {a.get('time')}",
                        float(a[key]),
                        f"published for a group below {min_cell}",
                    )
                elif a.get("n_risk") is None and a.get("time", 0) > 0:
                    yield Derived(
                        f"{label} at {a.get('time')}",
                        float(a[key]),
                        f"published with fewer than {min_cell} at risk",
                    )


# --- tables in HTML and Markdown ------------------------------------------------------------
def derive_page(tables: list[list[list[str]]], *, min_cell: int) -> Iterator[Derived]:
    """Findings in the tables of one page: every Table 1 of the page in one system (two Table 1s
    of a report share their cross-tabulations), attrition and survival tables each on its own."""
    sys = _System()
    for t, rows in enumerate(tables):
        if not rows:
            continue
        header = [h.strip().lower() for h in rows[0]]
        where = f"table {t}"
        if header and header[0] == "" and "overall" in header:
            _table1_json(sys, _table1_entry(rows), where)
        else:
            yield from derive_grid(rows, min_cell=min_cell, where=where)
    yield from sys.findings(min_cell=min_cell)


def derive_grid(rows: list[list[str]], *, min_cell: int, where: str) -> Iterator[Derived]:
    """Findings in one table of a page (a header row, then cells as text)."""
    if not rows:
        return
    header = [h.strip().lower() for h in rows[0]]
    if header and header[0] == "" and "overall" in header:
        sys = _System()
        _table1_json(sys, _table1_entry(rows), where)
        yield from sys.findings(min_cell=min_cell)
    elif header[:3] == ["step", "remaining", "removed"]:
        recs = [{"n": r[1], "removed": r[2]} for r in rows[1:] if len(r) >= 3]
        yield from _attrition_findings(recs, min_cell=min_cell, where=where)
    elif header[:3] == ["group", "n", "events"] or header[:4] == ["group", "cause", "n", "events"]:
        yield from _survival_grid(rows, min_cell=min_cell, where=where)


def _cell(text: str) -> float | None:
    t = text.strip()
    return None if t.startswith("<") or t.lower().startswith("withheld") or t == "" else _number(t)


def _marker(text: str) -> str | None:
    t = text.strip().lower()
    return "small" if t.startswith("<") else "complementary" if t.startswith("withheld") else None


def _table1_entry(rows: list[list[str]]) -> dict[str, Any]:
    """A Table 1 read from its cells as the results.json entry it came from."""
    header = rows[0]
    groups = [h.strip() for h in header[1:] if h.strip() and h.strip().lower() not in ("smd", "p")]
    by = groups[1].split("=", 1)[0] if len(groups) > 1 and "=" in groups[1] else None
    entry_rows: list[dict[str, Any]] = []
    for r in rows[1:]:
        label = r[0].strip()
        texts = {g: r[i + 1] if i + 1 < len(r) else "" for i, g in enumerate(groups)}
        vals = {g: _cell(t) for g, t in texts.items()}
        marks = {g: mk for g, t in texts.items() if (mk := _marker(t)) is not None}
        row: dict[str, Any] = {"label": label, "counts": vals, "suppressed": marks}
        if label == "n":
            entry_rows.append({**row, "variable": None})
        elif m := re.match(r"(.+?) = (.+), n \(%\)$", label):
            entry_rows.append({**row, "variable": m.group(1), "level": m.group(2)})
        elif m := re.match(r"(.+), missing$", label):
            entry_rows.append({**row, "variable": m.group(1)})
        elif m := re.match(r"(.+), (?:mean \(SD\)|median \[IQR\])$", label):
            entry_rows.append({"label": label, "variable": m.group(1), "summary": True, "cells": texts})
    return {"groups": groups, "by": by, "rows": entry_rows}


def _attrition_findings(recs: list[dict[str, Any]], *, min_cell: int, where: str) -> Iterator[Derived]:
    sys = _System()
    rows = [{k: _cell(str(v)) if isinstance(v, str) else v for k, v in r.items()} for r in recs]
    _attrition(sys, rows, where)
    yield from sys.findings(min_cell=min_cell)


def _survival_grid(rows: list[list[str]], *, min_cell: int, where: str) -> Iterator[Derived]:
    header = [h.strip().lower() for h in rows[0]]
    ni, ei = header.index("n"), header.index("events")
    for r in rows[1:]:
        if len(r) <= ei:
            continue
        if _small_marker(r[ni], min_cell) or _small_marker(r[ei], min_cell):
            for j in range(ei + 1, len(r)):
                if re.match(r"\s*\d", r[j]) and header[j] != "at risk":
                    yield Derived(f"{where} row {r[0]!r} column {rows[0][j]!r}", _number(r[j]) or 0.0,
                                  f"published for a group below {min_cell}")  # fmt: skip


def derive_attrition_csv(frame: pd.DataFrame, *, min_cell: int, where: str) -> Iterator[Derived]:
    if not {"n", "removed"} <= set(frame.columns):
        return
    recs = [
        {k: (None if pd.isna(r.get(k)) else r.get(k)) for k in ("n", "removed", "events") if k in r}
        for r in frame.to_dict("records")
    ]
    recs = [{k: (_cell(v) if isinstance(v, str) else v) for k, v in r.items()} for r in recs]
    yield from _attrition_findings(recs, min_cell=min_cell, where=where)
