"""Single-patient scoring without pandas: the serving hot path.

``RiskModel.predict_risk`` and ``contributions`` take a frame; building and grouping a
one-row frame costs ~20 ms on two cores, most of a CDS Hooks call's budget.  For a Cox model
the design transform is a handful of arithmetic operations per input, so
:func:`compile_row_scorer` turns the fitted model into plain arrays and computes the same risk
and per-input contributions directly.  It mirrors :class:`~toolkit.analysis.predict.models.
Preprocessor` (log inputs, median fill, missing indicators, one-hot levels after the first,
standardisation).  :meth:`RowScorer.agrees_with` checks it against the frame path; the agent
loader uses the compiled scorer only when it agrees on a probe row, otherwise the frame path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from toolkit.analysis.predict.models import CoxRiskModel, RiskModel


@dataclass(frozen=True)
class RowScorer:
    """Risk and per-input contributions of a Cox risk model for one row of validated values."""

    numeric: tuple[tuple[str, bool, float], ...]  # (input, on log scale, fill value)
    missing_ind: tuple[str, ...]
    categorical: tuple[tuple[str, tuple[str, ...]], ...]  # (input, levels after the reference)
    means: np.ndarray
    scales: np.ndarray
    coef: np.ndarray
    owner: tuple[int, ...]  # design column -> index into ``features``
    features: tuple[str, ...]  # model inputs in ``features_in_`` order, as contributions()
    h0: float

    def design(self, values: Mapping[str, Any]) -> np.ndarray:
        raw: list[float] = []
        for name, logged, fill in self.numeric:
            v = values.get(name)
            x = math.nan if v is None else float(v)
            if logged:
                x = math.log(x) if x > 0 else math.nan
            raw.append(fill if math.isnan(x) else x)
        for name in self.missing_ind:
            v = values.get(name)
            raw.append(1.0 if v is None or (isinstance(v, float) and math.isnan(v)) else 0.0)
        for name, levels in self.categorical:
            v = values.get(name)
            s = None if v is None else str(v)
            raw.extend(1.0 if s == level else 0.0 for level in levels)
        return (np.asarray(raw, float) - self.means) / self.scales

    def score(self, values: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
        """(risk at the horizon, {input: contribution on the log-hazard scale})."""
        terms = self.design(values) * self.coef
        lp = float(terms.sum())
        per = [0.0] * len(self.features)
        for j, t in zip(self.owner, terms.tolist(), strict=True):
            per[j] += t
        risk = 1.0 - math.exp(-self.h0 * math.exp(lp))
        return risk, dict(zip(self.features, per, strict=True))

    def agrees_with(self, model: RiskModel, values: Mapping[str, Any], *, tol: float = 1e-9) -> bool:
        """True when this scorer reproduces the model's frame path on ``values``."""
        row = pd.DataFrame([{f: values.get(f) for f in model.features_in_}])
        risk = float(model.predict_risk(row)[0])
        contrib = model.contributions(row).iloc[0]
        mine_risk, mine = self.score(values)
        if list(mine) != [str(k) for k in contrib.index] or not math.isclose(mine_risk, risk, abs_tol=tol):
            return False
        return all(math.isclose(mine[str(k)], float(contrib[k]), abs_tol=tol) for k in contrib.index)


def compile_row_scorer(model: RiskModel) -> RowScorer | None:
    """A :class:`RowScorer` for a fitted Cox risk model; ``None`` for other model kinds."""
    if type(model) is not CoxRiskModel:
        return None
    pre = model.pre_
    if pre.means_ is None or pre.scales_ is None or getattr(pre, "spline_", None):
        return None  # spline bases (and anything newer) take the frame path
    numeric = tuple((c, c in pre.log, float(pre.medians_[c])) for c in pre.numeric_)
    categorical = tuple((c, tuple(levels[1:])) for c, levels in pre.categorical_.items())
    names = (
        [f"log_{c}" if c in pre.log else c for c in pre.numeric_]
        + [f"{c}_missing" for c in pre.with_missing_]
        + [f"{c}={lv}" for c, levels in categorical for lv in levels]
    )
    features = [str(f) for f in model.features_in_]
    owners = [pre.feature_of(n) for n in names]
    if names != list(pre.names_) or any(o not in features for o in owners) or len(names) != len(model.coef_):
        return None  # a design this scorer does not reproduce
    used = [f for f in features if f in owners]
    return RowScorer(
        numeric=numeric,
        missing_ind=tuple(pre.with_missing_),
        categorical=categorical,
        means=np.asarray(pre.means_, float),
        scales=np.asarray(pre.scales_, float),
        coef=np.asarray(model.coef_, float),
        owner=tuple(used.index(o) for o in owners),
        features=tuple(used),
        h0=model._h0(model.horizon),
    )


def probe_rows(model: RiskModel) -> list[dict[str, Any]]:
    """Rows that exercise every design column: each training range's ends and every level."""
    pre = model.pre_
    width = max([len(levels) for levels in pre.categorical_.values()] + [2])
    rows: list[dict[str, Any]] = []
    for k in range(width):
        row: dict[str, Any] = {}
        for c in pre.numeric_:
            lo, hi = pre.ranges_.get(c, (1.0, 2.0))
            row[c] = float(lo if k % 2 == 0 else hi)
        for c, levels in pre.categorical_.items():
            row[c] = levels[k % len(levels)]
        rows.append(row)
    return rows


def verified_row_scorer(model: RiskModel) -> RowScorer | None:
    """The compiled scorer if it reproduces the frame path on :func:`probe_rows`, else ``None``."""
    try:
        scorer = compile_row_scorer(model)
        if scorer is None:
            return None
        return scorer if all(scorer.agrees_with(model, r) for r in probe_rows(model)) else None
    except Exception:  # a model this scorer does not know: the frame path decides, and raises
        return None
