"""The rows of a regression's forest plot, as a reader expects them: each variable under its
dictionary label, a categorical variable as a heading with one row per level in the declared
(or natural) order, its reference level marked, and the persons and events behind each row.

Counts per level pass the disclosure policy, and more: a level's persons and events in the
analysis are released only when, for every level of the variable, they and the persons and
events the analysis left out of that level (complete case) are 0 or at least k, because the
level sizes of the whole cohort are published elsewhere (Table 1) and the difference would
otherwise give a small count away.  Otherwise the variable's rows read ``withheld``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from toolkit.analysis.plots import ForestRow
    from toolkit.disclosure import DisclosurePolicy
    from toolkit.study.kinds.base import RunContext


def forest_rows(
    entry: dict[str, Any],
    covariates: Sequence[str],
    frame: pd.DataFrame,
    used: pd.DataFrame,
    events: np.ndarray,
    context: RunContext,
    policy: DisclosurePolicy,
) -> list[ForestRow]:
    """Rows for the covariates of ``entry`` (a cox entry: ``coefficients`` with ``hr``); ``used``:
    the persons the fit used (``frame`` less those left out), ``events``: event flags of ``frame``."""
    from toolkit.analysis.plots import ForestRow

    d = context.dictionary
    terms = {c["term"]: c for c in entry["coefficients"]}
    ev = np.asarray(events, bool)
    in_used = frame.index.isin(used.index)
    total = _text(policy.count(int(in_used.sum())), policy.count(int(ev[in_used].sum())))
    rows: list[ForestRow] = []
    for c in covariates:
        if not any(t.startswith(f"{c}=") for t in terms):
            t = terms[c]
            rows.append(ForestRow(d.term(c), total, t["hr"], t["hr_lower"], t["hr_upper"], t["p"]))
            continue
        values = frame[c].astype(str).where(frame[c].notna())
        levels = d.order(c, values.dropna().unique())
        reference = sorted(values.dropna().unique())[0]  # the design's reference (first sorted)
        counts = _level_counts(values, ev, in_used, levels, policy)
        rows.append(ForestRow(d.with_unit(c)))
        for lv in levels:
            label = "\u2003" + d.level(c, lv)  # an em space: indented under the heading
            t = terms.get(f"{c}={lv}")
            if lv == reference or t is None:
                rows.append(ForestRow(label, counts[lv], note="reference"))
            else:
                rows.append(ForestRow(label, counts[lv], t["hr"], t["hr_lower"], t["hr_upper"], t["p"]))
    return rows


def _level_counts(
    values: pd.Series, ev: np.ndarray, in_used: np.ndarray, levels: list[str], policy: DisclosurePolicy
) -> dict[str, str]:
    parts = {}
    for lv in levels:
        at = (values == lv).to_numpy()
        parts[lv] = [int((at & in_used).sum()), int((at & in_used & ev).sum()),
                     int((at & ~in_used).sum()), int((at & ~in_used & ev).sum())]  # fmt: skip
    safe = not policy.enabled or all(x == 0 or x >= policy.min_cell for p in parts.values() for x in p)
    return {
        lv: _text(policy.count(p[0]), policy.count(p[1])) if safe else "withheld" for lv, p in parts.items()
    }


def _text(n: int | None, events: int | None) -> str:
    if n is None or events is None:
        return "withheld"
    return f"{n:,} ({events:,})"
