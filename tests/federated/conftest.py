"""Fixtures for the privacy tests: a synthetic three-site registry split into site registries,
and a study that uses every federated analysis type."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

#: Every analysis with a federated protocol, on the synthetic heart-failure registry.
ANALYSES = [
    {
        "name": "t1",
        "type": "table1",
        "by": "sex",
        "variables": ["age", "lvef", "nt_probnp", "diabetes", "smoking"],
    },
    {"name": "km_sex", "type": "kaplan_meier", "by": "sex", "times": [90, 365, 730]},
    {"name": "km_strat", "type": "kaplan_meier", "by": "age_band", "strata": "sex", "times": [365]},
    {"name": "lr_sex", "type": "logrank", "by": "sex", "strata": "smoking"},
    {"name": "cox_efron", "type": "cox", "covariates": ["age", "sex", "lvef", "creatinine", "diabetes"]},
    {"name": "cox_breslow", "type": "cox", "ties": "breslow", "covariates": ["age", "lvef"], "strata": "sex"},
    {
        "name": "logit_1y",
        "type": "logistic",
        "outcome": "label_365d",
        "covariates": ["age", "sex", "lvef", "copd"],
    },
]


def make_study(folder: Path, registry: Path, analyses: list[dict[str, object]], **extra: object) -> Path:
    """A copy of hf_mortality's cohort and structured features with the given analyses."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = yaml.safe_load((REPO / "studies/hf_mortality/study.yaml").read_text())
    features = {k: v for k, v in spec["features"].items() if k in ("static", "windows")}
    study = {
        "name": "fed_test",
        "title": "Federated test study",
        "registry": {"path": str(registry)},
        "cohort": "cohort.yaml",
        "features": features,
        "analyses": analyses,
        "seed": 7,
        **extra,
    }
    (folder / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    shutil.copy(REPO / "studies/hf_mortality/cohort.yaml", folder / "cohort.yaml")
    return folder


@pytest.fixture(scope="session")
def pooled_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toolkit.registry.synth.heart_failure import SynthConfig, synthesize

    return synthesize(
        tmp_path_factory.mktemp("fed") / "hf.duckdb", SynthConfig(1800, 3, 23, notes=False, images=False)
    )


@pytest.fixture(scope="session")
def site_registries(pooled_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from toolkit.federated import split_registry

    return split_registry(pooled_registry, tmp_path_factory.mktemp("sites"))


@pytest.fixture(scope="session")
def fed_study(pooled_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_study(tmp_path_factory.mktemp("study"), pooled_registry, ANALYSES)
