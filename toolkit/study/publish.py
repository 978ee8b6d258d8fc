"""Publishing a run: results assembled under disclosure control, then written all at once.

Every executor (the pooled runner, the federated coordinator, the scale-out engine) ends here:
:func:`assemble_results` builds the typed :class:`StudyResults` (every count passed through the
study's disclosure policy, the attrition controlled once), and :func:`publish` writes
``OUT/artifacts`` atomically (results.json, report.html, attrition.csv, the resolved study.yaml,
plots and tables), copies the two files users look for to the top of ``OUT``, and hands the
artifacts and metrics to the tracker.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from toolkit.cohort.run import Attrition
from toolkit.disclosure import COUNT_KEYS
from toolkit.errors import DisclosureError
from toolkit.io import atomic_dir, atomic_write_json
from toolkit.study.plan import StudyPlan
from toolkit.study.results import RESULTS_SCHEMA_VERSION, StudyResults
from toolkit.study.tracker import NullTracker, Tracker


def code_version() -> dict[str, str]:
    """The toolkit checkout's commit and whether tracked files were modified."""
    root = Path(__file__).resolve().parents[2]
    try:
        git = ["git", "-C", str(root)]
        sha = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        return {"git_sha": sha.stdout.strip(), "git_dirty": str(bool(dirty.stdout.strip())).lower()}
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import version

        return {"git_sha": "unknown", "git_dirty": "unknown", "package_version": version("regent-toolkit")}


def clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if not np.isfinite(value) else float(value)
    return value


def check_releasable(plan: StudyPlan, n: int) -> None:
    """Stop a run whose cohort nothing could be released about, with one line saying why."""
    policy = plan.policy
    if n == 0:
        raise DisclosureError(
            f"study {plan.name!r}: the cohort is empty (no person meets its criteria); nothing to analyse"
        )
    if policy.is_small(n):
        raise DisclosureError(
            f"study {plan.name!r}: the cohort has fewer than {policy.min_cell} persons (disclosure.min_cell); "
            "no result could be released"
        )


@dataclass(frozen=True)
class CohortSummary:
    """What results.json says of the cohort, before disclosure control."""

    name: str
    n: int
    events: int
    horizons: tuple[tuple[str, float], ...]
    attrition: pd.DataFrame  # step, kind, n, removed, entries, events
    #: label column -> {n_evaluable, events_at_horizon}, released (a pooled run counts its labels)
    horizon_counts: Mapping[str, Mapping[str, int | None]] = field(default_factory=dict)


def assemble_results(
    plan: StudyPlan,
    cohort: CohortSummary,
    *,
    registry: Mapping[str, str],
    analyses: Mapping[str, Any],
    models: Mapping[str, Any],
    data_quality: list[dict[str, Any]],
    run_id: str | None,
    federated: Mapping[str, Any] | None = None,
) -> StudyResults:
    """The run's results, every count released under the plan's disclosure policy."""
    policy = plan.policy
    raw: dict[str, Any] = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "study": plan.name,
        "title": plan.spec.title,
        "mlflow_run_id": run_id,
        "registry": dict(registry),
        "spec_hash": plan.spec_hash,
        "code_version": code_version(),
        "seed": plan.spec.seed,
        "disclosure": {"min_cell": policy.min_cell, "rounding": policy.rounding, "enabled": policy.enabled},
        "cohort": {
            "name": cohort.name,
            "n": cohort.n,
            "events": policy.cohort_events(cohort.n, cohort.events)[0],
            "horizons": [
                {"name": n, "days": d, **cohort.horizon_counts.get(n, {})} for n, d in cohort.horizons
            ],
            "attrition": [],
        },
        "analyses": dict(analyses),
        "models": dict(models),
        "data_quality": data_quality,
    }
    if federated is not None:
        raw["federated"] = dict(federated)
    released = clean(policy.scrub(raw, COUNT_KEYS))
    released["cohort"]["attrition"] = attrition_rows(plan, cohort.attrition)
    return StudyResults.model_validate(released)


def attrition_rows(plan: StudyPlan, table: pd.DataFrame) -> list[dict[str, Any]]:
    """The attrition as results.json holds it: disclosure-controlled once, here."""
    controlled = plan.policy.attrition(table)
    controlled = controlled.astype(object).where(controlled.notna(), None)
    hidden = plan.policy.attrition_status(table) if plan.policy.enabled else {}
    keys = ("step", "kind", "n", "removed", "events")
    rows = []
    for i, r in enumerate(controlled.to_dict("records")):
        row = clean({k: r[k] for k in keys})
        marks = {c: st for (j, c), st in hidden.items() if j == i and c in keys}
        if marks:
            row["suppressed"] = marks
        rows.append(row)
    return rows


def publish(
    plan: StudyPlan,
    results: StudyResults,
    *,
    out: Path,
    plots: Mapping[str, bytes],
    attrition: pd.DataFrame,
    tables: Mapping[str, pd.DataFrame] | None = None,
    tracker: Tracker | None = None,
) -> None:
    """Write OUT/artifacts atomically and the two top files; log the artifacts to the tracker."""
    from toolkit.study.report import render_report

    tracker = tracker or NullTracker()
    policy = plan.policy
    with atomic_dir(out / "artifacts") as tmp:
        atomic_write_json(tmp / "results.json", results.to_json())
        (tmp / "report.html").write_text(
            render_report(plan.spec, results, dict(plots), policy, Attrition(attrition)),
            encoding="utf-8",
        )
        policy.attrition(attrition, markers=True).to_csv(tmp / "attrition.csv", index=False)
        (tmp / "study.yaml").write_text(study_yaml(plan), encoding="utf-8")
        for name, png in plots.items():
            (tmp / f"{name}.png").write_bytes(png)  # what MLflow and notebooks show
            svg = getattr(png, "svg", "")  # toolkit.analysis.figure.Plot: the report's vector copy
            if svg:
                (tmp / f"{name}.svg").write_text(svg, encoding="utf-8")
        for name, frame in (tables or {}).items():
            frame.to_csv(tmp / f"{name}.csv", index=False)
    for f in sorted((out / "artifacts").iterdir()):
        tracker.log_artifact(f)
    for name in ("results.json", "report.html"):
        tmp_file = out / f".{name}.tmp"
        tmp_file.write_bytes((out / "artifacts" / name).read_bytes())
        tmp_file.replace(out / name)


def study_yaml(plan: StudyPlan) -> str:
    """The resolved study (cohort inline) as YAML: what the run actually ran."""
    import yaml

    return yaml.safe_dump(
        plan.spec.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False
    )


def result_tables(results: StudyResults) -> dict[str, pd.DataFrame]:
    """The CSV artifacts besides attrition: each ablation's sets, the data-quality counts."""
    tables = {
        f"ablation_{name}": pd.DataFrame(entry["sets"])
        for name, entry in results.analyses.items()
        if entry.get("kind") == "ablation"
    }
    if results.data_quality:
        tables["data_quality"] = pd.DataFrame([r.model_dump() for r in results.data_quality])
    return tables


def flat_metrics(results: StudyResults) -> dict[str, float]:
    """Every model metric and ablation C-index as ``<model>.<metric>`` for the tracker."""
    out = {
        f"{name}.{k}": float(v)
        for name, m in results.models.items()
        for k, v in m.metrics.items()
        if isinstance(v, int | float)
    }
    for name, entry in results.analyses.items():
        if entry.get("kind") == "ablation":
            out.update(
                {f"ablation.{name}.{row['set']}.c_index": float(row["c_index"]) for row in entry["sets"]}
            )
    return out
