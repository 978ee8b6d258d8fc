"""The Spark backend gives the DuckDB backend's cohort, attrition and provenance exactly.

One local SparkSession for the module (start-up costs ~20 s); skipped without pyspark or Java.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
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


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    pytest.importorskip("pyspark")
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        pytest.skip("the Spark backend needs Java")
    from toolkit.cohort.spark import local_spark

    # left running: Spark allows one session per process and other modules reuse it
    yield local_spark()


def sorted_cohort(result: CohortResult) -> pd.DataFrame:
    return result.cohort.sort_values(["person_id", "index_time"]).reset_index(drop=True)


@pytest.mark.spark
@pytest.mark.parametrize("name", sorted(SPECS))
def test_spark_equals_duckdb(name: str, spark: SparkSession, hf_registry: Path) -> None:
    from toolkit.cohort.spark import run_cohort_spark

    with Registry(hf_registry) as reg:
        duck = run_cohort(SPECS[name], reg)
    sp = run_cohort_spark(SPECS[name], hf_registry, spark=spark)
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
def test_spark_backend_leaves_the_callers_session_alone(spark: SparkSession, hf_registry: Path) -> None:
    from toolkit.cohort.spark import SparkBackend

    before = set(spark.catalog.listTables())
    with SparkBackend(spark, hf_registry) as backend:
        assert {"person", "observation_period", "events"} <= {
            t.name for t in backend.spark.catalog.listTables()
        }
        assert backend.attributes() == {"smoking": "category"}
        frame = backend.query("SELECT person_id, time FROM events LIMIT 1")
        assert str(frame["person_id"].dtype) == "int64" and str(frame["time"].dtype) == "datetime64[us]"
        folder = backend._dir
    assert set(spark.catalog.listTables()) == before
    assert not folder.exists(), "exported Parquet files left behind"


def test_missing_pyspark_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from toolkit.cohort.spark import SparkUnavailableError, local_spark

    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    with pytest.raises(SparkUnavailableError, match=r"regent-toolkit\[spark\]"):
        local_spark()
