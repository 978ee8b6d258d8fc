"""The Spark backend: the same compiled cohort, run by Spark SQL on a registry's tables.

The DuckDB registry is exported table by table to Parquet in a temporary folder (DuckDB writes
it; Spark reads it with an explicit schema, so naive timestamps stay ``TIMESTAMP_NTZ`` whatever
the session time zone) and each table becomes a temporary view.  The cohort SQL is the DuckDB
query transpiled by :meth:`CompiledCohort.sql_for`; results come back as pandas frames with the
dtypes the DuckDB backend gives, so both backends produce identical :class:`CohortResult` objects.

pyspark is an optional extra (``pip install 'regent-toolkit[spark]'``) and is imported lazily.

>>> result = run_cohort_spark("studies/hf_mortality/cohort.yaml", "data/hf.duckdb")  # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from toolkit.cohort.compile import compile_cohort
from toolkit.cohort.run import CohortResult, execute
from toolkit.cohort.spec import CohortSpec, load_cohort
from toolkit.errors import RegistryError, ToolkitError
from toolkit.io import atomic_write_text
from toolkit.registry.store import Registry

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: The registry tables the cohort engine reads.
COHORT_TABLES = ("person", "observation_period", "events")

#: Spark settings for a small local session (two cores, a few GB).  Measured on the two cohorts of
#: tests/cohort (JVM CPU time, warm): adaptive execution off, two shuffle partitions and no
#: constraint propagation take about a third less CPU than the defaults, because a cohort query is
#: many small joins that adaptive re-planning and 200 partitions only slow down.  Without adaptive
#: execution those joins stay sort-merge joins, one sorter each, all in a task at once: the
#: default memory page (up to 64 MB per sorter) ran out of memory on 20,000 persons, so pages are
#: 2 MB.  A session you pass in keeps its own settings.
LOCAL_CONF: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.sql.constraintPropagation.enabled": "false",
    "spark.driver.memory": "2g",
    "spark.buffer.pageSize": "2m",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}

_LOG4J = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n
"""

# DuckDB column types (as the registry reports them) -> Spark SQL types.
_SPARK_TYPES = {
    "BIGINT": "bigint",
    "INTEGER": "int",
    "DOUBLE": "double",
    "FLOAT": "float",
    "VARCHAR": "string",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP": "timestamp_ntz",
}


class SparkUnavailableError(ToolkitError, ImportError):
    """pyspark (or Java) is not installed."""


def _pyspark() -> Any:
    try:
        import pyspark.sql
    except ImportError:
        raise SparkUnavailableError(
            "the Spark backend needs pyspark: pip install 'regent-toolkit[spark]' (and Java 17+)"
        ) from None
    return pyspark.sql


def local_spark(app_name: str = "regent", *, conf: dict[str, str] | None = None) -> SparkSession:
    """A quiet local Spark session (``local[2]``); ``conf`` overrides :data:`LOCAL_CONF`.

    Returns the active session if one exists (Spark allows one per process); its settings are
    then the caller's.
    """
    sql = _pyspark()
    log4j = Path(tempfile.gettempdir()) / "regent-spark-log4j2.properties"
    if not log4j.exists():
        atomic_write_text(log4j, _LOG4J)
    builder = sql.SparkSession.builder.master("local[2]").appName(app_name)
    settings = {
        **LOCAL_CONF,
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{log4j}",
        **(conf or {}),
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


class SparkBackend:
    """A registry's tables as Spark temporary views; implements the cohort ``Backend`` protocol.

    Use as a context manager: closing drops the views, releases cached tables and removes the
    exported Parquet files.

    >>> with SparkBackend(spark, "data/hf.duckdb") as backend:  # doctest: +SKIP
    ...     result = execute(compile_cohort(spec, attributes=backend.attributes()), backend)
    """

    dialect = "spark"

    def __init__(
        self,
        spark: SparkSession,
        registry_path: Path | str,
        *,
        tables: tuple[str, ...] = COHORT_TABLES,
    ) -> None:
        # A child session: its temporary views and settings never touch the caller's.
        self.spark = spark.newSession()
        self.spark.conf.set("spark.sql.session.timeZone", "UTC")
        self.registry_path = Path(registry_path)
        self._dir = Path(tempfile.mkdtemp(prefix="regent-spark-"))
        self._views: list[str] = []
        self._cached: list[DataFrame] = []
        try:
            with Registry(self.registry_path) as reg:
                self._attributes = {a.name: a.dtype for a in reg.attributes()}
                for table in tables:
                    self._register(reg, table)
        except BaseException:
            self.close()
            raise

    def _register(self, reg: Registry, table: str) -> None:
        columns = reg.columns(table)
        unknown = sorted(c for c, t in columns.items() if t not in _SPARK_TYPES)
        if unknown:
            raise RegistryError(
                f"{self.registry_path}: table {table!r}: no Spark type for column(s) {unknown}"
            )
        path = self._dir / f"{table}.parquet"
        reg.con.execute(f"COPY (SELECT * FROM {table}) TO '{_sql_str(str(path))}' (FORMAT parquet)")
        schema = ", ".join(f"`{c}` {_SPARK_TYPES[t]}" for c, t in columns.items())
        self.spark.read.schema(schema).parquet(str(path)).createOrReplaceTempView(table)
        self._views.append(table)

    # --- the Backend protocol ------------------------------------------------------------
    def materialize(self, name: str, sql: str) -> None:
        """Compute ``sql`` once, cache it and register it as the view ``name``."""
        frame = self.spark.sql(sql).persist()
        frame.count()  # persist is lazy; every later query reads the cached rows
        frame.createOrReplaceTempView(name)
        self._cached.append(frame)
        if name not in self._views:
            self._views.append(name)

    def query(self, sql: str) -> pd.DataFrame:
        """Run ``sql``; integers come back as int64 and timestamps as datetime64[us], as from DuckDB."""
        return _duckdb_dtypes(self.spark.sql(sql).toPandas())

    def attributes(self) -> dict[str, str]:
        return dict(self._attributes)

    # --- lifetime --------------------------------------------------------------------------
    def close(self) -> None:
        for frame in self._cached:
            frame.unpersist()
        self._cached.clear()
        for view in self._views:
            self.spark.catalog.dropTempView(view)
        self._views.clear()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> SparkBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _duckdb_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Spark's pandas conversion gives int32 for INT and datetime64[ns]; DuckDB gives int64 and [us]."""
    out = frame.copy()
    for col in out.columns:
        dtype = out[col].dtype
        if pd.api.types.is_integer_dtype(dtype) and not isinstance(dtype, pd.api.extensions.ExtensionDtype):
            out[col] = out[col].astype("int64")
        elif pd.api.types.is_datetime64_dtype(dtype):
            out[col] = out[col].astype("datetime64[us]")
    return out


def _sql_str(value: str) -> str:
    return value.replace("'", "''")


def run_cohort_spark(
    spec_or_path: CohortSpec | Path | str,
    registry_path: Path | str,
    *,
    spark: SparkSession | None = None,
) -> CohortResult:
    """Compile and run a cohort with Spark SQL; the same result as :func:`toolkit.cohort.run.run_cohort`.

    Without ``spark`` a local session is started (about 20 s) and left running for reuse.
    """
    source = "cohort"
    if isinstance(spec_or_path, CohortSpec):
        spec = spec_or_path
    else:
        source = str(spec_or_path)
        spec = load_cohort(spec_or_path)
    with SparkBackend(spark or local_spark(), registry_path) as backend:
        compiled = compile_cohort(spec, attributes=backend.attributes(), source=source)
        return execute(compiled, backend)
