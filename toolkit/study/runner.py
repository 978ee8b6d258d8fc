"""The study runner: named steps with content-hash caching, tracked, ending in results.json and a report.

Steps: registry -> cohort -> features -> analyses -> models -> report.  Each step's output is
cached under ``OUT/.cache`` by a hash of its own spec and its inputs' hashes, so re-running after
changing only a model re-uses the cohort and the features, and a crashed run resumes from the
last finished step.  A failing step ends the tracker's run as FAILED with the error.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from toolkit.analysis.predict.models import RiskModel
from toolkit.cohort.compile import compile_cohort
from toolkit.cohort.run import CohortResult, DuckDBBackend, execute
from toolkit.cohort.spec import CohortSpec
from toolkit.errors import ToolkitError
from toolkit.features.windows import feature_matrix, window_features
from toolkit.io import atomic_dir, atomic_write_json
from toolkit.privacy.disclosure import COUNT_KEYS, DisclosurePolicy
from toolkit.registry.store import Registry
from toolkit.study.spec import StudySpec, load_study
from toolkit.study.steps import run_analysis, run_model
from toolkit.study.tracker import NullTracker, Tracker

RESULTS_SCHEMA_VERSION = "1.1"


def _hash(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


def data_dir() -> Path:
    return Path(os.environ.get("REGENT_DATA", "data"))


def resolve_registry(spec: StudySpec, base: Path, override: Path | None = None) -> tuple[Path, str]:
    """The registry file a study uses (building shipped or synthetic registries on first use)."""
    if override is not None:
        return Path(override), str(override)
    src = spec.registry
    if src.path is not None:
        p = Path(src.path)
        return (p if p.is_absolute() else base / p), src.path
    if src.dataset is not None:
        from toolkit.registry.importers.datasets import import_dataset

        out = data_dir() / "registries" / f"{src.dataset}.duckdb"
        if not out.exists():
            import_dataset(src.dataset, out)
        return out, f"dataset:{src.dataset}"
    assert src.synthetic is not None
    from toolkit.registry.synth.heart_failure import SynthConfig, synthesize

    s = src.synthetic
    out = data_dir() / "registries" / f"synthetic-hf-p{s.patients}-s{s.sites}-seed{s.seed}.duckdb"
    if not out.exists():
        synthesize(out, SynthConfig(s.patients, s.sites, s.seed))
    return out, f"synthetic:patients={s.patients},sites={s.sites},seed={s.seed}"


def code_version() -> dict[str, str]:
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        return {"git_sha": sha, "git_dirty": str(bool(dirty)).lower()}
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import version

        return {"git_sha": "unknown", "git_dirty": "unknown", "package_version": version("regent-toolkit")}


@dataclass
class StudyRun:
    """Everything a run produced; notebooks display it, the CLI prints its paths."""

    spec: StudySpec
    out: Path
    results: dict[str, Any]
    cohort: CohortResult
    frame: pd.DataFrame
    models: dict[str, RiskModel]
    plots: dict[str, bytes]
    computed: list[str] = field(default_factory=list)
    run_id: str | None = None

    @property
    def report_path(self) -> Path:
        return self.out / "report.html"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{name}</td><td>{m['type']}</td><td>{m['metrics'].get('c_harrell_mean', float('nan')):.3f} "
            f"({m['metrics'].get('c_harrell_lower', float('nan')):.3f}–{m['metrics'].get('c_harrell_upper', float('nan')):.3f})</td></tr>"
            for name, m in self.results["models"].items()
        )
        return (
            f"<h3>{self.spec.title or self.spec.name}</h3><p>Cohort: {self.results['cohort']['n']} persons; "
            f"run {self.run_id or '(untracked)'}; report: {self.report_path}</p>"
            f"<table><tr><th>model</th><th>type</th><th>CV C-index (95% CI)</th></tr>{rows}</table>"
        )


class _Cache:
    def __init__(self, root: Path, enabled: bool) -> None:
        self.root = root / ".cache"
        self.enabled = enabled
        self.root.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> Any | None:
        p = self.root / f"{key}.pkl"
        if not self.enabled or not p.exists():
            return None
        with p.open("rb") as fh:
            return pickle.load(fh)  # our own cache files, written below

    def put(self, key: str, value: Any) -> None:
        tmp = self.root / f".{key}.tmp"
        with tmp.open("wb") as fh:
            pickle.dump(value, fh)
        tmp.replace(self.root / f"{key}.pkl")


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if not np.isfinite(value) else float(value)
    return value


def run_study(
    study: Path | str,
    *,
    out: Path | str,
    tracker: Tracker | None = None,
    registry: Path | str | None = None,
    use_cache: bool = True,
    progress: Callable[[str], object] | None = None,
    fail_after: str | None = None,
) -> StudyRun:
    """Run a study folder end to end.  ``fail_after`` (tests only) raises after the named step."""
    spec, base = load_study(study)
    source = str(Path(study) / "study.yaml" if Path(study).is_dir() else study)
    tracker = tracker or NullTracker()
    out = Path(out)
    say = progress or (lambda _msg: None)
    policy = DisclosurePolicy(spec.disclosure.min_cell, spec.disclosure.rounding, spec.disclosure.enabled)
    computed: list[str] = []
    started = False
    try:
        reg_path, reg_label = resolve_registry(spec, base, Path(registry) if registry else None)
        with Registry(reg_path) as reg:
            digest = reg.digest()
            assert isinstance(spec.cohort, CohortSpec)
            backend = DuckDBBackend(reg)
            compiled = compile_cohort(
                spec.cohort, attributes=backend.attributes(), source=f"{source}: cohort"
            )
            from toolkit.study.spec import validate_references

            feature_cols = list(compiled.columns)
            validate_references(spec, source=source, cohort_columns=feature_cols)
            cache = _Cache(out, use_cache)  # created only once the study is known to be valid
            spec_hash = _hash(spec.model_dump(mode="json"))
            tracker.start(
                f"regent/{spec.name}",
                f"{spec.name}",
                {"regent.study": spec.name, "regent.spec_hash": spec_hash},
            )
            started = True
            # --- cohort ---
            say("cohort")
            ckey = "cohort-" + _hash(spec.cohort.model_dump(mode="json"), digest)
            cohort = cache.get(ckey)
            if cohort is None:
                cohort = execute(compiled, backend)
                cache.put(ckey, cohort)
                computed.append("cohort")
            if fail_after == "cohort":
                raise RuntimeError("injected failure after cohort (test hook)")
            # --- features ---
            say("features")
            fkey = "features-" + _hash(spec.features.model_dump(mode="json"), spec.cohort.concept_sets, ckey)
            frame = cache.get(fkey)
            if frame is None:
                windows = window_features(
                    cohort.cohort,
                    reg.con,
                    spec.features,
                    concept_sets={k: v for k, v in spec.cohort.concept_sets.items() if isinstance(v, list)},
                    source=f"{source}: features",
                )
                frame = feature_matrix(
                    cohort.cohort,
                    windows,
                    [c for c in cohort.cohort.columns if c not in ("person_id", "index_time")],
                )
                cache.put(fkey, frame)
                computed.append("features")
            if fail_after == "features":
                raise RuntimeError("injected failure after features (test hook)")
        params = {
            "spec_hash": spec_hash,
            "registry": reg_label,
            "registry_digest": digest,
            "cohort_size": policy.count(cohort.n),
            "seed": spec.seed,
            **code_version(),
        }
        tracker.log_params(params)
        tracker.log_dataset(
            "cohort_features", frame.drop(columns=["person_id", "index_time"]), fkey, "training"
        )
        plots: dict[str, bytes] = {}
        analyses: dict[str, Any] = {}
        for a in spec.analyses:
            say(f"analysis {a.name}")
            akey = f"analysis-{a.name}-" + _hash(a.model_dump(mode="json"), fkey)
            hit = cache.get(akey)
            if hit is None:
                hit = run_analysis(a, frame, policy)
                cache.put(akey, hit)
                computed.append(f"analysis:{a.name}")
            analyses[a.name], pl = hit
            plots.update(pl)
        models: dict[str, RiskModel] = {}
        model_results: dict[str, Any] = {}
        for m in spec.models:
            say(f"model {m.name}")
            mkey = f"model-{m.name}-" + _hash(
                m.model_dump(mode="json"), spec.validation.model_dump(), spec.seed, fkey
            )
            hit = cache.get(mkey)
            if hit is None:
                hit = run_model(m, frame, spec)
                cache.put(mkey, hit)
                computed.append(f"model:{m.name}")
            fitted, res, pl = hit
            plots.update(pl)
            models[m.name] = fitted
            info = tracker.log_model_run(
                m.name,
                {"type": m.type, "horizon_days": m.horizon_days, **m.params},
                {k: v for k, v in res["metrics"].items() if v is not None},
                res["folds"],
                fitted,
                _example_row(fitted, frame),
                register_as=f"{spec.name}.{m.name}",
            )
            res.update(info)
            model_results[m.name] = res
            if fail_after == f"model:{m.name}":
                raise RuntimeError(f"injected failure after model {m.name} (test hook)")
        results = {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "study": spec.name,
            "title": spec.title,
            "mlflow_run_id": tracker.run_id,
            "registry": {"source": reg_label, "digest": digest},
            "spec_hash": spec_hash,
            "code_version": code_version(),
            "seed": spec.seed,
            "disclosure": {
                "min_cell": policy.min_cell,
                "rounding": policy.rounding,
                "enabled": policy.enabled,
            },
            "cohort": {
                "name": cohort.name,
                "n": cohort.n,
                "events": cohort.events,
                "horizons": [{"name": n, "days": d} for n, d in cohort.compiled.horizons],
                "attrition": [
                    {
                        "step": r["step"],
                        "kind": r["kind"],
                        "n": r["n"],
                        "removed": r["removed"],
                        "events": r["events"],
                    }
                    for r in policy.attrition(cohort.attrition.table).to_dict("records")
                ],
            },
            "analyses": analyses,
            "models": model_results,
        }
        results = _clean(policy.scrub(results, COUNT_KEYS))
        results["cohort"]["attrition"] = _clean(
            [
                {
                    "step": r["step"],
                    "kind": r["kind"],
                    "n": r["n"],
                    "removed": r["removed"],
                    "events": r["events"],
                }
                for r in policy.attrition(cohort.attrition.table).to_dict("records")
            ]
        )
        say("report")
        from toolkit.study.report import render_report

        with atomic_dir(out / "artifacts") as tmp:
            atomic_write_json(tmp / "results.json", results)
            (tmp / "report.html").write_text(
                render_report(spec, results, plots, policy, cohort.attrition), encoding="utf-8"
            )
            policy.attrition(cohort.attrition.table).to_csv(tmp / "attrition.csv", index=False)
            (tmp / "study.yaml").write_text(_study_yaml(spec), encoding="utf-8")
            for name, png in plots.items():
                (tmp / f"{name}.png").write_bytes(png)
        for f in sorted((out / "artifacts").iterdir()):
            tracker.log_artifact(f)
        # the two files users look for first also sit at the top of OUT
        for name in ("results.json", "report.html"):
            tmp_file = out / f".{name}.tmp"
            tmp_file.write_bytes((out / "artifacts" / name).read_bytes())
            tmp_file.replace(out / name)
        tracker.log_metrics(_flat_metrics(model_results))
        tracker.end("FINISHED")
        return StudyRun(spec, out, results, cohort, frame, models, plots, computed, tracker.run_id)
    except BaseException as exc:
        if started:
            msg = str(exc) if isinstance(exc, ToolkitError) else f"{type(exc).__name__}: {exc}"
            tracker.end(
                "FAILED",
                msg + ("" if isinstance(exc, ToolkitError) else "\n" + traceback.format_exc(limit=3)),
            )
        raise


def _study_yaml(spec: StudySpec) -> str:
    import yaml

    return yaml.safe_dump(spec.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False)


def _flat_metrics(models: dict[str, Any]) -> dict[str, float]:
    out = {}
    for name, m in models.items():
        for k, v in m["metrics"].items():
            if isinstance(v, int | float) and v is not None:
                out[f"{name}.{k}"] = float(v)
    return out


def _example_row(model: RiskModel, frame: pd.DataFrame) -> pd.DataFrame:
    """An input example built from training medians and reference levels — never a real patient."""
    row: dict[str, Any] = {}
    for c in model.features_in_:
        s = frame[c]
        if c in model.pre_.categorical_:
            row[c] = model.pre_.categorical_[c][0]
        else:
            row[c] = float(model.pre_.medians_.get(c, float(s.median())))
    return pd.DataFrame([row])
