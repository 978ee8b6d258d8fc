"""Table 1: baseline characteristics, overall and by a grouping variable.

Numeric variables: mean (SD), or median (IQR) when skewed (|skewness| > 1); categorical: counts
and percentages; missingness per variable; standardized mean differences between two groups.

Optional tests between the groups (``tests=True``), matching base R: a numeric variable shown as
mean (SD) gets Welch's t-test (two groups, ``t.test``) or one-way ANOVA (``oneway.test(var.equal =
TRUE)``); one shown as median [IQR] gets the Wilcoxon rank-sum test with normal approximation and
continuity correction (``wilcox.test(exact = FALSE)``) or Kruskal-Wallis (``kruskal.test``); a
categorical variable gets Pearson's chi-squared test without continuity correction
(``chisq.test(correct = FALSE)``).  Missing values are left out of each test.
"""

from __future__ import annotations

import html
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from toolkit.analysis.design import is_categorical
from toolkit.disclosure import DisclosurePolicy
from toolkit.disclosure.audit import LinearTable
from toolkit.disclosure.joint import Crosstab, x_key


@dataclass(frozen=True)
class Table1:
    rows: tuple[dict[str, object], ...]
    groups: tuple[str, ...]
    by: str | None
    note: str | None = None  # why cells are withheld (one footnote for the table)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "type": "table1",
            "by": self.by,
            "groups": list(self.groups),
            "rows": list(self.rows),
        }
        if self.note:
            out["disclosure_note"] = self.note
        return out

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(g)}</th>" for g in self.groups)
        body = ""
        for r in self.rows:
            cells = "".join(f"<td>{html.escape(str(r['cells'].get(g, '')))}</td>" for g in self.groups)  # type: ignore[attr-defined]
            smd = "" if r.get("smd") is None else f"{r['smd']:.2f}"
            body += f"<tr><td>{html.escape(str(r['label']))}</td>{cells}<td>{smd}</td></tr>"
        return f"<table><tr><th></th>{head}<th>SMD</th></tr>{body}</table>"


def _smd_numeric(a: pd.Series, b: pd.Series) -> float | None:
    a, b = a.dropna().astype(float), b.dropna().astype(float)
    if len(a) < 2 or len(b) < 2:
        return None
    pooled = np.sqrt((a.var() + b.var()) / 2)
    return float(abs(a.mean() - b.mean()) / pooled) if pooled > 0 else 0.0


def _smd_binary(p1: float, p2: float) -> float:
    pooled = np.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / 2)
    return float(abs(p1 - p2) / pooled) if pooled > 0 else 0.0


def _numeric_test(samples: list[np.ndarray], skewed: bool) -> dict[str, object]:
    samples = [x for x in samples if len(x) > 0]
    if len(samples) < 2 or any(len(x) < 2 for x in samples):
        return {"test": None, "p": None}
    if skewed:
        if len(samples) == 2:
            r = stats.mannwhitneyu(
                samples[0], samples[1], alternative="two-sided", method="asymptotic", use_continuity=True
            )
            return {"test": "wilcoxon rank-sum", "p": float(r.pvalue)}
        return {"test": "kruskal-wallis", "p": float(stats.kruskal(*samples).pvalue)}
    if len(samples) == 2:
        return {
            "test": "welch t",
            "p": float(stats.ttest_ind(samples[0], samples[1], equal_var=False).pvalue),
        }
    return {"test": "anova", "p": float(stats.f_oneway(*samples).pvalue)}


def _chi2_test(table: np.ndarray) -> dict[str, object]:
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if table.shape[0] < 2 or table.shape[1] < 2:
        return {"test": None, "p": None}
    return {"test": "chi-squared", "p": float(stats.chi2_contingency(table, correction=False).pvalue)}


def table1(
    frame: pd.DataFrame,
    variables: Sequence[str],
    *,
    by: str | None = None,
    policy: DisclosurePolicy | None = None,
    tests: bool = False,
) -> Table1:
    """Table 1; with a ``policy``, counts are released under complementary suppression.

    Every count (group sizes, level counts, missing counts) is one cell of a linear table whose
    margins a reader knows (each group's levels and missing add up to its n; each row's groups add
    up to its Overall cell); :meth:`DisclosurePolicy.protect_table` withholds the counts 1..k-1
    (shown ``<k``) and as many others as it takes that none can be derived (shown ``withheld``).
    A group's summary of a numeric variable needs k values; percentages need a published
    denominator; SMDs and chi-squared p-values are left out where a count they use is withheld.
    ``tests=True`` (needs ``by``) adds a p-value to each variable's first row (see the module doc).
    """
    policy = policy or DisclosurePolicy(enabled=False)
    groups: list[tuple[str, pd.DataFrame]] = [("Overall", frame)]
    if by is not None:
        for level in sorted(frame[by].dropna().astype(str).unique()):
            groups.append((f"{by}={level}", frame[frame[by].astype(str) == level]))
        if frame[by].isna().any():  # in Overall, in no group: a reader can difference it
            groups.append((_BY_MISSING, frame[frame[by].isna()]))
    kinds = {v: is_numeric(frame[v]) for v in variables}
    counts = _count_table(groups, variables, kinds)
    status = _protect_blocks(counts, frame, [g for g, _ in groups], variables, kinds, by, policy)
    shown = [(g, d) for g, d in groups if g != _BY_MISSING]
    t1 = Table1Rows(policy, status, counts)
    names = [g for g, _ in shown]
    rows: list[dict[str, object]] = [t1.count_row("n", None, ("n",), names)]
    two = len(shown) == 3
    for v in variables:
        if kinds[v]:
            rows.append(t1.numeric_row(v, shown, two=two, tests=tests and by is not None))
        else:
            rows += t1.categorical_rows(v, names, two=two, tests=tests and by is not None)
    note = policy.footnote(status.values()) if policy.enabled else None
    return Table1(tuple(rows), tuple(g for g, _ in shown), by, note)


_BY_MISSING = "(group missing)"
_MISSING = "(missing)"


def is_numeric(s: pd.Series) -> bool:
    return not is_categorical(s) and s.dropna().nunique() > 2


def _levels(s: pd.Series) -> list[str]:
    return sorted(s.dropna().astype(str).unique())


def _count_table(
    groups: list[tuple[str, pd.DataFrame]], variables: Sequence[str], kinds: dict[str, bool]
) -> LinearTable:
    """Every count of the table as a cell, with the margins a reader can use."""
    t = LinearTable({})
    names = [g for g, _ in groups]
    for g, d in groups:
        t.add(("n", g), len(d))
    t.relate(("n", "Overall"), [("n", g) for g in names[1:]])
    for v in variables:
        # a numeric variable's count of values is never shown (its summary reads <k when that
        # count is 1..k-1): only its missing counts, which add up across the groups
        levels = [] if kinds[v] else _levels(groups[0][1][v])
        for g, d in groups:
            for lv in levels:
                t.add((v, lv, g), int((d[v].astype(str) == lv).sum()))
            t.add((v, _MISSING, g), int(d[v].isna().sum()))
            if not kinds[v]:
                t.relate(("n", g), [(v, lv, g) for lv in (*levels, _MISSING)])
        for lv in (*levels, _MISSING):
            t.relate((v, lv, "Overall"), [(v, lv, g) for g in names[1:]])
    return t


def _protect_blocks(
    counts: LinearTable,
    frame: pd.DataFrame,
    names: list[str],
    variables: Sequence[str],
    kinds: dict[str, bool],
    by: str | None,
    policy: DisclosurePolicy,
) -> dict[Hashable, str]:
    """Each count's status, read from the decisions about the run's counts
    (:meth:`DisclosurePolicy.decide`: the run's when this table is one of its tables, else this
    table protected on its own).  Cells are named by what they count, not where they sit, so the
    same cross-tabulation in another Table 1 of the run (``by: sex`` with ``age_band`` rows,
    ``by: age_band`` with ``sex`` rows) and the group sizes other tables publish are the same
    cells of one linear system."""
    status: dict[Hashable, str] = {k: "published" for k in counts.values}
    if not policy.enabled:
        return status
    decided = policy.decide(frame, [Crosstab(v, by, numeric=kinds[v]) for v in variables])
    blv = {g: _MISSING if g == _BY_MISSING else g.split("=", 1)[1] for g in names[1:]}

    def canon(key: Any) -> Hashable:
        if key[0] == "n":
            return ("n",) if key[1] == "Overall" else ("m", by, blv[str(key[1])])
        v, lv, g = key
        if g == "Overall":
            return ("m", v, lv)
        return x_key((str(v), str(lv)), (str(by), blv[str(g)]))

    for key in counts.values:
        st = decided.status.get(canon(key), "published")
        status[key] = "published" if st == "unpublished" else st
    return status


@dataclass
class Table1Rows:
    """Renders the rows of Table 1 from the counts and their statuses (keys ``("n", group)`` and
    ``(variable, level, group)``, ``(missing)`` for missing values; groups ``Overall`` then
    ``by=level``).  A federated run renders its pooled counts with it."""

    policy: DisclosurePolicy
    status: Mapping[Hashable, str]
    counts: LinearTable

    def value(self, key: object) -> int | None:
        return (
            None
            if self.status.get(key, "published") != "published"
            else self.policy.count(self.counts.values[key])
        )

    def text(self, key: object, denom: int | None = None, public: bool = True) -> str:
        st = self.status.get(key, "published")
        if st != "published":
            return self.policy.marker(st)
        n = self.counts.values[key]
        shown = self.policy.count(n)
        if denom is None or not public:
            return str(shown)
        return f"{shown} ({100 * n / denom:.1f}%)" if denom else "–"

    def marks(self, keys: Mapping[str, Hashable]) -> dict[str, str]:
        return {g: self.status[k] for g, k in keys.items() if self.status.get(k, "published") != "published"}

    def count_row(
        self,
        label: str,
        variable: str | None,
        key: tuple[object, ...],
        groups: list[str],
    ) -> dict[str, object]:
        keys = {g: (*key, g) for g in groups}
        row: dict[str, object] = {
            "label": label,
            "variable": variable,
            "cells": {g: self.text(k) for g, k in keys.items()},
            "counts": {g: self.value(k) for g, k in keys.items()},
            "smd": None,
        }
        if self.marks(keys):
            row["suppressed"] = self.marks(keys)
        return row

    def missing_marks(self, row: Mapping[str, object], v: str, groups: list[str]) -> dict[str, object]:
        """A numeric row with its missing counts (and their markers) as these statuses have them
        (a federated run summarises its pooled values with a table of its own)."""
        keys = {g: (v, _MISSING, g) for g in groups}
        out = {k: val for k, val in row.items() if k != "suppressed"}
        out["missing"] = {g: self.value(k) for g, k in keys.items()}
        if self.marks(keys):
            out["suppressed"] = self.marks(keys)
        return out

    def numeric_row(
        self, v: str, groups: list[tuple[str, pd.DataFrame]], *, two: bool, tests: bool
    ) -> dict[str, object]:
        s = groups[0][1][v]
        skewed = abs(float(stats.skew(s.dropna().astype(float)))) > 1 if s.notna().sum() > 2 else False
        cells, few = {}, []
        for g, d in groups:
            x = d[v].dropna().astype(float)
            if len(x) == 0:
                cells[g] = "–"
            elif self.policy.is_small(len(x)):
                cells[g] = self.policy.marker("small")
                few.append(g)
            elif skewed:
                q1, q2, q3 = np.percentile(x, [25, 50, 75])
                cells[g] = f"{q2:.1f} [{q1:.1f}, {q3:.1f}]"
            else:
                cells[g] = f"{x.mean():.1f} ({x.std(ddof=1) if len(x) > 1 else 0:.1f})"
        smd = _smd_numeric(groups[1][1][v], groups[2][1][v]) if two and not few else None
        keys = {g: (v, _MISSING, g) for g, _ in groups}
        row: dict[str, object] = {
            "label": f"{v}, {'median [IQR]' if skewed else 'mean (SD)'}",
            "variable": v,
            "cells": cells,
            "smd": smd,
            "missing": {g: self.value(k) for g, k in keys.items()},
        }
        if self.marks(keys):
            row["suppressed"] = self.marks(keys)
        if few:
            row["few_values"] = few
        if tests:
            row.update(_numeric_test([d[v].dropna().astype(float).to_numpy() for _, d in groups[1:]], skewed))
        return row

    def categorical_rows(
        self, v: str, names: list[str], *, two: bool, tests: bool
    ) -> list[dict[str, object]]:
        c = self.counts.values
        levels = sorted(
            {str(k[1]) for k in c if isinstance(k, tuple) and len(k) == 3 and k[0] == v and k[2] == names[0]}
            - {_MISSING}
        )
        # a percentage reveals its denominator (n - missing): shown only when that is public
        public = {
            g: self.value(("n", g)) is not None and self.value((v, _MISSING, g)) is not None for g in names
        }
        denom = {g: c[("n", g)] - c[(v, _MISSING, g)] for g in names}
        withheld_any = any(
            self.status.get((v, lv, g), "published") != "published"
            for lv in (*levels, _MISSING)
            for g in names
        )
        rows: list[dict[str, object]] = []
        for level in levels:
            keys = {g: (v, level, g) for g in names}
            row = self.count_row(f"{v} = {level}, n (%)", v, (v, level), names)
            row["level"] = level
            row["cells"] = {g: self.text(k, denom[g], public[g]) for g, k in keys.items()}
            g1, g2 = (names[1], names[2]) if two else (None, None)
            if (
                g1
                and g2
                and public[g1]
                and public[g2]
                and denom[g1]
                and denom[g2]
                and not row.get("suppressed")
            ):
                row["smd"] = _smd_binary(c[keys[g1]] / denom[g1], c[keys[g2]] / denom[g2])
            rows.append(dict(sorted(row.items(), key=lambda kv: _ORDER.index(kv[0]))))
        if tests and rows and not withheld_any:
            table = [[c[(v, lv, g)] for g in names[1:]] for lv in levels]
            rows[0].update(_chi2_test(np.array(table)))
        elif tests and rows:
            rows[0].update({"test": "chi-squared", "p": None})
        rows.append(self.count_row(f"{v}, missing", v, (v, _MISSING), names))
        return rows


_ORDER = ("label", "variable", "level", "cells", "counts", "smd", "suppressed", "test", "p")
