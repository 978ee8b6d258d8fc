"""The Spark engine: a registry's Parquet tables (a lake, :mod:`toolkit.registry.lake`) read in place.

Nothing is exported: each table of the lake becomes a temporary view over its own files, read
with the schema its manifest declares (naive timestamps stay ``TIMESTAMP_NTZ`` whatever the
session time zone), so the lake can sit on local disk, HDFS or S3 (any Hadoop path Spark reads).
The cohort SQL is the DuckDB query transpiled by :meth:`CompiledCohort.sql_for`; results come
back as pandas frames with the dtypes the DuckDB backend gives, so both backends produce
identical :class:`CohortResult` objects, and the study engine's data stage
(:mod:`toolkit.study.data`) runs on either through the same :class:`~toolkit.cohort.run.Backend`
protocol.

pyspark is an optional extra (``pip install 'regent-toolkit[spark]'``) and is imported lazily.

>>> result = run_cohort_spark("studies/hf_mortality/cohort.yaml", "data/hf_lake")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from toolkit.cohort.compile import compile_cohort
from toolkit.cohort.run import CohortResult, execute
from toolkit.cohort.spec import CohortSpec, load_cohort
from toolkit.errors import CohortSpecError, RegistryError, ToolkitError
from toolkit.io import atomic_write_text
from toolkit.registry.lake import BUCKET_COLUMN, MANIFEST, Manifest, parse_manifest

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Settings every session gets: no UI, UTC, Arrow transfers, workers on this Python.
COMMON_CONF: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}

#: Extra settings for a small local session (two cores, a few GB).  Measured on the two cohorts
#: of tests/cohort (JVM CPU time, warm): adaptive execution off, two shuffle partitions and no
#: constraint propagation take about a third less CPU than the defaults, because a cohort query
#: is many small joins that adaptive re-planning and 200 partitions only slow down.  Without
#: adaptive execution those joins stay sort-merge joins, one sorter each, all in a task at once:
#: the default memory page (up to 64 MB per sorter) ran out of memory on 20,000 persons, so pages
#: are 2 MB.  A cluster (``spark://``) keeps its own defaults; a session you pass in keeps its own.
LOCAL_CONF: dict[str, str] = {
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.sql.constraintPropagation.enabled": "false",
    "spark.driver.memory": "2g",
    "spark.buffer.pageSize": "2m",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
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

# Canonical column types (the lake manifest's) -> Spark SQL types.
SPARK_TYPES = {
    "BIGINT": "bigint",
    "DOUBLE": "double",
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
            "the Spark engine needs pyspark: pip install 'regent-toolkit[spark]' (and Java 17+)"
        ) from None
    return pyspark.sql


def local_spark(
    app_name: str = "regent", *, master: str = "local[2]", conf: dict[str, str] | None = None
) -> SparkSession:
    """A quiet Spark session on ``master`` (``local[N]`` or ``spark://HOST:PORT``); ``conf``
    overrides :data:`COMMON_CONF` (and :data:`LOCAL_CONF` for a local master).

    Returns the active session if one exists (Spark allows one per process); its settings are
    then the caller's.
    """
    sql = _pyspark()
    if not (master.startswith("local") or master.startswith(("spark://", "yarn", "k8s://"))):
        raise RegistryError(
            f"--master: expected local[N], spark://HOST:PORT, yarn or k8s://...; got {master!r}"
        )
    log4j = Path(tempfile.gettempdir()) / "regent-spark-log4j2.properties"
    if not log4j.exists():
        atomic_write_text(log4j, _LOG4J)
    # Python workers (the note extractor, XGBoost's trainers) run this interpreter, with its packages;
    # pyspark reads the variable when the context starts, and a cluster's own setting wins
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = sql.SparkSession.builder.master(master).appName(app_name)
    settings = {
        **COMMON_CONF,
        **(LOCAL_CONF if master.startswith("local") else {}),
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{log4j}",
        **(conf or {}),
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def read_manifest_any(spark: SparkSession, lake: str) -> Manifest:
    """A lake's manifest: from local disk for a path, through Spark for a URI (``hdfs://``,
    ``s3a://``, ``file://``), so it is read wherever the tables are."""
    local = None if "://" in lake else Path(lake)
    source = f"{lake.rstrip('/')}/{MANIFEST}"
    if local is not None:
        if local.is_file():
            raise RegistryError(
                f"{lake}: is a file; the Spark engine reads a Parquet registry folder. Convert it once: "
                f"regent registry convert {lake} --to parquet --out LAKE/"
            )
        if not (local / MANIFEST).is_file():
            raise RegistryError(f"{lake}: not a Parquet registry (no {MANIFEST})")
        return parse_manifest((local / MANIFEST).read_text(encoding="utf-8"), source=source)
    try:
        text = spark.sparkContext.wholeTextFiles(source).collect()
    except Exception as exc:  # py4j errors carry the JVM's whole message; name the path only
        raise RegistryError(f"{source}: cannot be read by Spark ({type(exc).__name__})") from None
    if not text:
        raise RegistryError(f"{lake}: not a Parquet registry (no {MANIFEST})")
    return parse_manifest(text[0][1], source=source)


class SparkBackend:
    """A lake's tables as Spark temporary views; implements the :class:`~toolkit.cohort.run.Backend`
    protocol the cohort engine and the study's data stage run on.

    Use as a context manager: closing drops the views and releases cached tables.  Each table's
    row count is checked against the manifest when it is opened (``verify``).

    >>> with SparkBackend(spark, "data/hf_lake") as backend:  # doctest: +SKIP
    ...     result = execute(compile_cohort(spec, attributes=backend.attributes()), backend)
    """

    dialect = "spark"

    def __init__(
        self,
        spark: SparkSession,
        lake: Path | str,
        *,
        tables: tuple[str, ...] | None = None,
        verify: bool = True,
        max_rows: int | None = None,
    ) -> None:
        # A child session: its temporary views and settings never touch the caller's.
        self.spark = spark.newSession()
        self.spark.conf.set("spark.sql.session.timeZone", "UTC")
        self.lake = str(lake)
        # a local folder (image files are read from it on the driver); None for a remote URI
        self.path = (
            Path(self.lake.removeprefix("file://"))
            if "://" not in self.lake or self.lake.startswith("file://")
            else None
        )
        self.manifest = read_manifest_any(spark, self.lake)
        self.max_rows = max_rows
        self._views: list[str] = []
        self._cached: list[DataFrame] = []
        try:
            for name, table in self.manifest.tables.items():
                if tables is None or name in tables:
                    self._register(name, table.columns, bool(table.partitioned_by))
            if verify:
                self._verify_rows()
            self._attributes = self._read_attributes()
        except BaseException:
            self.close()
            raise

    def _register(self, name: str, columns: dict[str, str], bucketed: bool) -> None:
        unknown = sorted(c for c, t in columns.items() if t not in SPARK_TYPES)
        if unknown:
            raise RegistryError(f"{self.lake}: table {name!r}: no Spark type for column(s) {unknown}")
        schema = ", ".join(f"`{c}` {SPARK_TYPES[t]}" for c, t in columns.items())
        path = f"{self.lake.rstrip('/')}/{name}"
        frame = self.spark.read.schema(schema).parquet(path)
        if bucketed:  # the partition column is the layout's, not the table's
            frame = frame.drop(BUCKET_COLUMN)
        frame.createOrReplaceTempView(name)
        self._views.append(name)

    def _verify_rows(self) -> None:
        """Every table's row count against the manifest, in one query (Parquet footers only)."""
        parts = [f"SELECT '{v}' AS t, COUNT(*) AS n FROM {v}" for v in self._views]
        got = {r["t"]: int(r["n"]) for r in self.spark.sql(" UNION ALL ".join(parts)).collect()}
        for name in self._views:
            rows = self.manifest.tables[name].rows
            if got[name] != rows:
                raise RegistryError(
                    f"{self.lake}: table {name!r} has {got[name]} rows; {MANIFEST} says {rows} "
                    "(its files changed after the lake was written)"
                )

    def _read_attributes(self) -> dict[str, str]:
        if "attribute" not in self.manifest.tables:
            return {}
        rows = self.spark.sql("SELECT name, dtype FROM attribute ORDER BY name").collect()
        return {str(r["name"]): str(r["dtype"]) for r in rows}

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
        """Run ``sql`` and bring the rows to the driver; integers come back as int64 and timestamps
        as datetime64[us], as from DuckDB.  More than ``max_rows`` rows is an error, raised before
        the driver holds them."""
        return _duckdb_dtypes(self._collect(self.spark.sql(sql)))

    def _collect(self, frame: DataFrame) -> pd.DataFrame:
        if self.max_rows is None:
            return frame.toPandas()
        out = frame.limit(self.max_rows + 1).toPandas()
        if len(out) > self.max_rows:
            raise RegistryError(
                f"{self.lake}: a query of the study returns more than {self.max_rows:,} rows, the most "
                "the Spark engine brings to the driver (--driver-max-rows). The analysis matrix has one "
                "row per cohort entry: narrow the cohort (calendar window, sites), or raise the limit on "
                "a driver with the memory for it (docs/scale.md)"
            )
        return out

    def attributes(self) -> dict[str, str]:
        return dict(self._attributes)

    def register(self, name: str, frame: pd.DataFrame) -> None:
        """``frame`` as the temporary view ``name`` (naive timestamps stay ``TIMESTAMP_NTZ``)."""
        cols = []
        data = frame.copy()
        for c in data.columns:
            if pd.api.types.is_datetime64_dtype(data[c].dtype):
                data[c] = data[c].astype("datetime64[us]")
                cols.append(f"CAST(`{c}` AS TIMESTAMP_NTZ) AS `{c}`")
            else:
                cols.append(f"`{c}`")
        self.spark.createDataFrame(data).selectExpr(*cols).createOrReplaceTempView(name)
        if name not in self._views:
            self._views.append(name)

    def map_rows(
        self, sql: str, fn: Callable[[pd.DataFrame], pd.DataFrame], columns: dict[str, str]
    ) -> pd.DataFrame:
        """``fn`` applied to the rows of ``sql`` batch by batch on the executors (``mapInPandas``);
        the results come back to the driver.  ``columns`` names and types (canonical) what
        ``fn`` returns."""
        schema = ", ".join(f"`{c}` {SPARK_TYPES[t]}" for c, t in columns.items())
        order = list(columns)

        def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for batch in batches:
                yield fn(batch)[order]

        return _duckdb_dtypes(self._collect(self.spark.sql(sql).mapInPandas(run, schema)))

    def digest(self) -> str:
        return self.manifest.digest

    def table_names(self) -> set[str]:
        return set(self.manifest.tables)

    @property
    def base(self) -> Path:
        """The folder image ``uri``s resolve against (the lake's parent; images are read on the driver)."""
        if self.path is None:
            raise RegistryError(
                f"{self.lake}: image files are read on the driver; use a lake on a local path"
            )
        return self.path.parent

    # --- lifetime --------------------------------------------------------------------------
    def close(self) -> None:
        for frame in self._cached:
            frame.unpersist()
        self._cached.clear()
        for view in self._views:
            self.spark.catalog.dropTempView(view)
        self._views.clear()

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


def run_cohort_spark(
    spec_or_path: CohortSpec | Path | str,
    lake: Path | str,
    *,
    spark: SparkSession | None = None,
) -> CohortResult:
    """Compile and run a cohort with Spark SQL on a lake; the same result as
    :func:`toolkit.cohort.run.run_cohort` on the same registry.

    Without ``spark`` a local session is started (about 20 s) and left running for reuse.
    """
    source = "cohort"
    if isinstance(spec_or_path, CohortSpec):
        spec = spec_or_path
    else:
        source = str(spec_or_path)
        spec = load_cohort(spec_or_path)
    with SparkBackend(spark or local_spark(), lake) as backend:
        compiled = compile_cohort(spec, attributes=backend.attributes(), source=source)
        if compiled.uses_vocabulary and "concept" not in backend.table_names():
            raise CohortSpecError(
                f"{source}: concept_sets name OMOP concepts, but {lake} has no vocabulary "
                "(re-import it with a concept table, e.g. --vocabulary DIR)"
            )
        return execute(compiled, backend)
