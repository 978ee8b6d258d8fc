"""How study results look in a notebook: the model comparison table and a run's summary card.

Everything here reads ``results.json`` (already under disclosure control), so what a notebook shows
is what the report shows.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from toolkit.study.results import StudyResults
    from toolkit.study.runner import StudyRun

METRICS = (("c_harrell", "C-index"), ("auroc", "AUROC"), ("brier", "Brier"))


@dataclass(frozen=True)
class Figure:
    """A plot (PNG bytes) that a notebook shows inline."""

    name: str
    png: bytes

    def _repr_png_(self) -> bytes:
        return self.png

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_bytes(self.png)
        return p


@dataclass(frozen=True)
class Flow:
    """The cohort flow from results.json (counts already under disclosure control)."""

    steps: list[dict[str, Any]]
    min_cell: int

    def _repr_html_(self) -> str:
        from toolkit.cohort.run import Attrition, consort_html

        table = pd.DataFrame(self.steps, columns=["step", "kind", "n", "removed", "events"])
        return consort_html(Attrition(table.astype(object)), min_cell=self.min_cell)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.steps)


def model_table(results: StudyResults) -> pd.DataFrame:
    """One row per model: type, horizon, persons, events and cross-validated metrics with 95% CIs."""
    rows = []
    for name, m in results.models.items():
        mt = m.metrics
        row: dict[str, Any] = {
            "model": name,
            "type": m.type,
            "horizon_days": m.horizon_days,
            "n": m.n,
            "events": m.events,
        }
        for key, label in METRICS:
            row[label] = mt.get(f"{key}_mean")
            row[f"{label} lower"] = mt.get(f"{key}_lower")
            row[f"{label} upper"] = mt.get(f"{key}_upper")
        row["O/E"] = mt.get("oof_o_e_ratio")
        rows.append(row)
    return pd.DataFrame(rows)


def _f(v: Any, digits: int = 3) -> str:
    return "NA" if v is None or (isinstance(v, float) and v != v) else f"{float(v):.{digits}f}"


def _count(v: Any) -> str:
    return "suppressed" if v is None else f"{int(v):,}"


def mlflow_link(run_id: str | None, experiment_id: str | None, tracking_uri: str | None) -> str:
    """HTML: the run in the MLflow UI (started with the command shown) — or 'untracked'."""
    if not run_id:
        return "untracked (no MLflow run)"
    url = f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id}" if experiment_id else None
    cmd = f"mlflow ui --backend-store-uri {tracking_uri}" if tracking_uri else "mlflow ui"
    link = f"<a href='{html.escape(url)}' target='_blank'>{run_id}</a>" if url else run_id
    return f"{link} (start the UI with <code>{html.escape(cmd)}</code>)"


def study_run_html(run: StudyRun) -> str:
    r = run.results
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(m.type)}</td>"
        + "".join(
            f"<td>{_f(m.metrics.get(f'{k}_mean'))} ({_f(m.metrics.get(f'{k}_lower'))}–"
            f"{_f(m.metrics.get(f'{k}_upper'))})</td>"
            for k, _ in METRICS
        )
        + f"<td>{_f(m.metrics.get('oof_o_e_ratio'), 2)}</td></tr>"
        for name, m in r.models.items()
    )
    table = (
        "<table><tr><th>model</th><th>type</th>"
        + "".join(f"<th>CV {label} (95% CI)</th>" for _, label in METRICS)
        + f"<th>O/E</th></tr>{rows}</table>"
        if rows
        else "<p>No prediction models in this study.</p>"
    )
    reused = "everything recomputed" if len(run.computed) else "every step re-used from the cache"
    if run.computed and run.resumed_from:
        reused = f"resumed run {html.escape(run.resumed_from)}; recomputed: {', '.join(run.computed)}"
    elif run.computed:
        reused = f"computed: {', '.join(run.computed)}"
    return (
        f"<h3>{html.escape(run.spec.title or run.spec.name)}</h3>"
        f"<p>Cohort: {_count(r.cohort.n)} persons, {_count(r.cohort.events)} outcome events. "
        f"{len(r.analyses)} analyses, {len(r.models)} models ({reused}).</p>"
        f"{table}"
        f"<p>MLflow run: {mlflow_link(run.run_id, run.experiment_id, run.tracking_uri)}<br>"
        f"Report: <a href='{html.escape(run.report_path.resolve().as_uri())}' target='_blank'>"
        f"{html.escape(str(run.report_path))}</a></p>"
    )
