"""Fixtures for the study tests: a small synthetic registry, built once."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_hf_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toolkit.registry.synth.heart_failure import SynthConfig, synthesize

    # with notes and images: the flagship study uses imaging and note features
    return synthesize(tmp_path_factory.mktemp("hf-small") / "hf.duckdb", SynthConfig(1500, 3, 5))


@pytest.fixture(scope="session")
def nb_mlruns(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow store for the notebook tests: creating a store (its migrations) takes seconds."""
    return tmp_path_factory.mktemp("nb") / "mlruns"
