"""Counts that say what they count: the sentences the report, the model card, the TRIPOD+AI
checklist and MLflow use for a horizon model's events (one wording, read from results.json).

A horizon model has two event counts and they differ: the events its fit uses (a survival model:
every event over follow-up; a binary model: the events by the horizon) and the events by the
horizon among the persons evaluable at it, on which AUROC, Brier, calibration and net benefit at
the horizon rest (:mod:`toolkit.analysis.predict.counts`).
"""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.analysis.predict.counts import FIT_DEFINITION
from toolkit.study.results import Horizon, ModelResult

EVALUABLE_DEFINITION = (
    "evaluable at the horizon: persons whose status then is known (the outcome by the horizon, "
    "outcome-free at it, or a competing event before it); persons censored earlier are not"
)


def count(value: int | None) -> str:
    """A released count with thousands separators; a withheld one (null) reads ``withheld``."""
    return "withheld" if value is None else f"{int(value):,}"


def days(value: float) -> str:
    return f"{float(value):g} days"


@dataclass(frozen=True)
class ModelCounts:
    """What one model's numbers rest on, in words."""

    fit: str  # the events the fit uses, with events per parameter
    horizon: str  # the events and persons the evaluation at the horizon uses
    definition: str  # how both are defined

    def lines(self) -> list[str]:
        return [self.fit, self.horizon, self.definition]


def _of(m: ModelResult, key: str) -> str:
    """A model's count; ``not recorded`` when its results predate the field (older runs)."""
    return count(getattr(m, key)) if key in m.model_fields_set else "not recorded"


def model_counts(m: ModelResult, outcome: str = "outcome") -> ModelCounts:
    """The sentences for model ``m`` (``outcome``: the cohort's outcome name, e.g. ``death``)."""
    h = days(m.horizon_days)
    n_fit = m.n_fit if m.n_fit is not None or m.task == "binary" else m.n
    events_fit = m.events_fit if m.events_fit is not None or m.task == "binary" else m.events
    where = "over all follow-up" if m.task != "binary" else f"by {h}"
    fit = f"Fitted on {count(events_fit)} {outcome} events {where} in {count(n_fit)} persons"
    if m.parameters:
        epp = "withheld" if m.events_per_parameter is None else f"{m.events_per_parameter:.1f}"
        fit += f": {epp} events per candidate parameter ({m.parameters} parameters)"
    horizon = (
        f"Evaluated at {h} on {_of(m, 'events_at_horizon')} {outcome} events by {h} among "
        f"{count(m.n_evaluable)} persons evaluable at {h}"
    )
    definition = (
        f"Events for fitting: {FIT_DEFINITION.get(m.task, FIT_DEFINITION['survival'])}; "
        f"{EVALUABLE_DEFINITION}."
    )
    return ModelCounts(fit + ".", horizon + ".", definition)


def horizon_counts(h: Horizon, outcome: str = "outcome") -> str:
    """The cohort's count at one horizon, from its label column."""
    return (
        f"{count(h.events_at_horizon)} {outcome} events by {days(h.days)} among "
        f"{count(h.n_evaluable)} persons evaluable at {days(h.days)}"
    )
