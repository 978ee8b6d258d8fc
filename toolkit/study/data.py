"""The data stage: a plan and a registry in, the cohort and its feature matrix out.

:func:`compile_study` checks the plan against the registry (the cohort compiles; every column a
feature, analysis or model names exists) before anything is computed.  :func:`build_study_data`
then runs the cohort and builds the features (structured, notes, images).  A pooled run, a
federated site and the scale-out engine all get their :class:`StudyData` from here.

A run passes a :class:`StepCache` to re-use finished steps: a step's key is a hash of its own
spec and of its inputs' keys, so changing a model never rebuilds the cohort.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from toolkit.cohort.compile import CompiledCohort, compile_cohort
from toolkit.cohort.run import Backend, CohortResult, as_backend, execute
from toolkit.cohort.spec import parse_offset
from toolkit.errors import SpecWarning
from toolkit.features.fusion import build_features
from toolkit.registry.store import Registry
from toolkit.study.plan import StudyPlan, spec_hash
from toolkit.study.spec import validate_references


class StepCache(Protocol):
    """Where a run keeps finished steps (``toolkit.study.runner`` keeps them under OUT/.cache)."""

    def get(self, key: str) -> Any | None: ...

    def put(self, key: str, value: Any) -> None: ...


@dataclass(frozen=True)
class CompiledStudy:
    """A plan checked against one registry: the compiled cohort and the registry's identity."""

    plan: StudyPlan
    cohort: CompiledCohort
    digest: str
    attributes: dict[str, str]


@dataclass(frozen=True)
class StudyData:
    """The cohort and the one-row-per-index feature matrix every analysis and model reads."""

    cohort: CohortResult
    frame: pd.DataFrame
    quality: list[dict[str, Any]]  # data-quality counts per modality and issue (no identifiers)
    digest: str
    attributes: dict[str, str]
    cohort_key: str
    features_key: str
    computed: list[str] = field(default_factory=list)  # the steps this call computed (not cached)


def compile_study(plan: StudyPlan, registry: Registry | Backend) -> CompiledStudy:
    """Compile the cohort for this registry and check every name the study uses.

    ``registry`` is an open :class:`Registry` (DuckDB: a file or a Parquet lake) or a backend
    (``toolkit.cohort.spark.SparkBackend`` on a lake): the same stage runs on either engine.
    """
    backend = as_backend(registry)
    attributes = backend.attributes()
    compiled = compile_cohort(plan.cohort, attributes=attributes, source=f"{plan.source}: cohort")
    validate_references(plan.spec, source=plan.source, cohort_columns=list(compiled.columns))
    return CompiledStudy(plan, compiled, backend.digest(), attributes)


def build_study_data(
    plan: StudyPlan,
    registry: Registry | Backend,
    *,
    compiled: CompiledStudy | None = None,
    cache: StepCache | None = None,
    on_step: Callable[[str], object] | None = None,
) -> StudyData:
    """Run the cohort and build the features; ``on_step`` hears ``cohort`` and ``features`` as each
    starts and ``cohort done``/``features done`` as each ends (progress, resume state, tests)."""
    c = compiled or compile_study(plan, registry)
    say = on_step or (lambda _s: None)
    computed: list[str] = []
    say("cohort")
    ckey = "cohort-" + spec_hash(plan.cohort.model_dump(mode="json"), c.digest)
    cohort = cache.get(ckey) if cache else None
    if cohort is None:
        cohort = execute(c.cohort, as_backend(registry))
        if cache:
            cache.put(ckey, cohort)
        computed.append("cohort")
    warn_beyond_follow_up(plan, cohort)
    say("cohort done")
    say("features")
    fkey = "features-v2-" + spec_hash(
        plan.spec.features.model_dump(mode="json"), plan.cohort.model_dump(mode="json")["concept_sets"], ckey
    )
    hit = cache.get(fkey) if cache else None
    if hit is None:
        fused = build_features(
            cohort.cohort,
            registry,
            plan.spec.features,
            concept_sets={k: v for k, v in plan.cohort.concept_sets.items() if isinstance(v, list)},
            source=f"{plan.source}: features",
            base=plan.base,
            progress=lambda part: say(f"features: {part}"),
        )
        hit = (fused.frame, fused.quality_counts().to_dict("records"))
        if cache:
            cache.put(fkey, hit)
        computed.append("features")
    say("features done")
    frame, quality = hit
    return StudyData(cohort, frame, quality, c.digest, c.attributes, ckey, fkey, computed)


def horizons(plan: StudyPlan) -> Iterator[tuple[str, float]]:
    """Every time point the study evaluates at, with its study.yaml key: cohort horizons, model
    horizons, and the horizons, tau and reporting times of analyses."""
    out = plan.cohort.outcome
    for i, h in enumerate(out.horizons if out is not None else []):
        yield f"cohort.outcome.horizons[{i}]", parse_offset(h)
    for i, m in enumerate(plan.spec.models):
        yield f"models[{i}].horizon", m.horizon_days
    for i, a in enumerate(plan.spec.analyses):
        for key in ("horizon", "tau"):
            if getattr(a, key, None) is not None:
                yield f"analyses[{i}].{key}", parse_offset(getattr(a, key))
        for j, t in enumerate(getattr(a, "times", None) or []):
            yield f"analyses[{i}].times[{j}]", float(t)


def warn_beyond_follow_up(plan: StudyPlan, cohort: CohortResult) -> list[str]:
    """Warn (:class:`SpecWarning`) for each horizon beyond the cohort's longest follow-up: nobody
    is observed that long, so nothing evaluated there rests on data.  Returns the messages."""
    frame = cohort.cohort
    if "time" not in frame.columns or frame.empty:
        return []
    longest = float(pd.to_numeric(frame["time"], errors="coerce").max())
    messages = [
        f"{plan.source}: {key}: {days:g} days lies beyond the follow-up of every person in the "
        "cohort; estimates at this time rest on no one observed that long"
        for key, days in horizons(plan)
        if days > longest
    ]
    for msg in messages:
        warnings.warn(SpecWarning(msg), stacklevel=2)
    return messages
