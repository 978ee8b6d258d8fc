"""Packaging: contract + validated model + evidence -> a versioned, integrity-checked bundle."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolkit.agents.bundle import MODEL_PICKLE, ModelArtifacts, build_bundle, bundle_version, verify_bundle
from toolkit.agents.contract import AgentContract, ModelSource, load_contract
from toolkit.agents.gate import check_gates
from toolkit.errors import AgentError, IntegrityError
from toolkit.study.spec import load_study

DEFAULT_DIST = Path("dist") / "agents"


def registered_name(source: ModelSource, study_name: str) -> str:
    return source.registered_model or f"{study_name}.{source.model}"


def package_agent(
    contract_dir: Path | str,
    fetch: Callable[[ModelSource, str], ModelArtifacts],
    *,
    dist: Path | str = DEFAULT_DIST,
    repo_root: Path | str = ".",
) -> tuple[Path, AgentContract, ModelArtifacts]:
    """Check the study's gates against the source run, then build the bundle.

    ``fetch(source, registered_name)`` downloads the model and its run's evidence (the CLI
    passes the MLflow implementation).  A failing gate raises :class:`GateError`.
    """
    contract = load_contract(contract_dir)
    study_path = Path(repo_root) / contract.source.study
    spec, _ = load_study(study_path)
    if contract.source.model not in [m.name for m in spec.models]:
        raise AgentError(
            f"{Path(contract_dir) / 'agent.yaml'}: source.model: study {spec.name!r} has no model "
            f"{contract.source.model!r}; available: {[m.name for m in spec.models]}"
        )
    art = fetch(contract.source, registered_name(contract.source, spec.name))
    gates = check_gates(list(spec.gates), contract.source.model, art.results)
    target = Path(dist) / f"{contract.name}-{bundle_version(contract, art.model_version)}"
    if target.exists():
        try:
            verify_bundle(target)
            return target, contract, art  # same contract version and model version: already built
        except IntegrityError:
            pass  # a damaged bundle of this version is rebuilt
    with (art.model_dir / MODEL_PICKLE.relative_to("model")).open("rb") as fh:
        model = pickle.load(fh)  # from our own tracking store
    path = build_bundle(
        contract, art, Path(dist), model=model, gates=gates, outcome=outcome_definition(spec.cohort)
    )
    return path, contract, art


def outcome_definition(cohort: object) -> dict[str, Any] | None:
    """The cohort's outcome and the concept sets it names, as JSON (the bundle's outcome.json)."""
    from toolkit.cohort.spec import CohortSpec

    if not isinstance(cohort, CohortSpec) or cohort.outcome is None:
        return None
    return {
        "cohort": cohort.name,
        "outcome": cohort.outcome.model_dump(mode="json"),
        "concept_sets": {k: v for k, v in cohort.model_dump(mode="json")["concept_sets"].items()},
    }
