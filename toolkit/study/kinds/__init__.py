"""The registry of analysis kinds: one module per kind declares everything about it
(:class:`~toolkit.study.kinds.base.AnalysisKind`); this module generates the rest from them.

* :data:`Analysis`, the ``analyses`` union of study.yaml (discriminated by ``type``);
* :func:`column_problems`, the reference checks of every analysis;
* :func:`run_analysis`, the study step;
* the ``regent analyze`` subcommands (:mod:`toolkit.cli.analyze` reads :data:`KINDS`);
* the report sections (``templates/kinds/<template>``);
* the federated run's protocol per kind, or the reason there is none (:mod:`toolkit.federated`).

To add a kind: write its module here and list its ``KIND`` below; nothing else changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field

from toolkit.errors import StudySpecError
from toolkit.study.kinds import ablation, aft, cif, cox, fine_gray, km, logistic, logrank, rmst, table1
from toolkit.study.kinds.base import AnalysisKind, AnalysisOutput, AnalysisSpec, RunContext

KINDS: dict[str, AnalysisKind] = {
    k.type: k
    for k in (
        km.KIND,
        cox.KIND,
        table1.KIND,
        logrank.KIND,
        rmst.KIND,
        cif.KIND,
        fine_gray.KIND,
        logistic.KIND,
        ablation.KIND,
        aft.KIND,
    )
}

#: The ``analyses`` entries of study.yaml: one spec class per kind, told apart by ``type``.
#: (Type checkers see the common base; pydantic sees the generated union.)
if TYPE_CHECKING:
    import pandas as pd

    from toolkit.disclosure import DisclosurePolicy
    from toolkit.disclosure.joint import Tabulation

    Analysis = AnalysisSpec
else:
    Analysis = Annotated[Union[tuple(k.spec for k in KINDS.values())], Field(discriminator="type")]  # noqa: UP007


def kind_of(analysis: Any) -> AnalysisKind:
    kind = KINDS.get(getattr(analysis, "type", None) or "")
    if kind is None:
        raise StudySpecError(f"no analysis kind {getattr(analysis, 'type', None)!r}; known: {sorted(KINDS)}")
    return kind


def run_analysis(
    analysis: Any, frame: pd.DataFrame, policy: DisclosurePolicy, context: RunContext | None = None
) -> AnalysisOutput:
    """Run one analysis of a study on its cohort+features frame: (results.json entry, plots);
    ``context``: the study's dictionary, horizon and missing-data policy (:class:`RunContext`)."""
    return kind_of(analysis).run(analysis, frame, policy, context or RunContext())


def column_problems(analyses: list[Any], columns: list[str], *, source: str) -> list[str]:
    """Every column an analysis names that the frame will not have, as ``key: problem`` lines."""
    known = set(columns)
    problems = []
    for i, a in enumerate(analyses):
        for key, name in kind_of(a).columns(a):
            if name not in known:
                problems.append(
                    f"{source}: analyses[{i}].{key}: unknown column {name!r}; available: {sorted(known)}"
                )
    return problems


def run_tabulations(spec: Any, frame: pd.DataFrame) -> list[Tabulation]:
    """Every count the run's tables show (:mod:`toolkit.disclosure.joint`): each analysis's, and
    each model's subgroup table (persons and events per level of the cohort's subgroups, when the
    models are developed on the whole cohort)."""
    from toolkit.disclosure.joint import Partition

    out: list[Tabulation] = []
    for a in spec.analyses:
        shows = kind_of(a).shows
        if shows is not None:
            out += list(shows(a, frame))
    if spec.models and spec.validation.external is None:
        out += [
            Partition(str(v), with_missing=True)
            for v in getattr(spec.cohort, "subgroups", [])
            if v in frame.columns
        ]
    return list(dict.fromkeys(out))


def run_policy(spec: Any, frame: pd.DataFrame, policy: DisclosurePolicy) -> DisclosurePolicy:
    """The policy every table of the run uses: ``policy`` with the statuses of all the counts the
    run shows, decided at once (:meth:`DisclosurePolicy.for_run`)."""
    return policy.for_run(frame, run_tabulations(spec, frame))


def protocols() -> dict[str, str]:
    """Kind -> the federated protocol that computes it (kinds without one are not listed)."""
    return {t: k.protocol for t, k in KINDS.items() if k.protocol is not None}


def not_federated() -> dict[str, str]:
    """Kind -> why a federated run does not compute it."""
    return {t: k.not_federated for t, k in KINDS.items() if k.not_federated is not None}


__all__ = [
    "KINDS",
    "Analysis",
    "AnalysisKind",
    "RunContext",
    "column_problems",
    "kind_of",
    "not_federated",
    "protocols",
    "run_analysis",
    "run_policy",
    "run_tabulations",
]
