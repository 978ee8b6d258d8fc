"""Every metric per level of each declared subgroup variable, and the largest gap between levels.

A cell (one level of one variable) is released only when its number of persons, of outcome
events and of persons without the event are all zero or at least the policy's minimum cell
size, and when no withheld cell's persons or events could be found by subtracting the released
ones from the model's n and events (complementary suppression); otherwise it is written as
``{"level": ..., "suppressed": true}`` with no numbers (its metrics could otherwise reveal a
small count, e.g. observed risk x n).  Each cell also says what
its horizon metrics rest on (``n_evaluable``, ``events_at_horizon``:
:mod:`toolkit.analysis.predict.counts`); those are withheld in every cell of a variable when one
cell's are, since the cells add up to the model's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from toolkit.analysis.predict.assess import point_metrics
from toolkit.analysis.predict.counts import horizon_counts, withhold_partition
from toolkit.disclosure import DisclosurePolicy
from toolkit.errors import AnalysisError

#: metrics whose spread across the levels of a variable is reported as a gap
GAP_METRICS = (
    "c_harrell",
    "auroc",
    "auc_td",
    "brier",
    "brier_ipcw",
    "calibration_slope",
    "citl",
    "o_e_ratio",
    "ici",
)
MISSING_LEVEL = "(missing)"


def subgroup_metrics(
    groups: pd.DataFrame,
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    horizon: float,
    *,
    policy: DisclosurePolicy,
    risk_matrix: np.ndarray | None = None,
    variables: Sequence[str] | None = None,
    ibs_from_zero: bool = False,
) -> tuple[dict[str, Any], dict[str, float]]:
    """``({"variables": {var: [cells]}, "gaps": [...]}, {"subgroup_gap_<metric>": largest gap})``."""
    variables = list(groups.columns) if variables is None else list(variables)
    time = np.asarray(time, float)
    event = np.asarray(event).astype(int)
    risk = np.asarray(risk, float)
    if len(groups) != len(time):
        raise AnalysisError(f"subgroups: {len(groups)} rows for {len(time)} persons")
    table: dict[str, list[dict[str, Any]]] = {}
    gaps: list[dict[str, Any]] = []
    for var in variables:
        levels = groups[var].astype("string").fillna(MISSING_LEVEL).to_numpy(dtype=object)
        cells: list[dict[str, Any]] = []
        withheld = _withheld_levels(var, groups[var], levels, event, policy)
        for level in sorted(set(levels), key=str):
            sel = levels == level
            n, ev = int(sel.sum()), int((event[sel] == 1).sum())
            if str(level) in withheld:
                cells.append({"level": str(level), "suppressed": True})
                continue
            m, warns = point_metrics(
                time[sel],
                event[sel],
                risk[sel],
                horizon,
                risk_matrix=None if risk_matrix is None else risk_matrix[sel],
                ibs_from_zero=ibs_from_zero,
            )
            metrics = {k: v for k, v in m.items() if k not in ("n", "events", "n_evaluable")}
            cells.append(
                {
                    "level": str(level),
                    "n": policy.count(n),
                    "events": policy.count(ev),
                    **horizon_counts(time[sel], event[sel], horizon, policy),
                    "metrics": metrics,
                    "warnings": list(warns),
                }
            )
        withhold_partition(cells, ("n_evaluable", "events_at_horizon"))
        table[var] = cells
        for metric in GAP_METRICS:
            have = [(c["level"], c["metrics"][metric]) for c in cells if metric in c.get("metrics", {})]
            if len(have) >= 2:
                hi = max(have, key=lambda lv: lv[1])
                lo = min(have, key=lambda lv: lv[1])
                gaps.append(
                    {
                        "variable": var,
                        "metric": metric,
                        "gap": float(hi[1] - lo[1]),
                        "highest": hi[0],
                        "lowest": lo[0],
                    }
                )
    largest: dict[str, float] = {}
    for g in gaps:
        key = f"subgroup_gap_{g['metric']}"
        largest[key] = max(largest.get(key, -np.inf), g["gap"])
    return {"variables": table, "gaps": gaps}, largest


def _withheld_levels(
    var: str, column: pd.Series, levels: np.ndarray, event: np.ndarray, policy: DisclosurePolicy
) -> set[str]:
    """Levels whose cell is withheld: those with 1..k-1 persons, events or non-events, and every
    level whose persons or events the run withholds (the same cells as its other tables, with
    complementary suppression so that none of them can be found by subtraction from the model's
    n and events: :meth:`DisclosurePolicy.decide`; a cell shows both counts or neither)."""
    from toolkit.disclosure.joint import Partition

    names = sorted({str(lv) for lv in levels})
    lv = levels.astype(str)
    n = {k: int((lv == k).sum()) for k in names}
    ev = {k: int((event[lv == k] == 1).sum()) for k in names}
    hide = {
        k for k in names if policy.is_small(n[k]) or policy.is_small(ev[k]) or policy.is_small(n[k] - ev[k])
    }
    if not policy.enabled:
        return hide
    frame = pd.DataFrame({var: column.to_numpy(), "event": event})
    decided = policy.decide(frame, [Partition(var, with_missing=True)])
    for k in names:
        if decided.withheld(("m", var, k)) or decided.withheld(("e", 1, var, k)):
            hide.add(k)
    return hide
