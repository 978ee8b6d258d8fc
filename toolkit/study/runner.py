"""The study runner: named steps with content-hash caching, tracked, ending in results.json and a report.

Steps: registry -> cohort -> features -> analyses -> models -> report.  Each step's output is
cached under ``OUT/.cache`` by a hash of its own spec and its inputs' hashes, so re-running after
changing only a model re-uses the cohort and the features, and a crashed run resumes from the
last finished step.  A failing step ends the tracker's run as FAILED with the error.

A run writes ``OUT/.cache/state.json`` (``running`` -> ``finished``/``failed``).  A run that finds
``running`` there from a process that no longer exists knows the earlier run was killed: it
re-uses that run's finished steps, closes its tracker run as KILLED (it could not close itself) and
records ``resumed_from``.
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
from toolkit.disclosure import COUNT_KEYS, DisclosurePolicy
from toolkit.errors import StudySpecError, ToolkitError
from toolkit.features.fusion import build_features
from toolkit.io import atomic_dir, atomic_write_json
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
    media = ("" if s.notes else "-nonotes") + ("" if s.images else "-noimages")
    out = data_dir() / "registries" / f"synthetic-hf-p{s.patients}-s{s.sites}-seed{s.seed}{media}.duckdb"
    if not out.exists():
        synthesize(out, SynthConfig(s.patients, s.sites, s.seed, notes=s.notes, images=s.images))
    return out, f"synthetic:patients={s.patients},sites={s.sites},seed={s.seed}{media}"


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
    resumed_from: str | None = None  # the tracker run of an interrupted run this one resumed
    experiment_id: str | None = None
    tracking_uri: str | None = None

    @property
    def report_path(self) -> Path:
        return self.out / "report.html"

    @property
    def policy(self) -> DisclosurePolicy:
        """The study's disclosure policy, for tables a notebook computes itself."""
        d = self.spec.disclosure
        return DisclosurePolicy(d.min_cell, d.rounding, d.enabled)

    @property
    def flow(self) -> Any:
        """The cohort flow after disclosure control (what the report shows); renders as a diagram."""
        from toolkit.study.display import Flow

        return Flow(self.results["cohort"]["attrition"], self.spec.disclosure.min_cell)

    def figure(self, name: str) -> Any:
        """A plot of this run by name (``km_<analysis>``, ``forest_<analysis>``, ``calibration_<model>``)."""
        from toolkit.study.display import Figure

        if name not in self.plots:
            raise KeyError(f"no plot {name!r}; available: {sorted(self.plots)}")
        return Figure(name, self.plots[name])

    def model_table(self) -> pd.DataFrame:
        """One row per model: cross-validated metrics with 95% CIs (what a notebook compares)."""
        from toolkit.study.display import model_table

        return model_table(self.results)

    def _repr_html_(self) -> str:
        from toolkit.study.display import study_run_html

        return study_run_html(self)


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

    # --- the run state: which run owns OUT, which steps it finished, how it ended ---------------
    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    def claim(self) -> dict[str, Any] | None:
        """Take OUT for this process; return the state of an earlier run that was interrupted.

        Refuses when a live process is running a study into the same OUT.
        """
        self._state: dict[str, Any] = {"status": "starting", "pid": os.getpid(), "steps": []}
        try:
            old = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if not isinstance(old, dict) or old.get("status") != "running":
            return None
        pid = int(old.get("pid") or 0)
        if pid and pid != os.getpid() and _alive(pid):
            raise StudySpecError(
                f"{self.root.parent}: another study run (process {pid}) is writing here; "
                "wait for it to finish or choose another --out"
            )
        return old

    def state(self, *, status: str | None = None, step: str | None = None, run_id: str | None = None) -> None:
        if status is not None:
            self._state["status"] = status
        if run_id is not None:
            self._state["run_id"] = run_id
        if step is not None and step not in self._state["steps"]:
            self._state["steps"].append(step)
        atomic_write_json(self.state_path, self._state)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _close_interrupted(tracker: Tracker, old_run_id: str, new_run_id: str | None) -> None:
    """An interrupted run could not end its tracker run; end it now so it is never left RUNNING."""
    close = getattr(tracker, "close_run", None)
    if close is not None:
        close(
            old_run_id,
            "KILLED",
            f"the process ended before the run finished; resumed by run {new_run_id or '(untracked)'}",
        )


def _prefixed(say: Callable[[str], object], prefix: str) -> Callable[[str], object]:
    return lambda msg: say(prefix + msg)


def planned_steps(spec: StudySpec) -> list[str]:
    """The names of the steps a run of ``spec`` goes through, in order (for progress bars)."""
    return [
        "cohort",
        "features",
        *(f"analysis {a.name}" for a in spec.analyses),
        *(f"model {m.name}" for m in spec.models),
        "report",
    ]


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
    """Run a study folder end to end.

    ``use_cache`` (the CLI's ``--resume``, on by default) re-uses every step whose inputs are
    unchanged, including the finished steps of a run that crashed or was killed.  ``progress``
    is called with each step's name as it starts (see :func:`planned_steps`) and with
    ``"model NAME: fold i/k"`` inside cross-validation.  ``fail_after`` (tests only) raises after
    the named step.
    """
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
            interrupted = cache.claim()
            spec_hash = _hash(spec.model_dump(mode="json"))
            tags = {"regent.study": spec.name, "regent.spec_hash": spec_hash}
            if interrupted and interrupted.get("run_id"):
                tags["regent.resumed_from" if use_cache else "regent.supersedes"] = interrupted["run_id"]
            tracker.start(f"regent/{spec.name}", f"{spec.name}", tags)
            started = True
            cache.state(status="running", run_id=tracker.run_id)
            resumed_from = None
            if interrupted:
                if interrupted.get("run_id"):
                    _close_interrupted(tracker, interrupted["run_id"], tracker.run_id)
                if use_cache:
                    resumed_from = interrupted.get("run_id") or "(untracked)"
            # --- cohort ---
            say("cohort")
            ckey = "cohort-" + _hash(spec.cohort.model_dump(mode="json"), digest)
            cohort = cache.get(ckey)
            if cohort is None:
                cohort = execute(compiled, backend)
                cache.put(ckey, cohort)
                computed.append("cohort")
            cache.state(step="cohort")
            if fail_after == "cohort":
                raise RuntimeError("injected failure after cohort (test hook)")
            # --- features ---
            say("features")
            fkey = "features-" + _hash(spec.features.model_dump(mode="json"), spec.cohort.concept_sets, ckey)
            frame = cache.get(fkey)
            if frame is None:
                # structured, note and imaging features joined (toolkit.features.fusion)
                fused = build_features(
                    cohort.cohort,
                    reg,
                    spec.features,
                    concept_sets={k: v for k, v in spec.cohort.concept_sets.items() if isinstance(v, list)},
                    source=f"{source}: features",
                    base=base,
                )
                frame = fused.frame
                frame.attrs["data_quality"] = fused.quality_counts().to_dict("records")
                cache.put(fkey, frame)
                computed.append("features")
            cache.state(step="features")
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
            cache.state(step=f"analysis:{a.name}")
            analyses[a.name], pl = hit
            plots.update(pl)
        models: dict[str, RiskModel] = {}
        model_results: dict[str, Any] = {}
        for m in spec.models:
            say(f"model {m.name}")
            mkey = f"model-{m.name}-" + _hash(  # disclosure settings shape the released tables
                m.model_dump(mode="json"),
                spec.validation.model_dump(mode="json"),
                spec.disclosure.model_dump(),
                spec.seed,
                fkey,
            )
            hit = cache.get(mkey)
            if hit is None:
                hit = run_model(m, frame, spec, progress=_prefixed(say, f"model {m.name}: "))
                cache.put(mkey, hit)
                computed.append(f"model:{m.name}")
            cache.state(step=f"model:{m.name}")
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
            "data_quality": frame.attrs.get("data_quality", []),
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
            for name, res in analyses.items():  # ablations also as a table (MLflow artifact)
                if isinstance(res, dict) and res.get("kind") == "ablation":
                    pd.DataFrame(res["sets"]).to_csv(tmp / f"ablation_{name}.csv", index=False)
            if results["data_quality"]:
                pd.DataFrame(results["data_quality"]).to_csv(tmp / "data_quality.csv", index=False)
        for f in sorted((out / "artifacts").iterdir()):
            tracker.log_artifact(f)
        # the two files users look for first also sit at the top of OUT
        for name in ("results.json", "report.html"):
            tmp_file = out / f".{name}.tmp"
            tmp_file.write_bytes((out / "artifacts" / name).read_bytes())
            tmp_file.replace(out / name)
        tracker.log_metrics(_flat_metrics(model_results))
        tracker.log_metrics(
            {
                f"ablation.{name}.{row['set']}.c_index": float(row["c_index"])
                for name, res in analyses.items()
                if isinstance(res, dict) and res.get("kind") == "ablation"
                for row in res["sets"]
            }
        )
        tracker.end("FINISHED")
        cache.state(status="finished", step="report")
        return StudyRun(
            spec,
            out,
            results,
            cohort,
            frame,
            models,
            plots,
            computed,
            tracker.run_id,
            resumed_from=resumed_from,
            experiment_id=getattr(tracker, "experiment_id", None),
            tracking_uri=getattr(tracker, "uri", None),
        )
    except BaseException as exc:
        if started:
            cache.state(status="failed")
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
