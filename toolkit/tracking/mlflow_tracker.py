"""MLflow tracking for study runs: the only place (with the CLI) that imports mlflow.

The store lives under ``mlruns/``: a SQLite backend (``mlruns/mlflow.db``; MLflow's plain file
store now refuses to start) with artifacts in ``mlruns/artifacts/<experiment>``.
``mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db`` shows the runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.data.pandas_dataset import from_pandas
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from toolkit.analysis.predict.models import RiskModel
from toolkit.study.tracker import ModelVersionInfo
from toolkit.tracking.pyfunc import RegentRiskPyfunc, predict_frame

# MLflow logs at INFO on every run start; keep the console for Regent's own messages.
logging.getLogger("mlflow").setLevel(logging.ERROR)
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _version_with(client: MlflowClient, name: str, digest: str) -> Any:
    """The registered version of ``name`` whose model has content hash ``digest``, if any."""
    try:
        found = client.search_model_versions(f"name = '{name}' AND tags.`regent.model_sha256` = '{digest}'")
    except mlflow.exceptions.MlflowException:
        return None
    return min(found, key=lambda v: int(v.version)) if found else None


def _log_pyfunc(blob: bytes, model: RiskModel, example: pd.DataFrame) -> Any:
    """Log ``blob`` (the model's pickle) as an MLflow pyfunc with a signature and input example."""
    with tempfile.TemporaryDirectory() as tmp:
        pkl = Path(tmp) / "risk_model.pkl"
        pkl.write_bytes(blob)
        output = predict_frame(model, example)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return mlflow.pyfunc.log_model(
                name="model",
                python_model=RegentRiskPyfunc(),
                artifacts={"risk_model": str(pkl)},
                signature=infer_signature(example, output),
                input_example=example,
                pip_requirements=[],
            )


def tracking_uri(root: Path | str = "mlruns") -> str:
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def configure(root: Path | str = "mlruns") -> str:
    uri = tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


#: The experiment is a "Machine learning" one (MLflow 3 lists its kind; left unset it guesses)
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def runs_url(experiment_id: str | None, port: int = 5000) -> str:
    """Where ``mlflow ui`` shows the experiment's runs.  MLflow 3.x's UI starts in its GenAI mode
    (an experiment opens on an empty traces overview, whatever the experiment's kind);
    ``workflowType=machine_learning`` opens it in the model-training mode, on the runs."""
    return f"http://127.0.0.1:{port}/#/experiments/{experiment_id}?workflowType=machine_learning"


def ensure_experiment(name: str, root: Path | str = "mlruns") -> str:
    client = MlflowClient()
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.tags.get("mlflow.experimentKind") is None:
            client.set_experiment_tag(exp.experiment_id, *next(iter(EXPERIMENT_KIND.items())))
        return str(exp.experiment_id)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    location = (Path(root).resolve() / "artifacts" / safe).as_uri()
    return str(client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND))


def model_bytes(model: RiskModel) -> bytes:
    """The model's pickle, normalised by one round trip: a model fitted now and the same model
    read back from the step cache pickle to different bytes, their round trips to the same."""
    return pickle.dumps(pickle.loads(pickle.dumps(model)))  # our own object, just pickled


class MLflowTracker:
    """Implements :class:`toolkit.study.tracker.Tracker` on an MLflow store under ``root``."""

    def __init__(self, root: Path | str = "mlruns") -> None:
        self.root = Path(root)
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.uri = configure(self.root)

    def start(self, experiment: str, run_name: str, tags: Mapping[str, str]) -> str | None:
        exp_id = ensure_experiment(experiment, self.root)
        self.experiment_id = exp_id
        run = mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=dict(tags))
        self.run_id = run.info.run_id
        return self.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        clean = {re.sub(r"[^A-Za-z0-9_\-. /]", "_", k): float(v) for k, v in metrics.items() if v == v}
        if clean:
            mlflow.log_metrics(clean)

    def log_dataset(self, name: str, frame: pd.DataFrame, digest: str, context: str) -> None:
        # MLflow stores the schema, a profile (row count) and a digest; never the rows.
        with warnings.catch_warnings():
            # MLflow hints that integer columns cannot hold missing values; the schema is a record
            warnings.simplefilter("ignore")
            ds = from_pandas(frame, name=f"{name}@{digest}")
            mlflow.log_input(ds, context=context)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        mlflow.log_artifact(str(path), artifact_path)

    def describe_experiment(self, text: str) -> None:
        """The experiment's description (the UI shows it above the runs)."""
        if self.experiment_id is not None:
            MlflowClient().set_experiment_tag(self.experiment_id, "mlflow.note.content", text)

    def log_model_run(
        self,
        name: str,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        folds: list[Mapping[str, float]],
        model: RiskModel,
        example: pd.DataFrame,
        register_as: str,
        version: ModelVersionInfo | None = None,
    ) -> dict[str, Any]:
        """A nested run with the model's parameters, metrics and folds; the model logged and
        registered under ``register_as`` with ``version``'s description and tags, unless a version
        of that name already holds a model of the same content (``regent.model_sha256``): then
        that version is reused, and ``candidate`` points to it."""
        with mlflow.start_run(run_name=name, nested=True, experiment_id=self.experiment_id) as child:
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            self.log_metrics(metrics)
            for i, fold in enumerate(folds):
                with mlflow.start_run(
                    run_name=f"{name}-fold{i}", nested=True, experiment_id=self.experiment_id
                ):
                    mlflow.log_param("fold", i)
                    self.log_metrics({k: v for k, v in fold.items() if k != "fold"})
            blob = model_bytes(model)
            digest = hashlib.sha256(blob).hexdigest()
            mlflow.set_tag("regent.model_sha256", digest)
            if version is not None:
                mlflow.log_text("\n".join(version.features) + "\n", "features.txt")
            client = MlflowClient()
            existing = _version_with(client, register_as, digest)
            if existing is not None:
                mlflow.set_tags(
                    {
                        "regent.model_version": existing.version,
                        "regent.model_unchanged_since": existing.run_id,
                    }
                )
                client.set_registered_model_alias(register_as, "candidate", existing.version)
                return {
                    "mlflow_run_id": child.info.run_id,
                    "model_uri": f"models:/{register_as}/{existing.version}",
                    "registered_model": register_as,
                    "model_version": int(existing.version),
                }
            info = _log_pyfunc(blob, model, example)
            tags = {**(version.tags if version else {}), "regent.model_sha256": digest}
            with contextlib.redirect_stderr(io.StringIO()):  # MLflow prints registration chatter
                registered = mlflow.register_model(info.model_uri, register_as, tags=tags)
            if version is not None:
                client.update_model_version(register_as, registered.version, description=version.description)
            client.set_registered_model_alias(register_as, "candidate", registered.version)
            mlflow.set_tag("regent.model_version", registered.version)
            return {
                "mlflow_run_id": child.info.run_id,
                "model_uri": info.model_uri,
                "registered_model": register_as,
                "model_version": int(registered.version),
            }

    def close_run(self, run_id: str, status: str, message: str) -> None:
        """End another run (one whose process was killed) with ``status``, saying why."""
        client = MlflowClient()
        try:
            run = client.get_run(run_id)
        except mlflow.exceptions.MlflowException:
            return  # a run in another store, or deleted: nothing to close here
        if run.info.status == "RUNNING":
            client.set_tag(run_id, "regent.error", message)
            client.set_terminated(run_id, status=status)

    def end(self, status: str, error: str | None = None) -> None:
        if mlflow.active_run() is None:
            return
        if error:
            mlflow.set_tag("regent.error", error[:4000])
        while mlflow.active_run() is not None:
            mlflow.end_run(status=status)
