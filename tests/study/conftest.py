"""Fixtures for the study tests: a small synthetic registry (no notes or images) built once."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_hf_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toolkit.registry.synth.heart_failure import SynthConfig, synthesize

    return synthesize(
        tmp_path_factory.mktemp("hf-small") / "hf.duckdb", SynthConfig(1500, 3, 5, notes=False, images=False)
    )
