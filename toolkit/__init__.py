"""Regent: from disease registries to validated, deployable clinical agents.

The public Python API, in pipeline order::

    registry  ->  cohort  ->  features  ->  analysis  ->  study  ->  agents  ->  serve
"""

from toolkit.agents.load import Agent, Prediction
from toolkit.analysis.describe import table1
from toolkit.analysis.survival.cif import cumulative_incidence
from toolkit.analysis.survival.cox import fit_cox
from toolkit.analysis.survival.finegray import fine_gray
from toolkit.analysis.survival.gray import gray_test
from toolkit.analysis.survival.km import kaplan_meier
from toolkit.analysis.survival.logrank import logrank_test
from toolkit.analysis.survival.rmst import rmst
from toolkit.cohort.run import CohortResult, run_cohort
from toolkit.cohort.spec import CohortSpec, load_cohort
from toolkit.errors import ToolkitError
from toolkit.registry import Registry, check_registry
from toolkit.study.runner import StudyRun, run_study

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "CohortResult",
    "CohortSpec",
    "Prediction",
    "Registry",
    "StudyRun",
    "ToolkitError",
    "check_registry",
    "cumulative_incidence",
    "fine_gray",
    "fit_cox",
    "gray_test",
    "kaplan_meier",
    "load_cohort",
    "logrank_test",
    "rmst",
    "run_cohort",
    "run_study",
    "table1",
]
