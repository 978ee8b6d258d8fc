"""Monitoring reports in MLflow, logged against the agent's registered model version.

One run per report in the experiment ``<agent>.monitoring``: tags name the agent, bundle,
registered model and version; each window's statistics are metrics with ``step`` = the window's
number and its start as the timestamp (so MLflow's charts run over calendar time), linked to
the model version's logged model (MLflow 3 ``model_id``); the JSON and HTML reports are
artifacts.  The model version gets the tags ``monitoring.alerts`` (the active alerts, or
``none``), ``monitoring.run_id`` and ``monitoring.generated_at``, so the registry page of the
version in service says whether it is under an alert.  Only window statistics and released
counts are logged: no patient data.
"""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from toolkit.monitor.report import MonitoringReport, WindowReport
from toolkit.tracking.mlflow_tracker import configure, ensure_experiment


def _key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", name)


def window_metrics(w: WindowReport) -> dict[str, float]:
    """The numbers of one window, as MLflow metric keys (released counts and statistics only)."""
    out: dict[str, float] = {}
    for key in ("calls", "predictions", "refused_missing", "mean_risk"):
        value = getattr(w, key)
        if value is not None:
            out[key] = float(value)
    for name, v in w.psi.items():
        out["prediction_psi" if name == "risk" else f"psi.{name}"] = v
    for name, v in w.ks.items():
        out["prediction_ks" if name == "risk" else f"ks.{name}"] = v
    for name, rates in w.rates.items():
        for flag in ("missing", "imputed", "out_of_range"):
            value = getattr(rates, f"{flag}_rate")
            if value is not None:
                out[f"{flag}_rate.{name}"] = value
    for key in ("accept_rate", "override_rate"):
        value = getattr(w.feedback, key)
        if value is not None:
            out[f"feedback.{key}"] = value
    if w.performance is not None:
        for name, est in w.performance.metrics.items():
            for suffix, value in (("", est.value), ("_lower", est.lower), ("_upper", est.upper)):
                if value is not None:
                    out[f"{name}{suffix}"] = value
    out["alerts"] = float(sum(c.status == "alert" for c in w.checks))
    return {_key(k): float(v) for k, v in out.items()}


def log_monitoring(report: MonitoringReport, files: tuple[Path, ...], *, root: Path | str = "mlruns") -> str:
    """Log ``report`` (and its files) as a run; tag the model version.  Returns the run id."""
    configure(root)
    client = MlflowClient()
    version = None
    if report.registered_model and report.model_version is not None:
        try:
            version = client.get_model_version(report.registered_model, str(report.model_version))
        except MlflowException:
            version = None  # a store without this model: the run is still logged, untied
    model_id = getattr(version, "model_id", None) if version is not None else None
    exp = ensure_experiment(f"{report.agent}.monitoring", root)
    tags = {
        "regent.agent": report.agent,
        "regent.agent_version": report.version,
        "regent.bundle_sha256": report.bundle_sha256,
        "regent.registered_model": report.registered_model or "",
        "regent.model_version": str(report.model_version or ""),
        "regent.source_run": report.mlflow_run_id or "",
        "regent.alerts": ", ".join(f"{a.check}:{a.subject}" for a in report.alerts) or "none",
    }
    name = f"{report.agent} {report.version} {report.generated_at:%Y-%m-%d %H:%M}"
    with mlflow.start_run(experiment_id=exp, run_name=name, tags=tags) as run:
        for step, w in enumerate(report.windows):
            mlflow.log_metrics(
                window_metrics(w), step=step, timestamp=int(w.start.timestamp() * 1000), model_id=model_id
            )
        mlflow.log_metric("alerts_active", float(len(report.alerts)), model_id=model_id)
        for f in files:
            mlflow.log_artifact(str(f))
    if version is not None:
        for key, value in (
            ("monitoring.alerts", tags["regent.alerts"]),
            ("monitoring.run_id", run.info.run_id),
            ("monitoring.generated_at", report.generated_at.isoformat()),
        ):
            client.set_model_version_tag(report.registered_model or "", str(report.model_version), key, value)
    return str(run.info.run_id)
