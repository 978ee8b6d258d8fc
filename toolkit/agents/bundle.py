"""Agent bundles: build (atomically), verify (every hash), and list.

A bundle ``<name>-<version>/`` holds ``model/`` (the MLflow pyfunc model), ``manifest.json``,
``agent.yaml``, ``model_card.md``, ``report.html``, ``results.json``, ``reference.json`` (the
development distributions of the inputs and the risk, binned with every bin at least the
minimum cell: what monitoring compares with), ``outcome.json`` (the study's outcome definition:
how monitoring reads matured outcomes from the registry) and ``SHA256SUMS`` over every other
file.  Nothing patient-level goes in: the model's training summaries are aggregates (quantiles,
medians, levels), and the evidence files passed disclosure control.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from toolkit.agents.card import model_card_markdown
from toolkit.agents.contract import AgentContract
from toolkit.errors import AgentError, IntegrityError
from toolkit.io import atomic_dir
from toolkit.study.results import StudyResults

SUMS = "SHA256SUMS"
MODEL_PICKLE = Path("model") / "artifacts" / "risk_model.pkl"
REFERENCE = "reference.json"
OUTCOME = "outcome.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != SUMS)


def write_sums(root: Path) -> str:
    lines = [f"{sha256_file(p)}  {p.relative_to(root).as_posix()}" for p in _files(root)]
    text = "\n".join(lines) + "\n"
    (root / SUMS).write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()


def verify_bundle(root: Path | str) -> str:
    """Check every file against SHA256SUMS; return the bundle hash or raise naming the file."""
    root = Path(root)
    sums = root / SUMS
    if not sums.is_file():
        raise IntegrityError(f"{root}: {SUMS} is missing; this is not a Regent agent bundle")
    text = sums.read_text(encoding="utf-8")
    recorded: dict[str, str] = {}
    for i, line in enumerate(text.splitlines(), start=1):
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            raise IntegrityError(f"{sums}: line {i} is malformed")
        recorded[name] = digest
    present = {p.relative_to(root).as_posix() for p in _files(root)}
    for name in sorted(recorded):
        if name not in present:
            raise IntegrityError(f"{root}: file {name} is listed in {SUMS} but missing")
        if sha256_file(root / name) != recorded[name]:
            raise IntegrityError(f"{root}: file {name} has changed since packaging (sha256 mismatch)")
    extra = sorted(present - set(recorded))
    if extra:
        raise IntegrityError(f"{root}: file {extra[0]} was added after packaging (not in {SUMS})")
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ModelArtifacts:
    """What packaging needs from the tracking store, already downloaded to local paths."""

    model_dir: Path  # the MLflow model directory (MLmodel, artifacts/risk_model.pkl, ...)
    results: StudyResults  # the source run's results.json
    report: Path | None
    run_id: str | None
    registered_model: str | None
    model_version: int | None


def bundle_version(contract: AgentContract, model_version: int | None) -> str:
    return f"{contract.version}.{model_version if model_version is not None else 0}"


def build_bundle(
    contract: AgentContract,
    art: ModelArtifacts,
    dist: Path,
    *,
    model: Any,
    gates: list[dict[str, Any]],
    outcome: dict[str, Any] | None = None,
) -> Path:
    """Build ``dist/<name>-<version>`` atomically and return its path.

    ``outcome`` is the study's outcome definition (``{"cohort", "outcome", "concept_sets"}``),
    written as outcome.json for monitoring; the reference distributions come from the model's
    results.
    """
    version = bundle_version(contract, art.model_version)
    target = Path(dist) / f"{contract.name}-{version}"
    features = list(model.features_in_)
    declared = [i.name for i in contract.inputs]
    missing = [f for f in features if f not in declared]
    if missing:
        raise AgentError(
            f"agent {contract.name}: the model uses inputs {missing} that agent.yaml does not declare "
            f"under 'inputs'; declared: {declared}"
        )
    mres = art.results.models.get(contract.source.model)
    if mres is None:
        raise AgentError(
            f"agent {contract.name}: results.json of run {art.run_id} has no model {contract.source.model!r}"
        )
    if mres.reference is None:
        raise AgentError(
            f"agent {contract.name}: results.json of run {art.run_id} has no reference distributions for "
            f"model {contract.source.model!r} (a run from before monitoring); run the study again: "
            f"regent study run {contract.source.study}"
        )
    manifest = {
        "name": contract.name,
        "version": version,
        "title": contract.title,
        "horizon_days": contract.output.horizon_days,
        "model": {
            "type": mres.type,
            "features": features,
            "registered_model": art.registered_model,
            "model_version": art.model_version,
            "mlflow_run_id": art.run_id,
            "study": art.results.study,
            "study_run_id": art.results.mlflow_run_id,
            "registry_digest": art.results.registry.digest,
            "spec_hash": art.results.spec_hash,
        },
        "inputs": [
            {
                **i.model_dump(mode="json", exclude_none=True),
                "training_range": list(model.training_ranges[i.name])
                if i.name in model.training_ranges
                else None,
                "used_by_model": i.name in features,
            }
            for i in contract.inputs
        ],
        "output": contract.output.model_dump(mode="json"),
        "performance": dict(mres.metrics),
        "gates": gates,
    }
    with atomic_dir(target) as tmp:
        shutil.copytree(art.model_dir, tmp / "model")
        if not (tmp / MODEL_PICKLE).is_file():
            raise AgentError(
                f"{art.model_dir}: not a Regent pyfunc model (no {MODEL_PICKLE.relative_to('model')})"
            )
        (tmp / "manifest.json").write_text(
            json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8"
        )
        (tmp / "agent.yaml").write_text(
            yaml.safe_dump(contract.model_dump(mode="json", exclude_none=True), sort_keys=False),
            encoding="utf-8",
        )
        (tmp / "results.json").write_text(
            json.dumps(art.results.to_json(), indent=2) + "\n", encoding="utf-8"
        )
        (tmp / REFERENCE).write_text(
            json.dumps(mres.reference.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8"
        )
        if outcome is not None:
            (tmp / OUTCOME).write_text(
                json.dumps({**outcome, "horizon_days": contract.output.horizon_days}, indent=2) + "\n",
                encoding="utf-8",
            )
        if art.report is not None:
            shutil.copy(art.report, tmp / "report.html")
        (tmp / "model_card.md").write_text(
            model_card_markdown(contract, manifest, art.results), encoding="utf-8"
        )
        write_sums(tmp)
    return target


def list_bundles(dist: Path | str) -> list[dict[str, Any]]:
    out = []
    for d in sorted(Path(dist).glob("*/manifest.json")):
        m = json.loads(d.read_text(encoding="utf-8"))
        try:
            verify_bundle(d.parent)
            status = "ok"
        except IntegrityError as exc:
            status = f"INVALID: {exc}"
        out.append({"path": str(d.parent), "name": m["name"], "version": m["version"], "status": status})
    return out
