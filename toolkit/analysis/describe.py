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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from toolkit.analysis.design import is_categorical
from toolkit.disclosure import DisclosurePolicy


@dataclass(frozen=True)
class Table1:
    rows: tuple[dict[str, object], ...]
    groups: tuple[str, ...]
    by: str | None

    def to_dict(self) -> dict[str, object]:
        return {"type": "table1", "by": self.by, "groups": list(self.groups), "rows": list(self.rows)}

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
    """Table 1; with a ``policy``, small counts are shown as ``<k`` and their percentages hidden.

    ``tests=True`` (needs ``by``) adds a p-value to each variable's first row (see the module doc).
    """
    policy = policy or DisclosurePolicy(enabled=False)

    def cnt(n: int, denom: int | None = None) -> str:
        shown = policy.count(n)
        if shown is None:
            return f"<{policy.min_cell}"
        if denom is None:
            return str(shown)
        return f"{shown} ({100 * n / denom:.1f}%)" if denom else "–"

    groups: list[tuple[str, pd.DataFrame]] = [("Overall", frame)]
    if by is not None:
        for level in sorted(frame[by].dropna().astype(str).unique()):
            groups.append((f"{by}={level}", frame[frame[by].astype(str) == level]))
    names = tuple(g for g, _ in groups)
    rows: list[dict[str, object]] = [
        {
            "label": "n",
            "variable": None,
            "cells": {g: cnt(len(d)) for g, d in groups},
            "counts": {g: policy.count(len(d)) for g, d in groups},
            "smd": None,
        }
    ]
    two = len(groups) == 3
    for v in variables:
        s = frame[v]
        if not is_categorical(s) and s.dropna().nunique() > 2:
            skewed = abs(float(stats.skew(s.dropna().astype(float)))) > 1 if s.notna().sum() > 2 else False
            cells = {}
            for g, d in groups:
                x = d[v].dropna().astype(float)
                if len(x) == 0:
                    cells[g] = "–"
                elif skewed:
                    q1, q2, q3 = np.percentile(x, [25, 50, 75])
                    cells[g] = f"{q2:.1f} [{q1:.1f}, {q3:.1f}]"
                else:
                    cells[g] = f"{x.mean():.1f} ({x.std(ddof=1) if len(x) > 1 else 0:.1f})"
            smd = _smd_numeric(groups[1][1][v], groups[2][1][v]) if two else None
            row: dict[str, object] = {
                "label": f"{v}, {'median [IQR]' if skewed else 'mean (SD)'}",
                "variable": v,
                "cells": cells,
                "smd": smd,
                "missing": {g: policy.count(int(d[v].isna().sum())) for g, d in groups},
            }
            if tests and by is not None:
                row.update(
                    _numeric_test([d[v].dropna().astype(float).to_numpy() for _, d in groups[1:]], skewed)
                )
            rows.append(row)
        else:
            levels = sorted(s.dropna().astype(str).unique())
            first = len(rows)
            for level in levels:
                counts = {g: int((d[v].astype(str) == level).sum()) for g, d in groups}
                denom = {g: int(d[v].notna().sum()) for g, d in groups}
                cells = {g: cnt(counts[g], denom[g]) for g, _ in groups}
                smd = None
                if two and denom[names[1]] and denom[names[2]]:
                    smd = _smd_binary(counts[names[1]] / denom[names[1]], counts[names[2]] / denom[names[2]])
                rows.append(
                    {
                        "label": f"{v} = {level}, n (%)",
                        "variable": v,
                        "level": level,
                        "cells": cells,
                        "counts": {g: policy.count(c) for g, c in counts.items()},
                        "smd": smd,
                    }
                )
            if tests and by is not None and len(rows) > first:
                table = [[int((d[v].astype(str) == lv).sum()) for _, d in groups[1:]] for lv in levels]
                rows[first].update(_chi2_test(np.array(table)))
            rows.append(
                {
                    "label": f"{v}, missing",
                    "variable": v,
                    "cells": {g: cnt(int(d[v].isna().sum())) for g, d in groups},
                    "counts": {g: policy.count(int(d[v].isna().sum())) for g, d in groups},
                    "smd": None,
                }
            )
    return Table1(tuple(rows), names, by)
