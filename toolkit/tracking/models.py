"""Fetch registered models and their run's evidence from MLflow; set registry aliases."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from toolkit.agents.bundle import ModelArtifacts
from toolkit.agents.contract import ModelSource
from toolkit.errors import AgentError
from toolkit.study.results import read_results
from toolkit.tracking.mlflow_tracker import configure


class MLflowModelStore:
    def __init__(self, root: Path | str = "mlruns") -> None:
        configure(root)
        self.client = MlflowClient()
        self._tmp = tempfile.mkdtemp(prefix="regent-fetch-")

    def close(self) -> None:
        """Remove the downloaded artifacts (bundles are copies, so they stay valid)."""
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> MLflowModelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch(self, source: ModelSource, name: str) -> ModelArtifacts:
        try:
            version: int | None
            if source.run_id:
                run_id: str = source.run_id
                version = None
                model_uri = f"runs:/{run_id}/model"
            else:
                mv = self.client.get_model_version_by_alias(name, source.alias)
                run_id, version, model_uri = str(mv.run_id), int(mv.version), f"models:/{name}@{source.alias}"
            run = self.client.get_run(run_id)
        except MlflowException as exc:
            raise AgentError(
                f"cannot find model {name!r} with alias {source.alias!r} in the MLflow store "
                f"({exc.error_code}); run the study first: regent study run {source.study}"
            ) from None
        parent = run.data.tags.get("mlflow.parentRunId", run_id)
        dest = Path(self._tmp) / run_id
        model_dir = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dest / "m"))
        )
        results_path = Path(
            mlflow.artifacts.download_artifacts(
                run_id=parent, artifact_path="results.json", dst_path=str(dest / "r")
            )
        )
        try:
            report = Path(
                mlflow.artifacts.download_artifacts(
                    run_id=parent, artifact_path="report.html", dst_path=str(dest / "r")
                )
            )
        except MlflowException:
            report = None
        results = read_results(results_path)
        return ModelArtifacts(model_dir, results, report, run_id, None if source.run_id else name, version)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self.client.set_registered_model_alias(name, alias, str(version))
