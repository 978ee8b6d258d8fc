"""Which engine runs a study's data stage: DuckDB in process (the default) or Spark on a lake.

Both run the same stage (:mod:`toolkit.study.data`) through the cohort ``Backend`` protocol:
cohort SQL, window-feature SQL and the note extractor run where the engine runs; the analysis
matrix (one row per cohort row) comes back to the driver for the statistics and the models.
On Spark, the XGBoost models of a large matrix train with ``xgboost.spark``
(:mod:`toolkit.analysis.predict.distributed`).

>>> with open_backend(EngineSpec("spark", master="local[2]"), Path("data/hf_lake")) as backend:  # doctest: +SKIP
...     data = build_study_data(plan, backend)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from toolkit.analysis.predict.distributed import SparkXGBTrainer, distributed_training
from toolkit.cohort.run import Backend, DuckDBBackend
from toolkit.errors import StudySpecError
from toolkit.registry.store import Registry

#: Rows of the analysis matrix the Spark engine brings to the driver before it refuses.  Measured
#: by bench/scale.py (docs/scale.md): the driver peaked at ~2.4 KB per row through the survival
#: template's analyses, so 10M rows want ~24 GB of driver memory.
DEFAULT_DRIVER_MAX_ROWS = 10_000_000
#: XGBoost matrices at least this large train distributed on the Spark engine.
DEFAULT_DISTRIBUTED_ROWS = 1_000_000


@dataclass(frozen=True)
class EngineSpec:
    """``regent study run --engine ... --master ... --distributed-rows ... --driver-max-rows ...``."""

    name: Literal["duckdb", "spark"] = "duckdb"
    master: str = "local[2]"
    distributed_rows: int = DEFAULT_DISTRIBUTED_ROWS
    driver_max_rows: int = DEFAULT_DRIVER_MAX_ROWS
    num_workers: int = 2

    def __post_init__(self) -> None:
        if self.name not in ("duckdb", "spark"):
            raise StudySpecError(f"--engine: expected duckdb or spark; got {self.name!r}")
        if self.distributed_rows < 0 or self.driver_max_rows < 1 or self.num_workers < 1:
            raise StudySpecError(
                "--distributed-rows must be >= 0, --driver-max-rows and the workers >= 1; got "
                f"{self.distributed_rows}, {self.driver_max_rows}, {self.num_workers}"
            )

    @property
    def registry_format(self) -> str:
        """The storage a shipped or synthetic registry is built in for this engine."""
        return "parquet" if self.name == "spark" else "duckdb"


@contextmanager
def open_backend(engine: EngineSpec, path: Path | str) -> Iterator[Backend]:
    """The registry at ``path`` opened on ``engine`` (a DuckDB file or lake; a lake for Spark,
    which may also be a URI such as ``hdfs://...`` or ``s3a://...``)."""
    if engine.name == "duckdb":
        if "://" in str(path):
            raise StudySpecError(
                f"{path}: DuckDB reads local registries; a lake at a URI needs --engine spark"
            )
        with Registry(path) as reg:
            yield DuckDBBackend(reg)
        return
    from toolkit.cohort.spark import SparkBackend, local_spark

    spark = local_spark(master=engine.master)
    with SparkBackend(spark, path, max_rows=engine.driver_max_rows) as backend:
        yield backend


@contextmanager
def model_training(engine: EngineSpec, backend: Any) -> Iterator[None]:
    """The model steps' XGBoost training: distributed on the Spark engine for large matrices."""
    trainer = None
    if engine.name == "spark":
        trainer = SparkXGBTrainer(
            backend.spark, min_rows=engine.distributed_rows, num_workers=engine.num_workers
        )
    with distributed_training(trainer):
        yield
