"""What a horizon model's numbers rest on: the events its fit uses, and the events and persons
its evaluation at the horizon uses.

A survival model (Cox, XGBoost with a Cox objective) is fitted on every development person's
follow-up, so its fit sees every outcome event, however late.  Its evaluation at the horizon h
(AUROC, Brier, calibration, net benefit at h) rests on the persons whose status at h is known
(the horizon label of :func:`~toolkit.analysis.predict.metrics.horizon_label`: 1 = outcome by h,
0 = known outcome-free at h or a competing event before it, unknown = censored before h) and on
the outcome events by h among them.  A binary model is fitted on that label, so its fit uses the
events by h.

Counts are released under the study's disclosure policy: a count 1..k-1 is withheld, and so are
the horizon counts whenever one of the parts they split the persons into (events by h,
outcome-free at h, not evaluable) is 1..k-1, since subtraction would reveal it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from toolkit.analysis.predict.metrics import horizon_label
from toolkit.disclosure import DisclosurePolicy

#: How each task's fit uses the events (results.json ``events_fit``; the report states it).
FIT_DEFINITION = {
    "survival": "outcome events over all follow-up of the development persons (the partial likelihood "
    "uses every event, however late)",
    "binary": "outcome events by the horizon among the persons evaluable at it (the 1s of the 0/1 label "
    "the model is fitted on)",
}


def horizon_counts(
    time: np.ndarray, event: np.ndarray, horizon: float, policy: DisclosurePolicy
) -> dict[str, int | None]:
    """``{"n_evaluable", "events_at_horizon"}``: persons whose status at ``horizon`` is known and
    those among them with the outcome by then, released under ``policy`` (:func:`label_counts`)."""
    return label_counts(
        horizon_label(np.asarray(time, float), np.asarray(event).astype(int), horizon), policy
    )


def label_counts(label: Any, policy: DisclosurePolicy) -> dict[str, int | None]:
    """The same from a horizon label (1, 0 or missing; a cohort's ``label_<h>`` column): both
    withheld when any part they split the persons into is 1..k-1."""
    values = pd.to_numeric(pd.Series(label), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    evaluable = int((~np.isnan(values)).sum())
    events = int((values == 1).sum())
    return parts_counts(events, evaluable - events, len(values) - evaluable, policy)


def parts_counts(events: int, free: int, unknown: int, policy: DisclosurePolicy) -> dict[str, int | None]:
    """The same from the three parts a horizon splits the persons into (outcome by it,
    outcome-free at it, unknown): both counts withheld when any part is 1..k-1."""
    if any(policy.is_small(p) for p in (events, free, unknown)):
        return {"n_evaluable": None, "events_at_horizon": None}
    return {"n_evaluable": policy.count(events + free), "events_at_horizon": policy.count(events)}


def fit_counts(
    time: np.ndarray,
    event: np.ndarray,
    horizon: float,
    *,
    task: str,
    parameters: int,
    policy: DisclosurePolicy,
) -> dict[str, Any]:
    """The persons and events a fit uses, its candidate parameters (design columns: one per
    numeric input, per non-reference level, per spline basis column; no intercept) and events
    per parameter, computed from the released event count (none when it is withheld)."""
    event = np.asarray(event).astype(int)
    if task == "binary":
        at_h = horizon_counts(time, event, horizon, policy)
        released_n, released_e = at_h["n_evaluable"], at_h["events_at_horizon"]
    else:
        released_n, released_e = policy.count(len(event)), policy.count(int((event == 1).sum()))
    epp = None if released_e is None or parameters <= 0 else round(released_e / parameters, 1)
    return {
        "n_fit": released_n,
        "events_fit": released_e,
        "parameters": int(parameters),
        "events_per_parameter": epp,
    }


def withhold_partition(cells: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
    """Subgroup cells split the model's horizon counts: when one cell's are withheld (or the whole
    cell is), the others' would give it away by subtraction, so withhold ``keys`` in every cell."""
    if any(c.get("suppressed") or any(c.get(k) is None for k in keys) for c in cells):
        for c in cells:
            if not c.get("suppressed"):
                c.update(dict.fromkeys(keys))
