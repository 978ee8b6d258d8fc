"""Compare two study runs: what changed in the spec, the cohort and the metrics.

``regent runs compare RUN_A RUN_B`` and, in a notebook::

    from toolkit.tracking.compare import compare_runs
    compare_runs(run_a.run_id, run_b.run_id)   # or two StudyRun objects, or two --out folders

Metric deltas (B - A) come with a 95% CI.  When both runs cross-validated the same cohort with
the same folds (same registry digest, cohort size, seed and number of folds), the CI is paired
over folds (a t interval of the per-fold differences), which is what makes a small improvement
visible.  Otherwise the two runs' CIs are combined as independent (normal approximation), which
is conservative.
"""

from __future__ import annotations

import difflib
import html
import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from scipy import stats

from toolkit.errors import RunNotFoundError
from toolkit.study.results import ModelResult, StudyResults, read_results

METRICS = ("c_harrell", "auroc", "brier")
LABELS = {"c_harrell": "C-index", "auroc": "AUROC", "brier": "Brier"}


@dataclass(frozen=True)
class RunInfo:
    """What identifies one run: where it came from and the reproducibility parameters."""

    label: str  # the run id, or the output folder of an untracked run
    results: StudyResults
    spec_yaml: str
    status: str | None = None

    @property
    def cohort_n(self) -> int | None:
        return self.results.cohort.n

    @property
    def cohort_events(self) -> int | None:
        return self.results.cohort.events


@dataclass(frozen=True)
class MetricDelta:
    model: str
    metric: str
    a: float | None
    a_ci: tuple[float | None, float | None]
    b: float | None
    b_ci: tuple[float | None, float | None]
    delta: float | None
    delta_ci: tuple[float | None, float | None]
    method: str  # "paired over folds" | "unpaired" | "n/a"


@dataclass(frozen=True)
class RunComparison:
    a: RunInfo
    b: RunInfo
    changed: list[tuple[str, Any, Any]]  # (key path, value in A, value in B)
    spec_diff: list[str]  # unified diff of the two study.yaml files
    provenance: list[tuple[str, Any, Any]]  # spec hash, registry digest, code version, seed
    metrics: list[MetricDelta]
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a.label,
            "b": self.b.label,
            "spec_changes": [{"key": k, "a": x, "b": y} for k, x, y in self.changed],
            "provenance": [{"key": k, "a": x, "b": y} for k, x, y in self.provenance],
            "cohort": {
                "n": [self.a.cohort_n, self.b.cohort_n],
                "events": [self.a.cohort_events, self.b.cohort_events],
            },
            "metrics": [m.__dict__ for m in self.metrics],
            "models_only_in_a": self.only_in_a,
            "models_only_in_b": self.only_in_b,
        }

    def to_text(self) -> str:
        lines = [f"A: {self.a.label}", f"B: {self.b.label}", ""]
        lines.append("spec changes (A -> B):")
        lines += [f"  {k}: {_short(x)} -> {_short(y)}" for k, x, y in self.changed] or ["  none"]
        lines.append("provenance:")
        for k, x, y in self.provenance:
            lines.append(f"  {k}: {_short(x)}" + ("" if x == y else f" -> {_short(y)}"))
        lines.append(
            f"cohort: {_n(self.a.cohort_n)} -> {_n(self.b.cohort_n)} persons, "
            f"{_n(self.a.cohort_events)} -> {_n(self.b.cohort_events)} events"
        )
        lines.append("metrics (cross-validated; delta = B - A with 95% CI):")
        for m in self.metrics:
            lines.append(
                f"  {m.model:<14} {LABELS.get(m.metric, m.metric):<8} A {_ci(m.a, m.a_ci)}  B {_ci(m.b, m.b_ci)}"
                f"  delta {_ci(m.delta, m.delta_ci, signed=True)}  [{m.method}]"
            )
        for name in self.only_in_a:
            lines.append(f"  model {name}: only in A")
        for name in self.only_in_b:
            lines.append(f"  model {name}: only in B")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = html.escape
        changes = "".join(
            f"<tr><td><code>{e(k)}</code></td><td>{e(_short(x))}</td><td>{e(_short(y))}</td></tr>"
            for k, x, y in self.changed
        )
        prov = "".join(
            f"<tr><td>{e(k)}</td><td><code>{e(_short(x))}</code></td><td><code>{e(_short(y))}</code></td></tr>"
            for k, x, y in self.provenance
        )
        rows = "".join(
            f"<tr><td>{e(m.model)}</td><td>{LABELS.get(m.metric, m.metric)}</td><td>{_ci(m.a, m.a_ci)}</td>"
            f"<td>{_ci(m.b, m.b_ci)}</td><td><b>{_ci(m.delta, m.delta_ci, signed=True)}</b></td>"
            f"<td>{e(m.method)}</td></tr>"
            for m in self.metrics
        )
        return (
            f"<h4>Run comparison</h4><p>A: <code>{e(self.a.label)}</code><br>B: <code>{e(self.b.label)}</code></p>"
            f"<p>Cohort: {_n(self.a.cohort_n)} → {_n(self.b.cohort_n)} persons, "
            f"{_n(self.a.cohort_events)} → {_n(self.b.cohort_events)} events.</p>"
            "<table><tr><th>spec key</th><th>A</th><th>B</th></tr>"
            + (changes or "<tr><td colspan=3>no changes</td></tr>")
            + "</table><table><tr><th>provenance</th><th>A</th><th>B</th></tr>"
            + prov
            + "</table><table><tr><th>model</th><th>metric</th><th>A (95% CI)</th><th>B (95% CI)</th>"
            "<th>B − A (95% CI)</th><th>CI of the difference</th></tr>" + rows + "</table>"
        )


def _short(v: Any, width: int = 70) -> str:
    s = v if isinstance(v, str) else json.dumps(v, default=str)
    return s if len(s) <= width else s[: width - 1] + "…"


def _n(v: Any) -> str:
    return "suppressed" if v is None else f"{int(v):,}"


def _ci(v: float | None, ci: tuple[float | None, float | None], *, signed: bool = False) -> str:
    if v is None:
        return "NA"
    fmt = "+.3f" if signed else ".3f"
    lo, hi = ci
    if lo is None or hi is None:
        return format(v, fmt)
    return f"{v:{fmt}} ({lo:{fmt}} to {hi:{fmt}})"


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"models": [{"name": "cox", "horizon": "365d"}]}`` -> ``{"models[cox].horizon": "365d"}``.

    List items that have a ``name`` are keyed by it, so reordering is not reported as a change.
    """
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(data, list) and data and all(isinstance(x, dict) and "name" in x for x in data):
        for x in data:
            out.update(_flatten({k: v for k, v in x.items() if k != "name"}, f"{prefix}[{x['name']}]"))
            out.setdefault(f"{prefix}[{x['name']}]", "present")
    elif isinstance(data, list) and any(isinstance(x, dict | list) for x in data):
        for i, x in enumerate(data):
            out.update(_flatten(x, f"{prefix}[{i}]"))
    else:
        out[prefix] = data
    return out


def _spec_changes(a_yaml: str, b_yaml: str) -> list[tuple[str, Any, Any]]:
    fa, fb = _flatten(yaml.safe_load(a_yaml) or {}), _flatten(yaml.safe_load(b_yaml) or {})
    keys = sorted(set(fa) | set(fb))
    return [(k, fa.get(k, "(absent)"), fb.get(k, "(absent)")) for k in keys if fa.get(k) != fb.get(k)]


def _same_folds(a: StudyResults, b: StudyResults) -> bool:
    """Fold assignment depends only on the cohort's event vector, the seed and k."""
    return (
        a.registry.digest == b.registry.digest
        and a.cohort.n == b.cohort.n
        and a.cohort.events == b.cohort.events
        and a.seed == b.seed
    )


def _delta(metric: str, ma: ModelResult, mb: ModelResult, paired: bool) -> MetricDelta | None:
    a, b = ma.metrics.get(f"{metric}_mean"), mb.metrics.get(f"{metric}_mean")
    if a is None and b is None:
        return None
    a_ci = (ma.metrics.get(f"{metric}_lower"), ma.metrics.get(f"{metric}_upper"))
    b_ci = (mb.metrics.get(f"{metric}_lower"), mb.metrics.get(f"{metric}_upper"))
    if a is None or b is None:
        return MetricDelta("", metric, a, a_ci, b, b_ci, None, (None, None), "n/a")
    fa = [f.get(metric) for f in ma.folds]
    fb = [f.get(metric) for f in mb.folds]
    delta = b - a
    xa = [float(v) for v in fa if v is not None]
    xb = [float(v) for v in fb if v is not None]
    if paired and len(xa) == len(fa) == len(fb) == len(xb) >= 2:
        d = [y - x for x, y in zip(xa, xb, strict=True)]
        k = len(d)
        mean = sum(d) / k
        sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (k - 1))
        half = float(stats.t.ppf(0.975, k - 1)) * sd / math.sqrt(k)
        return MetricDelta(
            "", metric, a, a_ci, b, b_ci, mean, (mean - half, mean + half), "paired over folds"
        )
    (al, au), (bl, bu) = a_ci, b_ci
    if al is None or au is None or bl is None or bu is None:
        return MetricDelta("", metric, a, a_ci, b, b_ci, delta, (None, None), "n/a")
    # each run's CI is a t interval over its folds: recover the standard errors, combine them
    ka, kb = max(len(fa), 2), max(len(fb), 2)
    se_a = (au - al) / (2 * float(stats.t.ppf(0.975, ka - 1)))
    se_b = (bu - bl) / (2 * float(stats.t.ppf(0.975, kb - 1)))
    half = 1.959964 * math.sqrt(se_a**2 + se_b**2)
    return MetricDelta("", metric, a, a_ci, b, b_ci, delta, (delta - half, delta + half), "unpaired")


def compare(a: RunInfo, b: RunInfo) -> RunComparison:
    """Compare two runs already loaded (pure: no MLflow, no files)."""
    ra, rb = a.results, b.results
    prov_keys: tuple[tuple[str, Callable[[StudyResults], Any] | None], ...] = (
        ("spec_hash", lambda r: r.spec_hash),
        ("registry", lambda r: r.registry.source),
        ("registry digest", lambda r: r.registry.digest),
        ("code version", lambda r: _code(r)),
        ("seed", lambda r: r.seed),
        ("status", None),
    )
    provenance = []
    for key, get in prov_keys:
        if get is None:
            if a.status or b.status:
                provenance.append((key, a.status, b.status))
            continue
        provenance.append((key, get(ra), get(rb)))
    paired = _same_folds(ra, rb)
    metrics = []
    models_a, models_b = ra.models, rb.models
    for name in [n for n in models_a if n in models_b]:
        for metric in METRICS:
            d = _delta(metric, models_a[name], models_b[name], paired)
            if d is not None:
                metrics.append(replace(d, model=name))
    return RunComparison(
        a,
        b,
        _spec_changes(a.spec_yaml, b.spec_yaml),
        list(
            difflib.unified_diff(
                a.spec_yaml.splitlines(),
                b.spec_yaml.splitlines(),
                "A/study.yaml",
                "B/study.yaml",
                lineterm="",
            )
        ),
        provenance,
        metrics,
        [n for n in models_a if n not in models_b],
        [n for n in models_b if n not in models_a],
    )


def _code(r: StudyResults) -> str:
    cv = r.code_version
    return cv.git_sha[:12] + (" (dirty)" if cv.git_dirty == "true" else "")


def _from_folder(path: Path) -> RunInfo:
    base = path if path.is_dir() else path.parent
    results_file = base / "results.json"
    spec_file = base / "artifacts" / "study.yaml"
    if not results_file.is_file():
        raise RunNotFoundError(f"{base}: no results.json here (is it a study's --out folder?)")
    results = read_results(results_file)
    spec = spec_file.read_text(encoding="utf-8") if spec_file.is_file() else ""
    return RunInfo(str(base), results, spec, None)


def _from_mlflow(run_id: str, mlruns: Path | str) -> RunInfo:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from toolkit.tracking.mlflow_tracker import configure

    configure(mlruns)
    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise RunNotFoundError(
            f"run {run_id!r} is not in the MLflow store {Path(mlruns)}/mlflow.db "
            "(give a run id from `mlflow ui`, a study's --out folder, or --mlruns DIR)"
        ) from None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            results_path = client.download_artifacts(run_id, "results.json", tmp)
            spec_path = client.download_artifacts(run_id, "study.yaml", tmp)
        except (MlflowException, OSError):
            raise RunNotFoundError(
                f"run {run_id!r} has no results.json/study.yaml artifacts: it is not a finished study "
                f"run (status {run.info.status})"
            ) from None
        results = read_results(Path(results_path))
        spec = Path(spec_path).read_text(encoding="utf-8")
    return RunInfo(run_id, results, spec, run.info.status)


def load_run(ref: Any, *, mlruns: Path | str = "mlruns") -> RunInfo:
    """A run from a :class:`~toolkit.study.runner.StudyRun`, a study output folder or an MLflow run id."""
    if hasattr(ref, "results") and hasattr(ref, "spec"):
        from toolkit.study.plan import plan_from_spec
        from toolkit.study.publish import study_yaml

        plan = plan_from_spec(ref.spec, source=str(ref.out))
        return RunInfo(ref.run_id or str(ref.out), ref.results, study_yaml(plan), None)
    p = Path(str(ref))
    if p.exists():
        return _from_folder(p)
    return _from_mlflow(str(ref), mlruns)


def compare_runs(run_a: Any, run_b: Any, *, mlruns: Path | str = "mlruns") -> RunComparison:
    """What changed from run A to run B: spec, cohort, provenance and metric deltas with CIs."""
    return compare(load_run(run_a, mlruns=mlruns), load_run(run_b, mlruns=mlruns))
