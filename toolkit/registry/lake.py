"""A registry as a folder of Parquet tables (a "lake"), read in place by DuckDB and by Spark.

Layout (``docs/scale.md`` describes it for the engineers who build one with their own tools)::

    LAKE/
      manifest.json                       format, schema version, buckets, per-table columns and
                                          row counts, the content digest
      person/part-0.parquet               small and person-keyed tables: one folder each
      observation_period/part-0.parquet
      events/person_bucket=0/...parquet   events, notes and images: partitioned by a person bucket,
      events/person_bucket=1/...parquet   pmod(person_id, buckets), so one person's rows sit in one
      notes/person_bucket=.../            folder and a person-range job reads a subset of files
      images/person_bucket=.../
      attribute/, metadata/               declared attributes and registry facts
      concept/, concept_ancestor/, import_summary/   when the registry has them

Nothing is exported to read it: :class:`~toolkit.registry.store.Registry` opens the folder with
DuckDB views over ``read_parquet`` and Spark reads the same files (``toolkit.cohort.spark``).
The manifest's ``digest`` is the same order-independent content digest a DuckDB registry file
has (:meth:`Registry.digest`), so a registry converted either way keeps its digest, and
``regent registry check`` recomputes it and compares.

>>> write_lake("data/hf.duckdb", "data/hf_lake")           # doctest: +SKIP
>>> write_duckdb("data/hf_lake", "data/hf_again.duckdb")   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from toolkit.errors import RegistryError
from toolkit.io import atomic_dir, atomic_write_json
from toolkit.registry import schema as S

FORMAT = "regent-parquet-lake"
LAYOUT_VERSION = 1
MANIFEST = "manifest.json"
#: Tables partitioned by a person bucket: the large, person-keyed ones.
BUCKETED: tuple[str, ...] = ("events", "notes", "images")
BUCKET_COLUMN = "person_bucket"
#: Buckets when none are given: enough files for a few cores to share a table, few enough that a
#: small registry is not a thousand tiny files.  A 100M-person lake wants more (docs/scale.md).
DEFAULT_BUCKETS = 16


def bucket_sql(buckets: int, column: str = S.PERSON_ID) -> str:
    """The bucket of a person, the same on DuckDB and Spark (non-negative for negative ids)."""
    return f"((({column} % {buckets}) + {buckets}) % {buckets})"


@dataclass(frozen=True)
class LakeTable:
    name: str
    columns: dict[str, str]  # column -> canonical SQL type (BIGINT, TIMESTAMP, ...), in order
    rows: int
    partitioned_by: str | None


@dataclass(frozen=True)
class Manifest:
    """``manifest.json`` of a lake, validated when read."""

    schema_version: str
    buckets: int
    tables: dict[str, LakeTable]
    digest: str

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "layout_version": LAYOUT_VERSION,
            "schema_version": self.schema_version,
            "buckets": self.buckets,
            "bucket_rule": f"pmod(person_id, {self.buckets})",
            "tables": {
                t.name: {"rows": t.rows, "partitioned_by": t.partitioned_by, "columns": t.columns}
                for t in self.tables.values()
            },
            "digest": self.digest,
        }


def is_lake(path: Path | str) -> bool:
    """Whether ``path`` is a lake folder (has a manifest); a URI like ``s3a://...`` is not checked."""
    p = Path(path)
    return p.is_dir() and (p / MANIFEST).is_file()


def parse_manifest(text: str, *, source: str) -> Manifest:
    """Validate a manifest's JSON; errors name the file and the key."""
    try:
        data = json.loads(text)
    except ValueError:
        raise RegistryError(f"{source}: not valid JSON") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RegistryError(f"{source}: format: expected {FORMAT!r}; got {_got(data, 'format')}")
    if data.get("layout_version") != LAYOUT_VERSION:
        raise RegistryError(
            f"{source}: layout_version: this Regent reads {LAYOUT_VERSION}; got {_got(data, 'layout_version')}"
        )
    buckets = data.get("buckets")
    if not isinstance(buckets, int) or buckets < 1:
        raise RegistryError(f"{source}: buckets: expected a positive integer; got {_got(data, 'buckets')}")
    tables_raw = data.get("tables")
    if not isinstance(tables_raw, dict):
        raise RegistryError(f"{source}: tables: expected an object of table entries")
    tables: dict[str, LakeTable] = {}
    for name, entry in tables_raw.items():
        where = f"{source}: tables.{name}"
        if name not in S.TABLES:
            raise RegistryError(f"{where}: not a registry table; expected one of {sorted(S.TABLES)}")
        if not isinstance(entry, dict) or not isinstance(entry.get("columns"), dict):
            raise RegistryError(f"{where}.columns: expected an object of column -> type")
        rows = entry.get("rows")
        if not isinstance(rows, int) or rows < 0:
            raise RegistryError(f"{where}.rows: expected a row count; got {rows!r}")
        part = entry.get("partitioned_by")
        expected = BUCKET_COLUMN if name in BUCKETED else None
        if part != expected:
            raise RegistryError(f"{where}.partitioned_by: expected {expected!r}; got {part!r}")
        tables[name] = LakeTable(name, {str(k): str(v) for k, v in entry["columns"].items()}, rows, part)
    missing = sorted(t.name for t in S.TABLES.values() if t.required and t.name not in tables)
    if missing:
        raise RegistryError(f"{source}: tables: missing required table(s) {missing}")
    digest = data.get("digest")
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise RegistryError(f"{source}: digest: expected 'sha256:...'; got {_got(data, 'digest')}")
    return Manifest(str(data.get("schema_version")), buckets, tables, digest)


def _got(data: object, key: str) -> str:
    return repr(data.get(key)) if isinstance(data, dict) else type(data).__name__


def read_manifest(lake: Path | str) -> Manifest:
    path = Path(lake) / MANIFEST
    if not path.is_file():
        raise RegistryError(f"{lake}: not a Parquet registry (no {MANIFEST})")
    return parse_manifest(path.read_text(encoding="utf-8"), source=str(path))


def table_glob(lake: Path | str, table: LakeTable) -> str:
    """The files of a table, as a glob DuckDB's ``read_parquet`` takes."""
    base = f"{str(lake).rstrip('/')}/{table.name}"
    return f"{base}/*/*.parquet" if table.partitioned_by else f"{base}/*.parquet"


def view_sql(lake: Path | str, table: LakeTable) -> str:
    """A DuckDB view of one table: its canonical columns, in order (no bucket column)."""
    files = _sql_str(table_glob(lake, table))
    cols = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in table.columns.items())
    hive = ", hive_partitioning = true" if table.partitioned_by else ""
    return f"CREATE VIEW {table.name} AS SELECT {cols} FROM read_parquet('{files}'{hive})"


def _sql_str(value: str) -> str:
    return value.replace("'", "''")


def open_lake(lake: Path, *, verify: bool = True) -> tuple[duckdb.DuckDBPyConnection, Manifest]:
    """A DuckDB connection whose catalog ``reg`` holds one view per table of the lake.

    ``verify`` compares each table's row count (from the Parquet footers) with the manifest, so
    a lake whose files changed after it was written is refused, naming the table.
    """
    manifest = read_manifest(lake)
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute("ATTACH ':memory:' AS reg")
        con.execute("USE reg")
        for table in manifest.tables.values():
            con.execute(view_sql(lake, table))
            if verify:
                _verify_rows(con, lake, table)
    except BaseException:
        con.close()
        raise
    return con, manifest


def _verify_rows(con: duckdb.DuckDBPyConnection, lake: Path, table: LakeTable) -> None:
    try:
        got = int(con.execute(f"SELECT COUNT(*) FROM {table.name}").fetchall()[0][0])
    except duckdb.Error as exc:
        raise RegistryError(
            f"{lake}: table {table.name!r}: its Parquet files cannot be read ({type(exc).__name__}); "
            f"expected {table_glob(lake, table)}"
        ) from None
    if got != table.rows:
        raise RegistryError(
            f"{lake}: table {table.name!r} has {got} rows; {MANIFEST} says {table.rows} "
            "(its files changed after the lake was written)"
        )


# --- writing ---------------------------------------------------------------------------------------
def write_lake(
    registry: Path | str, out: Path | str, *, buckets: int = DEFAULT_BUCKETS, overwrite: bool = True
) -> Path:
    """Write the DuckDB registry file ``registry`` as a lake at ``out`` (built aside, renamed in).

    Rows are written sorted by person (and time), so a reader that wants a range of persons skips
    whole row groups.  The manifest's digest is recomputed on the written files and must equal
    the source's: a conversion that changed a value fails instead of publishing.
    """
    from toolkit.registry.store import Registry

    out = Path(out)
    if buckets < 1:
        raise RegistryError(f"--buckets: expected a positive integer; got {buckets}")
    if out.exists() and not overwrite:
        raise RegistryError(f"{out}: already exists (pass overwrite to replace it)")
    if out.exists() and not is_lake(out):
        raise RegistryError(f"{out}: exists and is not a Parquet registry; refusing to replace it")
    with Registry(registry) as reg, atomic_dir(out) as tmp:
        digest = reg.digest()
        tables: dict[str, LakeTable] = {}
        for name in S.TABLES:
            if name in reg.table_names():
                tables[name] = _copy_table(reg.con, name, reg.columns(name), tmp, buckets)
        manifest = Manifest(reg.metadata().get("schema_version", S.SCHEMA_VERSION), buckets, tables, digest)
        _publish_manifest(tmp, manifest, source=str(registry))
    return out


def _copy_table(
    con: duckdb.DuckDBPyConnection, name: str, columns: dict[str, str], folder: Path, buckets: int
) -> LakeTable:
    types = {c: _canonical_type(name, c, t) for c, t in columns.items()}
    target = folder / name
    target.mkdir()
    rows = int(con.execute(f"SELECT COUNT(*) FROM {name}").fetchall()[0][0])
    cols = ", ".join(types)
    if name in BUCKETED:
        order = "person_id, time" if "time" in types else "person_id"
        select = f"SELECT {cols}, {bucket_sql(buckets)} AS {BUCKET_COLUMN} FROM {name} ORDER BY {order}"
        if rows:
            con.execute(
                f"COPY ({select}) TO '{_sql_str(str(target))}' "
                f"(FORMAT parquet, PARTITION_BY ({BUCKET_COLUMN}), FILENAME_PATTERN 'part-{{i}}')"
            )
        else:  # an empty table is one empty file, so every reader finds its columns
            (target / f"{BUCKET_COLUMN}=0").mkdir()
            con.execute(
                f"COPY ({select} LIMIT 0) TO '{_sql_str(str(target / f'{BUCKET_COLUMN}=0' / 'part-0.parquet'))}' "
                "(FORMAT parquet)"
            )
        return LakeTable(name, types, rows, BUCKET_COLUMN)
    order = " ORDER BY person_id" if "person_id" in types else ""
    con.execute(
        f"COPY (SELECT {cols} FROM {name}{order}) TO '{_sql_str(str(target / 'part-0.parquet'))}' "
        "(FORMAT parquet)"
    )
    return LakeTable(name, types, rows, None)


_FAMILIES = {
    "BIGINT": ("BIGINT", "INTEGER", "HUGEINT", "SMALLINT", "UBIGINT", "TINYINT"),
    "DOUBLE": ("DOUBLE", "FLOAT", "REAL", "DECIMAL"),
    "TIMESTAMP": ("TIMESTAMP",),
    "DATE": ("DATE",),
    "VARCHAR": ("VARCHAR",),
    "BOOLEAN": ("BOOLEAN",),
}


def _canonical_type(table: str, column: str, duck_type: str) -> str:
    """The canonical SQL type a column is stored as (what both engines read it as)."""
    declared = {c.name: c.sql_type for c in S.TABLES[table].columns}.get(column)
    if declared is not None:
        return declared
    base = duck_type.split("(")[0].upper()
    for canonical, family in _FAMILIES.items():
        if base.startswith(family):
            return canonical
    raise RegistryError(f"table {table!r}: column {column!r} has type {duck_type}, which a lake cannot hold")


def _publish_manifest(folder: Path, manifest: Manifest, *, source: str) -> None:
    """Check the written files against the source (row counts, digest), then write the manifest."""
    from toolkit.registry.store import Registry

    atomic_write_json(folder / MANIFEST, manifest.to_json())
    with Registry(folder, validate=False, verify=False) as written:
        for t in manifest.tables.values():
            got = written.count(t.name)
            if got != t.rows:
                raise RegistryError(f"{source}: table {t.name!r}: wrote {got} rows, expected {t.rows}")
        if written.digest(recompute=True) != manifest.digest:
            raise RegistryError(
                f"{source}: the written Parquet tables do not reproduce the registry's digest"
            )


def write_duckdb(lake: Path | str, out: Path | str, *, overwrite: bool = True) -> Path:
    """Write the lake at ``lake`` as a DuckDB registry file (atomically); the digest is kept."""
    from toolkit.registry.store import Registry

    out = Path(out)
    if out.exists() and not overwrite:
        raise RegistryError(f"{out}: already exists (pass overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with Registry(lake) as reg:
            manifest = reg.manifest
            assert manifest is not None
            con = duckdb.connect(str(tmp))
            try:
                for t in manifest.tables.values():
                    table = _schema_table(t)
                    con.execute(S.create_table_sql(table))
                    reg_files = _sql_str(table_glob(Path(lake), t))
                    cols = ", ".join(t.columns)
                    casts = ", ".join(f"CAST({c} AS {ty})" for c, ty in t.columns.items())
                    hive = ", hive_partitioning = true" if t.partitioned_by else ""
                    con.execute(
                        f"INSERT INTO {t.name} ({cols}) SELECT {casts} FROM read_parquet('{reg_files}'{hive})"
                    )
                con.execute("CHECKPOINT")
            finally:
                con.close()
        with Registry(tmp) as check:
            if check.digest() != manifest.digest:
                raise RegistryError(f"{lake}: the written registry file does not reproduce the lake's digest")
        os.replace(tmp, out)
    finally:
        for p in (tmp, tmp.with_name(tmp.name + ".wal")):
            p.unlink(missing_ok=True)
    return out


def _schema_table(t: LakeTable) -> S.Table:
    """The canonical table definition with the lake's columns (person's attributes included)."""
    declared = {c.name: c for c in S.TABLES[t.name].columns}
    cols = tuple(declared.get(c) or S.Column(c, ty, True, "") for c, ty in t.columns.items())
    return S.Table(t.name, cols, S.TABLES[t.name].key, S.TABLES[t.name].description)


#: Registry storage formats: one DuckDB file, or a folder of Parquet tables.
FORMATS: Mapping[str, str] = {"duckdb": "one DuckDB file", "parquet": "a folder of Parquet tables"}


def check_format(fmt: str, *, option: str = "--format") -> str:
    if fmt not in FORMATS:
        raise RegistryError(f"{option}: expected one of {list(FORMATS)}; got {fmt!r}")
    return fmt


def finish_as_lake(built: Path, out: Path) -> Path:
    """Turn the DuckDB file a writer built into the lake ``out`` and remove the file."""
    try:
        return write_lake(built, out)
    finally:
        for p in (built, built.with_name(built.name + ".wal")):
            p.unlink(missing_ok=True)
