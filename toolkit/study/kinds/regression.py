"""What the regression kinds (cox, logistic, aft, fine_gray) share: the study's ``missing:``
policy and the statement of it that every entry carries (``missing_data``).

* complete case: the fit leaves out persons lacking a covariate; the entry says how many
  persons the analysis frame held (``n``), how many were left out (``removed``) and how many
  lacked each variable (``variables[].missing``).
* multiple imputation (:mod:`toolkit.analysis.impute`): the fit runs on each completed data set
  and the coefficients are pooled by Rubin's rules; ``coefficients[j]`` then hold the pooled
  estimate, its total-variance standard error and a t-based interval and p-value, and
  ``missing_data.pooled`` the degrees of freedom and fraction of missing information per term.
  Statistics that Rubin's rules do not pool (likelihood-ratio test, PH test) are left out.

All counts go through the disclosure policy as every entry does (``n``, ``removed`` and
``missing`` are count keys).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from toolkit.study.kinds.base import RunContext

Fit = Callable[["pd.DataFrame"], dict[str, Any]]
#: A kind's ratio columns (estimate, lower, upper: exp of the coefficient and its interval)
Ratio = tuple[str, str, str]
#: What Rubin's rules leave unpooled: left out of a pooled entry.
UNPOOLED = ("loglik", "loglik_null", "lr_test", "ph_test", "iterations", "scale", "concordance")


def fit_with_policy(
    fit: Fit,
    frame: pd.DataFrame,
    covariates: Sequence[str],
    context: RunContext,
    *,
    outcome: dict[str, np.ndarray],
    ratio: Ratio | None = None,
) -> dict[str, Any]:
    """The kind's entry under the study's missing-data policy, with ``missing_data`` stating it;
    ``ratio`` names the entry's exp(coef) columns (None for a kind without them), which a pooled
    entry recomputes from the pooled estimates."""
    if any(c not in frame.columns for c in covariates):
        return fit(frame)  # the fit names the unknown column
    lacking = {c: int(frame[c].isna().sum()) for c in covariates if frame[c].isna().any()}
    complete = int(frame[list(covariates)].notna().all(axis=1).sum()) if covariates else len(frame)
    block: dict[str, Any] = {
        "method": context.missing.method,
        "n": len(frame),
        "variables": [{"variable": c, "missing": k} for c, k in lacking.items()],
    }
    if context.missing.method == "complete_case" or not lacking:
        block["removed"] = len(frame) - complete
        return {**fit(frame), "missing_data": {**block, "method": "complete_case"}}
    from toolkit.analysis.impute import LIBRARY, impute

    m = context.missing
    completed = impute(
        frame, covariates, outcome=outcome, m=m.imputations, iterations=m.iterations, seed=context.seed
    )
    fits = [fit(d) for d in completed]
    entry, pooled = pool_entries(fits, ratio, df_complete=float(len(frame) - len(fits[0]["coefficients"])))
    block.update(
        removed=0, imputations=m.imputations, iterations=m.iterations, library=LIBRARY, pooled=pooled
    )
    return {**entry, "missing_data": block}


def pool_entries(
    fits: list[dict[str, Any]], ratio: tuple[str, str, str] | None, *, df_complete: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One entry from the fits on the completed data sets: coefficients by Rubin's rules (the
    ratio columns as exp of the pooled estimate and its t interval), counts from the first fit
    (identical in all: no one is left out), unpooled statistics left out."""
    from toolkit.analysis.impute import rubin_pool

    first = fits[0]
    rows, pooled = [], []
    for j, row in enumerate(first["coefficients"]):
        se = [f["coefficients"][j].get("robust_se") or f["coefficients"][j]["se"] for f in fits]
        p = rubin_pool([f["coefficients"][j]["coef"] for f in fits], np.square(se), df_complete=df_complete)
        lo, hi = p.interval()
        out = {**row, "coef": p.estimate, "se": p.se, "z": p.estimate / p.se if p.se > 0 else None, "p": p.p}
        if "robust_se" in out:
            out["robust_se"] = None
        if ratio is not None:
            out.update(
                {
                    ratio[0]: float(np.exp(p.estimate)),
                    ratio[1]: float(np.exp(lo)),
                    ratio[2]: float(np.exp(hi)),
                }
            )
        rows.append(out)
        pooled.append({"term": row["term"], "df": p.df, "riv": p.riv, "fmi": p.fmi})
    entry = {k: v for k, v in first.items() if k not in UNPOOLED}
    entry["coefficients"] = rows
    entry["warnings"] = [w for f in fits for w in f.get("warnings", []) if "missing values" not in w][:5]
    return entry, pooled


def survival_outcome(frame: pd.DataFrame, cause: int = 1) -> dict[str, np.ndarray]:
    """What a survival regression's imputation models add: the event indicator of the modelled
    cause and the Nelson-Aalen cumulative hazard at each person's time (White & Royston 2009)."""
    from toolkit.analysis.impute import nelson_aalen

    event = (frame["event"].astype(int) == cause).to_numpy(float)
    return {"event": event, "cumhaz": nelson_aalen(frame["time"].to_numpy(float), event)}


def competing_outcome(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Competing risks: an indicator and a cumulative hazard per event code."""
    from toolkit.analysis.impute import nelson_aalen

    codes = frame["event"].astype(int).to_numpy()
    time = frame["time"].to_numpy(float)
    out: dict[str, np.ndarray] = {}
    for k in sorted(set(codes[codes > 0].tolist())):
        event = (codes == k).astype(float)
        out[f"event_{k}"] = event
        out[f"cumhaz_{k}"] = nelson_aalen(time, event)
    return out
