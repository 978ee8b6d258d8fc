"""Whole studies on Spark: the study engine's data stage on a Parquet lake gives DuckDB's results.

Every test shares the session's local Spark (tests/conftest.py); skipped without pyspark or Java.
The DuckDB runs read the registry file, the Spark runs the same registry converted to a lake.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from toolkit.cli.main import app
from toolkit.registry.store import Registry
from toolkit.study.data import build_study_data
from toolkit.study.engine import EngineSpec
from toolkit.study.new import new_study
from toolkit.study.plan import plan_study
from toolkit.study.runner import run_study

REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-9


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two results.json documents differ: keys, lengths, text, or numbers beyond 1e-9
    (relative above 1, absolute below)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: only in one" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [
            d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{i}]")
        ]
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        if math.isnan(a) and math.isnan(b):
            return []
        return [] if abs(a - b) <= TOLERANCE * max(1.0, abs(a)) else [f"{path}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def test_differences_sees_what_it_should() -> None:
    assert differences({"a": [1.0, {"b": "x"}]}, {"a": [1.0 + 1e-12, {"b": "x"}]}) == []
    assert differences({"a": 1.0}, {"a": 1.0 + 1e-6}) == ["/a: 1.0 vs 1.000001"]
    assert differences({"a": [1]}, {"a": [1, 2]}) == ["/a: 1 vs 2 items"]
    assert differences({"a": 1}, {"b": 1}) == ["/a: only in one", "/b: only in one"]


@pytest.mark.spark
@pytest.mark.parametrize("template", ["survival", "prediction", "competing-risks"])
def test_template_results_on_spark_equal_duckdb(
    template: str, spark: Any, hf_registry: Path, hf_lake: Path, tmp_path: Path
) -> None:
    study = new_study("spark_parity", template=template, directory=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the study's own SpecWarnings are not what this test checks
        duck = run_study(study, out=tmp_path / "duck", registry=hf_registry, use_cache=False)
        if template == "survival":  # one template through the command line: the options reach the engine
            # the lake named by URI, as an hdfs:// or s3a:// one would be: the text reaches Spark intact
            cli = [
                "study",
                "run",
                str(study),
                "--out",
                str(tmp_path / "spark"),
                "--registry",
                hf_lake.as_uri(),
            ]
            result = CliRunner().invoke(
                app, [*cli, "--engine", "spark", "--master", "local[2]", "--no-track"]
            )
            assert result.exit_code == 0, result.output
        else:
            on_spark = run_study(
                study, out=tmp_path / "spark", registry=hf_lake, use_cache=False, engine=EngineSpec("spark")
            )
            pd.testing.assert_frame_equal(duck.frame, on_spark.frame)
    a = json.loads((tmp_path / "duck" / "results.json").read_text())
    b = json.loads((tmp_path / "spark" / "results.json").read_text())
    assert a["registry"]["source"] != b["registry"]["source"]  # one read the file, the other the lake
    a["registry"].pop("source"), b["registry"].pop("source")
    assert differences(a, b) == []
    assert a["cohort"]["n"] > 100 and (a["analyses"] or a["models"])


@pytest.mark.spark
def test_notes_and_images_study_data_on_spark_equal_duckdb(
    spark: Any, hf_registry: Path, hf_lake: Path
) -> None:
    """hf_mortality's data stage: cohort, window features, note features (extracted on the executors)
    and image features (measured on the driver from the lake's folder)."""
    from toolkit.cohort.spark import SparkBackend

    plan = plan_study(REPO / "studies/hf_mortality")
    assert set(plan.spec.features.modalities) == {"structured", "notes", "images"}
    with Registry(hf_registry) as reg:
        duck = build_study_data(plan, reg)
    with SparkBackend(spark, hf_lake) as backend:
        on_spark = build_study_data(plan, backend)
    assert on_spark.digest == duck.digest and on_spark.cohort_key == duck.cohort_key
    notes = [c for c in duck.frame.columns if c.startswith("note_")]
    images = [c for c in duck.frame.columns if c.startswith("img_")]
    assert len(notes) > 5 and len(images) > 1 and duck.frame[notes].to_numpy().sum() > 100
    pd.testing.assert_frame_equal(duck.frame, on_spark.frame)
    assert sorted(map(str, duck.quality)) == sorted(map(str, on_spark.quality))


@pytest.mark.spark
def test_the_driver_limit_stops_before_collecting(spark: Any, hf_lake: Path) -> None:
    from toolkit.cohort.spark import SparkBackend
    from toolkit.errors import RegistryError

    plan = plan_study(REPO / "studies/hf_mortality")
    with (
        SparkBackend(spark, hf_lake, max_rows=50) as backend,
        pytest.raises(
            RegistryError, match=r"more than 50 rows, the most the Spark engine brings to the driver"
        ),
    ):
        build_study_data(plan, backend)


def test_the_cli_refuses_an_unknown_engine(tmp_path: Path) -> None:
    from toolkit.errors import StudySpecError

    result = CliRunner().invoke(
        app,
        ["study", "run", str(REPO / "studies/gbsg2_recurrence"), "--out", str(tmp_path), "--engine", "flink"],
    )
    assert isinstance(result.exception, StudySpecError) and "--engine: expected duckdb or spark" in str(
        result.exception
    )
    assert not any(tmp_path.iterdir()), "nothing is written before the engine is known"


def test_engine_options_are_checked() -> None:
    from toolkit.errors import StudySpecError

    with pytest.raises(StudySpecError, match=r"--engine: expected duckdb or spark; got 'flink'"):
        EngineSpec("flink")  # type: ignore[arg-type]
    with pytest.raises(StudySpecError, match=r"--distributed-rows must be >= 0"):
        EngineSpec("spark", distributed_rows=-1)
    assert EngineSpec("spark").registry_format == "parquet" and EngineSpec().registry_format == "duckdb"


def test_shipped_and_synthetic_registries_are_built_as_lakes_for_spark(data_dir: Path) -> None:
    from toolkit.registry.lake import read_manifest
    from toolkit.study.runner import resolve_registry
    from toolkit.study.spec import RegistrySource, SyntheticRegistry

    spec = plan_study(REPO / "studies/gbsg2_recurrence").spec
    path, label = resolve_registry(spec, REPO, format="parquet")
    assert path.name == "gbsg2-lake" and label == "dataset:gbsg2"
    assert read_manifest(path).tables["person"].rows == 686  # GBSG2's patients
    tiny = RegistrySource(
        synthetic=SyntheticRegistry(patients=60, sites=2, seed=1, notes=False, images=False)
    )
    path, _ = resolve_registry(spec.model_copy(update={"registry": tiny}), REPO, format="parquet")
    assert path.name.endswith("-lake") and read_manifest(path).tables["person"].rows == 60
    duck, _ = resolve_registry(spec.model_copy(update={"registry": tiny}), REPO)
    with Registry(duck) as a, Registry(path) as b:
        assert a.digest() == b.digest()  # the same registry, in the other format
