"""``plan_study``: the only parse of a study.  Everything a run needs that follows from study.yaml
alone is settled here, once: the spec with its cohort resolved, the disclosure policy, the spec
hash and the names of the steps.  Pooled runs, federated coordinators and sites, and the CLI all
start from a :class:`StudyPlan`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.cohort.spec import CohortSpec
from toolkit.disclosure import DisclosurePolicy
from toolkit.study.kinds.base import RunContext
from toolkit.study.spec import StudySpec, load_study


def spec_hash(*parts: Any) -> str:
    """First 16 hex digits of a SHA-256 over JSON of ``parts`` (specs, keys of cached steps)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class StudyPlan:
    """A parsed, resolved study: what to run, under which disclosure policy."""

    spec: StudySpec  # with the cohort inline (a CohortSpec, concept-set files read)
    base: Path  # the study folder (relative paths in study.yaml resolve against it)
    source: str  # the study.yaml path, for messages
    policy: DisclosurePolicy  # built once, from disclosure: in study.yaml
    spec_hash: str

    @classmethod
    def of(cls, spec: StudySpec, base: Path, source: str) -> StudyPlan:
        if not isinstance(spec.cohort, CohortSpec):
            raise TypeError("a plan needs the cohort resolved (load_study does it)")
        d = spec.disclosure
        policy = DisclosurePolicy(d.min_cell, d.rounding, d.enabled)
        # defaults left out: a key added to the schema later leaves existing studies' hashes alone
        return cls(spec, base, source, policy, spec_hash(spec.model_dump(mode="json", exclude_defaults=True)))

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def cohort(self) -> CohortSpec:
        assert isinstance(self.spec.cohort, CohortSpec)
        return self.spec.cohort

    @property
    def context(self) -> RunContext:
        """What the analyses take from the study: its data dictionary, its first horizon (the
        default time range of survival figures), its missing-data policy and its seed."""
        from toolkit.cohort.spec import parse_offset
        from toolkit.study.dictionary import dictionary_of

        outcome = self.cohort.outcome
        horizons = [parse_offset(h) for h in outcome.horizons] if outcome is not None else []
        return RunContext(
            dictionary_of(self.spec),
            horizons[0] if horizons else None,
            self.spec.missing,
            self.spec.seed,
        )

    @property
    def steps(self) -> list[str]:
        """The names of the steps a run goes through, in order (for progress)."""
        return [
            "registry",
            "cohort",
            "features",
            *(f"analysis {a.name}" for a in self.spec.analyses),
            *(f"model {m.name}" for m in self.spec.models),
            "report",
        ]


def plan_study(study: Path | str | StudyPlan) -> StudyPlan:
    """Read and resolve ``study`` (a folder or its study.yaml); a plan passes through unchanged."""
    if isinstance(study, StudyPlan):
        return study
    spec, base = load_study(study)
    path = Path(study)
    source = str(path / "study.yaml" if path.is_dir() else path)
    return StudyPlan.of(spec, base, source)


def plan_from_spec(spec: StudySpec, *, source: str, base: Path | None = None) -> StudyPlan:
    """A plan from a spec already resolved elsewhere (a federated site receives it as JSON)."""
    return StudyPlan.of(spec, base or Path.cwd(), source)
