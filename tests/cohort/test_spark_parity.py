"""The Spark backend, reading the registry's Parquet tables in place, gives the DuckDB backend's
cohort, attrition and provenance exactly.

The session-wide local SparkSession (tests/conftest.py); skipped without pyspark or Java.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from toolkit.cohort.run import CohortResult, run_cohort
from toolkit.registry import Registry

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

REPO = Path(__file__).resolve().parents[2]
SPECS = {
    "hf_mortality": REPO / "studies/hf_mortality/cohort.yaml",
    "every_criterion": Path(__file__).parent / "specs/every_criterion.yaml",
}


def sorted_cohort(result: CohortResult) -> pd.DataFrame:
    return result.cohort.sort_values(["person_id", "index_time"]).reset_index(drop=True)


@pytest.mark.spark
@pytest.mark.parametrize("name", sorted(SPECS))
def test_spark_equals_duckdb(name: str, spark: SparkSession, hf_registry: Path, hf_lake: Path) -> None:
    from toolkit.cohort.spark import run_cohort_spark

    with Registry(hf_registry) as reg:
        duck = run_cohort(SPECS[name], reg)
    sp = run_cohort_spark(SPECS[name], hf_lake, spark=spark)
    assert sp.compiled == duck.compiled
    assert len(duck.cohort) > 100 and duck.events > 10, "the parity check needs a non-trivial cohort"
    pd.testing.assert_frame_equal(sorted_cohort(sp), sorted_cohort(duck), check_exact=True)
    pd.testing.assert_frame_equal(sp.attrition.table, duck.attrition.table, check_exact=True)
    pd.testing.assert_frame_equal(sp.provenance, duck.provenance, check_exact=True)


@pytest.mark.spark
def test_every_criterion_spec_exercises_what_it_claims(hf_registry: Path) -> None:
    """Guards the parity test's coverage: competing events, each censor reason and multi-entry."""
    with Registry(hf_registry) as reg:
        result = run_cohort(SPECS["every_criterion"], reg)
    assert set(result.cohort["event"].dropna()) == {0, 1, 2}
    assert {"censoring_event", "calendar_date", "end_of_time_at_risk", "end_of_observation"} <= set(
        result.cohort["censor_reason"].dropna()
    )
    assert result.cohort["person_id"].duplicated().any(), "occurrence: all should give repeat entries"
    removed = result.attrition.table.set_index("step")["removed"]
    assert (removed.iloc[1:] > 0).sum() >= 8, "most steps should remove someone"


@pytest.mark.spark
def test_spark_backend_reads_the_lake_in_place_and_leaves_the_callers_session_alone(
    spark: SparkSession, hf_lake: Path
) -> None:
    from toolkit.cohort.spark import SparkBackend

    before = set(spark.catalog.listTables())
    files = sorted(p for p in hf_lake.rglob("*") if p.is_file())
    # as a URI, the way an hdfs:// or s3a:// lake is named: the manifest is read through Spark too
    with SparkBackend(spark, hf_lake.as_uri()) as backend:
        assert backend.path == hf_lake  # a file:// lake still has a local folder for image files
        assert {"person", "observation_period", "events", "notes", "images"} <= {
            t.name for t in backend.spark.catalog.listTables()
        }
        assert backend.attributes() == {"smoking": "category"}
        frame = backend.query("SELECT * FROM events LIMIT 1")
        assert list(frame.columns) == ["person_id", "time", "code", "numeric_value", "text_value", "unit"]
        assert str(frame["person_id"].dtype) == "int64" and str(frame["time"].dtype) == "datetime64[us]"
        assert not any(hasattr(backend, a) for a in ("_dir", "registry_path")), "nothing is exported"
    assert set(spark.catalog.listTables()) == before
    assert sorted(p for p in hf_lake.rglob("*") if p.is_file()) == files, "the lake is read, never written"


@pytest.mark.spark
def test_spark_refuses_a_duckdb_file_and_points_to_convert(spark: SparkSession, hf_registry: Path) -> None:
    from toolkit.cohort.spark import run_cohort_spark
    from toolkit.errors import RegistryError

    with pytest.raises(RegistryError, match=r"regent registry convert .* --to parquet"):
        run_cohort_spark(SPECS["hf_mortality"], hf_registry, spark=spark)


@pytest.mark.spark
def test_spark_refuses_a_lake_whose_files_changed(spark: SparkSession, hf_lake: Path, tmp_path: Path) -> None:
    import json
    import shutil

    from toolkit.cohort.spark import SparkBackend
    from toolkit.errors import RegistryError

    copy = tmp_path / "lake"
    shutil.copytree(hf_lake, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["tables"]["events"]["rows"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RegistryError, match=r"table 'events' has \d+ rows; manifest.json says"):
        SparkBackend(spark, copy)


def test_missing_pyspark_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from toolkit.cohort.spark import SparkUnavailableError, local_spark

    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    with pytest.raises(SparkUnavailableError, match=r"regent-toolkit\[spark\]"):
        local_spark()
