"""Regent: from disease registries to validated, deployable clinical agents.

The public Python API, in pipeline order::

    registry  ->  cohort  ->  features  ->  analysis  ->  study  ->  agents  ->  serve

Names are imported on first use, so ``import toolkit`` (and every ``regent`` command) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Agent": "toolkit.agents.load",
    "Prediction": "toolkit.agents.load",
    "table1": "toolkit.analysis.describe",
    "fit_aft": "toolkit.analysis.survival.aft",
    "cumulative_incidence": "toolkit.analysis.survival.cif",
    "fit_cox": "toolkit.analysis.survival.cox",
    "fine_gray": "toolkit.analysis.survival.finegray",
    "gray_test": "toolkit.analysis.survival.gray",
    "kaplan_meier": "toolkit.analysis.survival.km",
    "logrank_test": "toolkit.analysis.survival.logrank",
    "rmst": "toolkit.analysis.survival.rmst",
    "CohortResult": "toolkit.cohort.run",
    "run_cohort": "toolkit.cohort.run",
    "CohortSpec": "toolkit.cohort.spec",
    "load_cohort": "toolkit.cohort.spec",
    "ToolkitError": "toolkit.errors",
    "Registry": "toolkit.registry",
    "check_registry": "toolkit.registry",
    "StudyRun": "toolkit.study.runner",
    "run_study": "toolkit.study.runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
