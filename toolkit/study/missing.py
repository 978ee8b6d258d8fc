"""``missing:`` in study.yaml: what the regression analyses (``cox``, ``logistic``, ``aft``,
``fine_gray``) do with persons who lack a covariate.

* ``complete_case`` (the default): they are left out, and the report states how many were left
  out and which variables they lacked.
* ``multiple_imputation``: every incomplete covariate is imputed ``imputations`` times by
  chained equations with predictive mean matching (statsmodels' ``MICEData``, the algorithm of
  R's ``mice``), the outcome entering each imputation model (the event indicator and the
  Nelson–Aalen cumulative hazard, White & Royston 2009); the analysis is fitted on each completed
  data set and the estimates are pooled by Rubin's rules (:mod:`toolkit.analysis.impute`).

The prediction models are not affected: they impute with training-fold medians inside the
cross-validation (stated in the report).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from toolkit.specs import Frozen


class MissingSpec(Frozen):
    """How the regression analyses handle persons with a missing covariate."""

    method: Literal["complete_case", "multiple_imputation"] = Field(
        "complete_case",
        description="complete_case: leave incomplete persons out (the report says how many); "
        "multiple_imputation: impute by chained equations (statsmodels MICEData, predictive mean "
        "matching) and pool by Rubin's rules.",
    )
    imputations: int = Field(20, ge=2, le=200, description="Completed data sets (m).")
    iterations: int = Field(
        10, ge=1, le=100, description="Chained-equation cycles before each data set is kept."
    )
