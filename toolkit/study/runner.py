"""The pooled study runner: a pipeline of named, cached steps, tracked, ending in a publish.

    plan -> open registry -> compile (checks) -> claim OUT -> data (cohort, features)
         -> analyses -> models -> assemble results -> publish -> finish

Each step's output is cached under ``OUT/.cache`` by a hash of its own spec and its inputs'
hashes, so re-running after changing only a model re-uses the cohort and the features, and a
crashed run resumes from the last finished step.  A failing step ends the tracker's run as FAILED
with the error.  A run that finds ``running`` in ``OUT/.cache/state.json`` from a process that no
longer exists knows the earlier run was killed: it re-uses that run's finished steps, closes its
tracker run as KILLED (it could not close itself) and records ``resumed_from``.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from toolkit.analysis.predict.counts import label_counts
from toolkit.analysis.predict.models import RiskModel
from toolkit.cohort.run import CohortResult
from toolkit.disclosure import DisclosurePolicy
from toolkit.errors import ToolkitError
from toolkit.study.cache import StepCache, close_interrupted
from toolkit.study.data import StudyData, build_study_data, compile_study
from toolkit.study.engine import EngineSpec, model_training, open_backend
from toolkit.study.kinds import run_analysis, run_policy
from toolkit.study.plan import StudyPlan, plan_study, spec_hash
from toolkit.study.publish import (
    CohortSummary,
    assemble_results,
    check_releasable,
    code_version,
    flat_metrics,
    publish,
    result_tables,
)
from toolkit.study.registration import (
    experiment_description,
    model_run_params,
    model_version_info,
    released_model,
    run_name,
)
from toolkit.study.results import RESULTS_SCHEMA_VERSION, StudyResults
from toolkit.study.spec import StudySpec
from toolkit.study.steps import run_model
from toolkit.study.tracker import NullTracker, Tracker

__all__ = ["RESULTS_SCHEMA_VERSION", "StudyRun", "data_dir", "planned_steps", "resolve_registry", "run_study"]


def data_dir() -> Path:
    return Path(os.environ.get("REGENT_DATA", "data"))


def resolve_registry(
    spec: StudySpec, base: Path, override: Path | None = None, *, format: str = "duckdb"
) -> tuple[Path, str]:
    """The registry a study uses (building shipped or synthetic registries on first use, as a
    DuckDB file or, ``format="parquet"``, a lake folder for the Spark engine)."""
    suffix = ".duckdb" if format == "duckdb" else "-lake"
    if override is not None:
        return Path(override), str(override)
    src = spec.registry
    if src.path is not None:
        p = Path(src.path)
        return (p if p.is_absolute() else base / p), src.path
    if src.dataset is not None:
        from toolkit.registry.importers.datasets import import_dataset

        out = data_dir() / "registries" / f"{src.dataset}{suffix}"
        if not out.exists():
            import_dataset(src.dataset, out, format=format)
        return out, f"dataset:{src.dataset}"
    assert src.synthetic is not None
    from toolkit.registry.synth.heart_failure import SynthConfig, synthesize

    s = src.synthetic
    media = ("" if s.notes else "-nonotes") + ("" if s.images else "-noimages")
    out = data_dir() / "registries" / f"synthetic-hf-p{s.patients}-s{s.sites}-seed{s.seed}{media}{suffix}"
    if not out.exists():
        config = SynthConfig(s.patients, s.sites, s.seed, notes=s.notes, images=s.images)
        synthesize(out, config, format=format)
    return out, f"synthetic:patients={s.patients},sites={s.sites},seed={s.seed}{media}"


def planned_steps(spec: StudySpec) -> list[str]:
    """The names of the steps a run of ``spec`` goes through, in order (for progress bars)."""
    return [
        "registry",
        "cohort",
        "features",
        *(f"analysis {a.name}" for a in spec.analyses),
        *(f"model {m.name}" for m in spec.models),
        "report",
    ]


@dataclass
class StudyRun:
    """Everything a run produced; notebooks display it, the CLI prints its paths."""

    spec: StudySpec
    out: Path
    results: StudyResults
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

        return Flow(self.results.to_json()["cohort"]["attrition"], self.spec.disclosure.min_cell)

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


class StepTracker:
    """The runner's progress callback: passes each label on and remembers the step now running
    (``model cox_1y`` for ``model cox_1y: fold 2/5``), so an interrupted run can say where."""

    def __init__(self, callback: Callable[[str], object] | None) -> None:
        self.callback = callback
        self.step = "registry"

    def __call__(self, label: str) -> None:
        self.step = label.split(": ")[0]
        if self.callback is not None:
            self.callback(label)


@dataclass
class _Run:
    """The state one run carries from step to step."""

    plan: StudyPlan
    out: Path
    tracker: Tracker
    cache: StepCache
    say: Callable[[str], object]
    fail_after: str | None
    computed: list[str] = field(default_factory=list)
    plots: dict[str, bytes] = field(default_factory=dict)
    resumed_from: str | None = None
    registry_label: str = ""

    def done(self, step: str) -> None:
        """Record a finished step; the test hook ``fail_after`` raises after the named one."""
        self.cache.state(step=step)
        if self.fail_after == step:
            raise RuntimeError(f"injected failure after {step.replace(':', ' ')} (test hook)")


def run_study(
    study: Path | str | StudyPlan,
    *,
    out: Path | str,
    tracker: Tracker | None = None,
    registry: Path | str | None = None,
    use_cache: bool = True,
    progress: Callable[[str], object] | None = None,
    fail_after: str | None = None,
    engine: EngineSpec | None = None,
) -> StudyRun:
    """Run a study end to end (a folder, its study.yaml, or a :class:`StudyPlan`).

    ``engine`` picks where the data stage runs (:class:`~toolkit.study.engine.EngineSpec`:
    DuckDB by default, or Spark on a Parquet lake); the results are the same.

    ``use_cache`` (the CLI's ``--resume``, on by default) re-uses every step whose inputs are
    unchanged, including the finished steps of a run that crashed or was killed.  ``progress``
    is called with each step's name as it starts (see :func:`planned_steps`) and with
    ``"model NAME: fold i/k"`` inside cross-validation.  ``fail_after`` (tests only) raises after
    the named step.
    """
    plan = plan_study(study)
    tracker = tracker or NullTracker()
    engine = engine or EngineSpec()
    run: _Run | None = None
    tell = StepTracker(progress)
    try:
        tell("registry")  # a shipped or synthetic registry is built on first use
        reg_path, label = _locate(plan, registry, engine)
        with open_backend(engine, reg_path) as backend:
            compiled = compile_study(plan, backend)  # every check, before OUT or the tracker is touched
            run = _start(plan, Path(out), tracker, use_cache, tell, fail_after)
            run.registry_label = label
            data = build_study_data(
                plan, backend, compiled=compiled, cache=run.cache, on_step=_data_steps(run)
            )
            run.computed += data.computed
            check_releasable(plan, data.cohort.n)  # empty or below k: one line, exit 2
            _log_inputs(run, data)
            policy = run_policy(plan.spec, data.frame, plan.policy)  # every table's counts at once
            run.plan = replace(plan, policy=policy)  # results.json's cohort and attrition follow it
            analyses = _analyses(run, data, policy)
            with model_training(engine, backend):  # XGBoost on Spark for a large matrix
                fitted, model_results = _models(run, data, policy)
        return _finish(run, data, analyses, fitted, model_results)
    except BaseException as exc:
        if run is not None:
            _fail(run, exc, tell.step)
        raise


def _locate(plan: StudyPlan, registry: Path | str | None, engine: EngineSpec) -> tuple[Path | str, str]:
    """The registry to open and its label: a lake URI (``hdfs://``, ``s3a://``) stays text for
    the Spark engine; anything else is a path, or the study's own registry (built if needed)."""
    if registry is not None and "://" in str(registry):
        return str(registry), str(registry)
    override = Path(registry) if registry else None
    return resolve_registry(plan.spec, plan.base, override, format=engine.registry_format)


def _start(
    plan: StudyPlan,
    out: Path,
    tracker: Tracker,
    use_cache: bool,
    progress: Callable[[str], object] | None,
    fail_after: str | None,
) -> _Run:
    """Claim OUT (noticing a killed earlier run) and start the tracker run."""
    cache = StepCache(out, use_cache)
    interrupted = cache.claim()
    tags = {"regent.study": plan.name, "regent.spec_hash": plan.spec_hash}
    if interrupted and interrupted.get("run_id"):
        tags["regent.resumed_from" if use_cache else "regent.supersedes"] = interrupted["run_id"]
    tracker.start(f"regent/{plan.name}", run_name(plan), tags)
    describe = getattr(tracker, "describe_experiment", None)
    if describe is not None:
        describe(experiment_description(plan))
    run = _Run(plan, out, tracker, cache, progress or (lambda _m: None), fail_after)
    cache.state(status="running", run_id=tracker.run_id)
    if interrupted:
        if interrupted.get("run_id"):
            close_interrupted(tracker, interrupted["run_id"], tracker.run_id)
        if use_cache:
            run.resumed_from = interrupted.get("run_id") or "(untracked)"
    return run


def _data_steps(run: _Run) -> Callable[[str], object]:
    def on_step(event: str) -> None:
        if event.endswith(" done"):
            run.done(event.removesuffix(" done"))
        else:
            run.say(event)

    return on_step


def _log_inputs(run: _Run, data: StudyData) -> None:
    policy = run.plan.policy
    params = {
        "spec_hash": run.plan.spec_hash,
        "registry": run.registry_label,
        "registry_digest": data.digest,
        "cohort_size": policy.count(data.cohort.n),
        "seed": run.plan.spec.seed,
        **code_version(),
    }
    run.tracker.log_params(params)
    features = data.frame.drop(columns=["person_id", "index_time"])
    run.tracker.log_dataset("cohort_features", features, data.features_key, "training")


def _analyses(run: _Run, data: StudyData, policy: DisclosurePolicy) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in run.plan.spec.analyses:
        run.say(f"analysis {a.name}")
        context = run.plan.context  # dictionary, horizon, missing-data policy
        key = f"analysis-{a.name}-" + spec_hash(
            a.model_dump(mode="json"), data.features_key, _decided(policy), context.key()
        )
        hit = run.cache.get(key)
        if hit is None:
            hit = run_analysis(a, data.frame, policy, context)
            run.cache.put(key, hit)
            run.computed.append(f"analysis:{a.name}")
        out[a.name], plots = hit
        run.plots.update(plots)
        run.done(f"analysis:{a.name}")
    return out


def _decided(policy: DisclosurePolicy, about: list[str] | None = None) -> str | None:
    """What the run decided to withhold (for cache keys: a step re-runs when that changes)."""
    return None if policy.decided is None else policy.decided.fingerprint(about)


def _models(
    run: _Run, data: StudyData, policy: DisclosurePolicy
) -> tuple[dict[str, RiskModel], dict[str, Any]]:
    spec = run.plan.spec
    fitted: dict[str, RiskModel] = {}
    results: dict[str, Any] = {}
    for m in spec.models:
        run.say(f"model {m.name}")
        key = f"model-{m.name}-" + spec_hash(  # disclosure settings shape the released tables
            m.model_dump(mode="json"),
            spec.validation.model_dump(mode="json"),
            spec.disclosure.model_dump(),
            spec.seed,
            data.features_key,
            _decided(policy, [str(v) for v in getattr(spec.cohort, "subgroups", [])]),
        )
        hit = run.cache.get(key)
        if hit is None:
            say = _prefixed(run.say, f"model {m.name}: ")
            hit = run_model(m, data.frame, spec, progress=say, policy=policy)
            run.cache.put(key, hit)
            run.computed.append(f"model:{m.name}")
        run.cache.state(step=f"model:{m.name}")
        model, res, plots = hit
        res = {**res, "folds": policy.split_rows(res["folds"])}  # results.json and MLflow alike
        run.plots.update(plots)
        fitted[m.name] = model
        released = released_model(run.plan, res)  # counts as results.json will hold them
        info = run.tracker.log_model_run(
            m.name,
            {"type": m.type, "horizon_days": m.horizon_days, **m.params, **model_run_params(released)},
            {k: v for k, v in res["metrics"].items() if v is not None},
            [{k: v for k, v in f.items() if v is not None} for f in res["folds"]],
            model,
            _example_row(model, data.frame),
            register_as=f"{spec.name}.{m.name}",
            version=model_version_info(run.plan, m.name, released),
        )
        results[m.name] = {**res, **info}
        if run.fail_after == f"model:{m.name}":
            raise RuntimeError(f"injected failure after model {m.name} (test hook)")
    return fitted, results


def _finish(
    run: _Run, data: StudyData, analyses: dict[str, Any], fitted: dict[str, RiskModel], models: dict[str, Any]
) -> StudyRun:
    c = data.cohort
    labels = {name: label_counts(c.cohort[name], run.plan.policy) for name, _ in c.compiled.horizons}
    summary = CohortSummary(c.name, c.n, c.events, c.compiled.horizons, c.attrition.table, labels)
    results = assemble_results(
        run.plan,
        summary,
        registry={"source": run.registry_label, "digest": data.digest},
        analyses=analyses,
        models=models,
        data_quality=data.quality,
        run_id=run.tracker.run_id,
    )
    run.say("report")
    publish(
        run.plan,
        results,
        out=run.out,
        plots=run.plots,
        attrition=c.attrition.table,
        tables=result_tables(results),
        tracker=run.tracker,
    )
    run.tracker.log_metrics(flat_metrics(results))
    run.tracker.end("FINISHED")
    run.cache.state(status="finished", step="report")
    tracker = run.tracker
    return StudyRun(
        run.plan.spec,
        run.out,
        results,
        c,
        data.frame,
        fitted,
        run.plots,
        run.computed,
        tracker.run_id,
        resumed_from=run.resumed_from,
        experiment_id=getattr(tracker, "experiment_id", None),
        tracking_uri=getattr(tracker, "uri", None),
    )


def _fail(run: _Run, exc: BaseException, step: str) -> None:
    if isinstance(exc, KeyboardInterrupt):  # Ctrl-C, or SIGTERM as the CLI turns it into one
        run.cache.state(status="interrupted")
        why = str(exc) or "interrupted (SIGINT)"
        run.tracker.end(
            "KILLED", f"{why} during step '{step}'; the finished steps are cached: rerun to resume"
        )
        return
    run.cache.state(status="failed")
    msg = str(exc) if isinstance(exc, ToolkitError) else f"{type(exc).__name__}: {exc}"
    detail = "" if isinstance(exc, ToolkitError) else "\n" + traceback.format_exc(limit=3)
    run.tracker.end("FAILED", msg + detail)


def _prefixed(say: Callable[[str], object], prefix: str) -> Callable[[str], object]:
    return lambda msg: say(prefix + msg)


def _example_row(model: RiskModel, frame: pd.DataFrame) -> pd.DataFrame:
    """An input example built from training medians and reference levels — never a real patient."""
    row: dict[str, Any] = {}
    for c in model.features_in_:
        if c in model.pre_.categorical_:
            row[c] = model.pre_.categorical_[c][0]
        else:
            row[c] = float(model.pre_.medians_.get(c, float(frame[c].median())))
    return pd.DataFrame([row])
