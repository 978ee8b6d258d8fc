"""What the study runner tells an experiment tracker.  The runner depends on this protocol only;
``toolkit.tracking`` implements it with MLflow (the core never imports mlflow).

Optional: ``close_run(run_id, status, message)`` ends another run, which the runner uses to close
the run of a killed process when it resumes that run's work; ``describe_experiment(text)`` sets
the experiment's description; ``experiment_id`` and ``uri`` let a notebook link to the run.
Trackers without them still work.

``log_model_run`` registers the model under ``register_as`` with ``version`` (a description and
tags); a tracker that finds a version whose artifact has the same content registers no new one
and returns that version."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from toolkit.analysis.predict.models import RiskModel


class Tracker(Protocol):
    run_id: str | None

    def start(self, experiment: str, run_name: str, tags: Mapping[str, str]) -> str | None: ...

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float]) -> None: ...

    def log_dataset(self, name: str, frame: pd.DataFrame, digest: str, context: str) -> None: ...

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...

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
    ) -> dict[str, Any]: ...

    def end(self, status: str, error: str | None = None) -> None: ...


class NullTracker:
    """Tracks nothing (notebooks without MLflow, unit tests)."""

    run_id: str | None = None

    def start(self, experiment: str, run_name: str, tags: Mapping[str, str]) -> str | None:
        return None

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        pass

    def log_dataset(self, name: str, frame: pd.DataFrame, digest: str, context: str) -> None:
        pass

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        pass

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
        return {}

    def end(self, status: str, error: str | None = None) -> None:
        pass


@dataclass(frozen=True)
class ModelVersionInfo:
    """What a registered model version says of itself: a description, tags (study, spec and
    cohort spec hashes, key metrics with their 95% CIs, what the counts rest on) and the features
    it takes.  Built by :func:`toolkit.study.registration.model_version_info`."""

    description: str
    tags: Mapping[str, str]
    features: tuple[str, ...]
