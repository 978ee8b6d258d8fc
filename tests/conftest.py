"""Shared fixtures: real registries, a real MLflow store and real bundles, built once per session."""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20241128)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """REGENT_DATA for the session: shipped and synthetic registries are built here."""
    d = tmp_path_factory.mktemp("regent-data")
    old = os.environ.get("REGENT_DATA")
    os.environ["REGENT_DATA"] = str(d)
    yield d
    if old is None:
        os.environ.pop("REGENT_DATA", None)
    else:
        os.environ["REGENT_DATA"] = old


@pytest.fixture(scope="session")
def hf_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toolkit.registry.synth.heart_failure import SynthConfig, synthesize

    return synthesize(tmp_path_factory.mktemp("hf") / "hf.duckdb", SynthConfig(2000, 3, 11))


@pytest.fixture(scope="session")
def hf_lake(hf_registry: Path) -> Path:
    """The same registry as a folder of Parquet tables (same digest), beside the file."""
    from toolkit.registry.lake import write_lake

    return write_lake(hf_registry, hf_registry.with_name("hf_lake"))


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """One local Spark session (``local[2]``) for every Spark test: starting one costs ~20 s and
    Spark allows one per process.  Skipped without pyspark or Java."""
    pytest.importorskip("pyspark")
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        pytest.skip("the Spark engine needs Java")
    from toolkit.cohort.spark import local_spark

    session = local_spark("regent-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def gbsg2_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):  # type: ignore[no-untyped-def]
    """The gbsg2 study run once, tracked in a real MLflow store."""
    from toolkit.study.runner import run_study
    from toolkit.tracking.mlflow_tracker import MLflowTracker

    root = tmp_path_factory.mktemp("gbsg2-run")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_study(
            REPO / "studies/gbsg2_recurrence", out=root / "out", tracker=MLflowTracker(root / "mlruns")
        )
    return run, root / "mlruns", root


@pytest.fixture(scope="session")
def gbsg2_bundle(gbsg2_run, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    from toolkit.agents.package import package_agent
    from toolkit.tracking.models import MLflowModelStore

    _, mlruns, _ = gbsg2_run
    with MLflowModelStore(mlruns) as store, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path, _, art = package_agent(
            REPO / "agents/gbsg2-recurrence",
            store.fetch,
            dist=tmp_path_factory.mktemp("dist"),
            repo_root=REPO,
        )
        store.set_alias(str(art.registered_model), "validated", int(art.model_version or 0))
    return path
