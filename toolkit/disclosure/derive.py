"""What a reader can *derive* from published tables: the scanner's second half.

For each published table the scanner rebuilds the margins a reader knows and solves them for the
withheld cells (:func:`toolkit.disclosure.audit.exposures`: exact LP bounds and the differencing
rule).  A withheld cell is a finding when its value is determined, or bounded inside 1..k-1.  It
also flags survival quantities published for a group shown to be below k, or at a time with
fewer than k at risk.

Tables it reads:

* results.json: Table 1 (each group's levels and missing add up to its n; each row's groups add up
  to Overall; persons with no group are an unknown column), the attrition (each step's remaining
  and removed add up to the step before), every published partition of a grouping variable
  (Table 1's n row and Overall column, the Kaplan-Meier, cumulative-incidence, RMST and log-rank
  groups: one unknown per level shared by all of them, adding up to the cohort), events per group
  (adding up to the cohort's events), subgroup tables of each model (adding up to its n and events);
* HTML and Markdown: Table 1 (recognised by its ``Overall`` column and ``n`` row), attrition tables
  (``step | remaining | removed``) and survival tables (``group | n | events | ...``);
* CSV: attrition.csv.

A withheld cell reads ``null`` in JSON and ``<k``/``withheld`` (or blank) in tables.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from toolkit.disclosure.audit import Key, LinearTable, exposures

MISSING = "(missing)"


@dataclass(frozen=True)
class Derived:
    where: str
    value: float
    why: str


@dataclass
class _System:
    """Cells a reader knows (value) or not (None), and the relations between them."""

    cells: dict[Key, float | None] = field(default_factory=dict)
    relations: list[tuple[Key, tuple[Key, ...]]] = field(default_factory=list)
    names: dict[Key, str] = field(default_factory=dict)
    unshown: set[Key] = field(default_factory=set)  # never published (derived counts, no-group columns)

    def cell(self, key: Key, value: Any, name: str, *, shown: bool = True) -> Key:
        if not shown or _is_slack(key):
            self.unshown.add(key)
        elif key in self.unshown and value is not None:
            self.unshown.discard(key)
        v = _number(value)
        old = self.cells.get(key)
        if key not in self.cells or (old is None and v is not None):
            self.cells[key] = v
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
        if parts:
            self.relations.append((total, tuple(parts)))

    def findings(self, *, min_cell: int) -> Iterator[Derived]:
        hidden = {k for k, v in self.cells.items() if v is None}
        if not hidden:
            return
        table = LinearTable({k: 0 if v is None else round(v) for k, v in self.cells.items()})
        for total, parts in self.relations:
            table.relate(total, parts)
        known = {k: float(v) for k, v in self.cells.items() if v is not None}
        for e in exposures(table, hidden, min_cell=min_cell, known=known):
            # a count never shown matters only when it is derivable and small
            if set(e.cells) <= self.unshown and not (e.lower >= 0.5 and e.upper <= min_cell - 0.5):
                continue
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


def _is_slack(key: Key) -> bool:
    return isinstance(key, tuple) and len(key) > 0 and key[0] == "slack"


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
    sys.cell(("size", "*", "all"), cohort.get("n"), "cohort.n")
    sys.cell(("events", "*", "all"), cohort.get("events"), "cohort.events")
    _attrition(sys, cohort.get("attrition") or [], "cohort.attrition")
    for name, entry in (data.get("analyses") or {}).items():
        if not isinstance(entry, dict):
            continue
        where = f"analyses.{name}"
        if entry.get("type") == "table1":
            _table1_json(sys, entry, where)
        elif entry.get("type") in ("kaplan_meier", "cumulative_incidence", "rmst", "logrank"):
            _groups_json(sys, entry, where)
            yield from _survival_json(entry, where, min_cell=min_cell)
    for name, model in (data.get("models") or {}).items():
        if isinstance(model, dict) and isinstance(model.get("subgroups"), dict):
            _subgroups_json(sys, model, f"models.{name}")
    yield from sys.findings(min_cell=min_cell)


def _attrition(sys: _System, rows: list[Any], where: str) -> None:
    for i, r in enumerate(rows):
        for col in ("n", "removed", "events"):
            if col in r and not (col == "events" and i == 0):
                sys.cell((where, i, col), r.get(col), f"{where}[{i}].{col}")
    for i in range(1, len(rows)):
        sys.relate((where, i - 1, "n"), [(where, i, "n"), (where, i, "removed")])
        if (where, i - 1, "events") in sys.cells and (where, i, "events") in sys.cells:
            gone = sys.cell(("slack", where, i, "events"), None, f"{where}[{i}] events removed")
            sys.relate((where, i - 1, "events"), [(where, i, "events"), gone])
    if rows:
        last = (where, len(rows) - 1, "n")
        sys.relate(("size", "*", "all"), [last])


def _table1_json(sys: _System, entry: dict[str, Any], where: str) -> None:
    groups = [str(g) for g in entry.get("groups", [])]
    by = entry.get("by")
    if not groups:
        return
    ns = by or where
    n_row = next((r for r in entry.get("rows", []) if r.get("label") == "n"), None)
    if n_row is None:
        return
    overall = groups[0]
    gkeys = {g: ("size", ns, g.split("=", 1)[1] if by and "=" in g else g) for g in groups[1:]}
    pairs = [(("size", "*", "all"), n_row["counts"].get(overall))] + [
        (gkeys[g], n_row["counts"].get(g)) for g in groups[1:]
    ]
    ns_key = ns if sys.agrees(pairs) else f"{where}:{ns}"
    gkeys = {g: ("size", ns_key, k[2]) for g, k in gkeys.items()}
    total = ("size", "*", "all") if ns_key == ns else ("size", where, "all")
    sys.cell(total, n_row["counts"].get(overall), f"{where} n [{overall}]")
    for g in groups[1:]:
        sys.cell(gkeys[g], n_row["counts"].get(g), f"{where} n [{g}]")
    nomiss = sys.cell(
        ("size", ns_key, MISSING) if by else ("slack", where, "n"), None, f"{where} n [no group]", shown=False
    )
    sys.relate(total, [*gkeys.values(), nomiss] if by else list(gkeys.values()))
    blocks: dict[str, list[dict[str, Any]]] = {}
    for r in entry.get("rows", [])[1:]:
        if r.get("variable") is not None:
            blocks.setdefault(str(r["variable"]), []).append(r)
    for v, rows in blocks.items():
        _t1_block(sys, v, rows, groups, gkeys, total, nomiss if by else None, where)


def _t1_block(
    sys: _System,
    v: str,
    rows: list[dict[str, Any]],
    groups: list[str],
    gkeys: Mapping[str, Key],
    total: Key,
    nomiss: Key | None,
    where: str,
) -> None:
    """One variable of Table 1: its level and missing counts per group, with their margins."""
    columns = list(groups[1:]) + (["(no group)"] if nomiss is not None else [])
    colsize = {**gkeys, **({"(no group)": nomiss} if nomiss is not None else {})}
    levels: list[tuple[str, dict[str, Any]]] = []
    for r in rows:
        if "level" in r:
            levels.append((str(r["level"]), r.get("counts") or {}))
        elif "missing" in r or str(r.get("label", "")).endswith(", missing"):
            levels.append((MISSING, r.get("missing") or r.get("counts") or {}))
    if not levels:
        return
    categorical = any(lv != MISSING for lv, _ in levels)
    # a categorical variable's Overall column is the partition other tables grouped by it publish
    shared = categorical and sys.agrees([(("size", v, lv), c.get(groups[0])) for lv, c in levels])

    def key(lv: str, g: str) -> Key:
        if g == groups[0] and shared:
            return ("size", v, lv)
        if g == "(no group)":
            return ("slack", where, v, lv, g)
        return (where, v, lv, g)

    for lv, counts in levels:
        for g in [groups[0], *columns]:
            k = key(lv, g)
            sys.cell(k, None if _is_slack(k) else counts.get(g), f"{where} {v}={lv} [{g}]")
        sys.relate(key(lv, groups[0]), [key(lv, g) for g in columns])
    if not categorical:  # numeric: the count of values present is never shown
        return
    for g in [groups[0], *columns]:
        sys.relate(total if g == groups[0] else colsize[g], [key(lv, g) for lv, _ in levels])


def _groups_json(sys: _System, entry: dict[str, Any], where: str) -> None:
    """Group sizes and events of a grouped survival table: shared partitions of the cohort."""
    by = entry.get("by")
    if not by:
        return
    groups = entry.get("groups") or []
    n_pairs = [(("size", by, str(g["group"])), g.get("n")) for g in groups if "n" in g]
    ev = [_events_of(g) for g in groups]
    e_pairs = [
        (("events", by, str(g["group"])), e) for g, e in zip(groups, ev, strict=True) if e is not False
    ]
    if n_pairs and sys.agrees(n_pairs):
        keys = [sys.cell(k, v, f"{where} n [{k[2]}]") for k, v in n_pairs]
        sys.relate(
            ("size", "*", "all"), [*keys, sys.cell(("size", by, MISSING), None, f"{by} missing", shown=False)]
        )
    if e_pairs and sys.agrees(e_pairs):
        keys = [sys.cell(k, v, f"{where} events [{k[2]}]") for k, v in e_pairs]
        sys.relate(
            ("events", "*", "all"), [*keys, sys.cell(("slack", "events", by), None, f"events with no {by}")]
        )


def _events_of(g: dict[str, Any]) -> Any:
    if "causes" in g:
        first = next((c for c in g["causes"] if c.get("cause") == 1), None)
        return False if first is None else first.get("events")
    if "observed" in g:
        return g.get("observed")
    return g.get("events", False) if "median" in g or "rho" not in g else False


def _subgroups_json(sys: _System, model: dict[str, Any], where: str) -> None:
    n_total = sys.cell((where, "n"), model.get("n"), f"{where}.n")
    ev_total = sys.cell((where, "events"), model.get("events"), f"{where}.events")
    for var, cells in (model["subgroups"].get("variables") or {}).items():
        n_keys, ev_keys = [], []
        for c in cells:
            lv = str(c.get("level"))
            n_keys.append(sys.cell((where, var, lv, "n"), c.get("n"), f"{where}.subgroups.{var}[{lv}].n"))
            ev_keys.append(
                sys.cell((where, var, lv, "ev"), c.get("events"), f"{where}.subgroups.{var}[{lv}].events")
            )
        sys.relate(n_total, n_keys)
        sys.relate(ev_total, ev_keys)


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
def derive_grid(rows: list[list[str]], *, min_cell: int, where: str) -> Iterator[Derived]:
    """Findings in one table of a page (a header row, then cells as text)."""
    if not rows:
        return
    header = [h.strip().lower() for h in rows[0]]
    if header and header[0] == "" and "overall" in header:
        yield from _table1_grid(rows, min_cell=min_cell, where=where)
    elif header[:3] == ["step", "remaining", "removed"]:
        recs = [{"n": r[1], "removed": r[2]} for r in rows[1:] if len(r) >= 3]
        yield from _attrition_findings(recs, min_cell=min_cell, where=where)
    elif header[:3] == ["group", "n", "events"] or header[:4] == ["group", "cause", "n", "events"]:
        yield from _survival_grid(rows, min_cell=min_cell, where=where)


def _cell(text: str) -> float | None:
    t = text.strip()
    return None if t.startswith("<") or t.lower().startswith("withheld") or t == "" else _number(t)


def _table1_grid(rows: list[list[str]], *, min_cell: int, where: str) -> Iterator[Derived]:
    header = rows[0]
    groups = [h.strip() for h in header[1:] if h.strip() and h.strip().lower() not in ("smd", "p")]
    by = groups[1].split("=", 1)[0] if len(groups) > 1 and "=" in groups[1] else None
    entry_rows: list[dict[str, Any]] = []
    for r in rows[1:]:
        label = r[0].strip()
        vals = {g: _cell(r[i + 1]) if i + 1 < len(r) else None for i, g in enumerate(groups)}
        if label == "n":
            entry_rows.append({"label": "n", "variable": None, "counts": vals})
        elif m := re.match(r"(.+?) = (.+), n \(%\)$", label):
            entry_rows.append({"label": label, "variable": m.group(1), "level": m.group(2), "counts": vals})
        elif m := re.match(r"(.+), missing$", label):
            entry_rows.append({"label": label, "variable": m.group(1), "counts": vals})
    sys = _System()
    _table1_json(sys, {"groups": groups, "by": by, "rows": entry_rows}, where)
    yield from sys.findings(min_cell=min_cell)


def _attrition_findings(recs: list[dict[str, Any]], *, min_cell: int, where: str) -> Iterator[Derived]:
    sys = _System()
    rows = [{k: _cell(str(v)) if isinstance(v, str) else v for k, v in r.items()} for r in recs]
    _attrition(sys, rows, where)
    sys.relations = [r for r in sys.relations if r[0] != ("size", "*", "all")]
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
