"""The embedded DuckDB registry store: atomic writing and read-only opening.

Writers build the whole file under a temporary name next to the target and rename it into
place, so a crash never leaves a half-written registry.  Analyses open registries read-only:
the file is ATTACHed ``READ_ONLY`` to an in-memory DuckDB whose own tables are scratch space.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from toolkit.errors import RegistryError
from toolkit.registry import schema as S


@dataclass(frozen=True)
class Attribute:
    """A typed static attribute of persons, stored as an extra column of ``person``."""

    name: str
    dtype: str
    levels: tuple[str, ...] | None = None
    unit: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if not S.is_identifier(self.name):
            raise RegistryError(f"attribute {self.name!r}: expected a lower-case identifier")
        if self.name in S.PERSON.column_names:
            raise RegistryError(f"attribute {self.name!r}: clashes with a built-in person column")
        if self.dtype not in S.ATTRIBUTE_TYPES:
            raise RegistryError(
                f"attribute {self.name!r}: dtype must be one of {sorted(S.ATTRIBUTE_TYPES)}; "
                f"got {self.dtype!r}"
            )


def _person_table(attributes: tuple[Attribute, ...]) -> S.Table:
    extra = tuple(S.Column(a.name, S.ATTRIBUTE_TYPES[a.dtype], True, a.description or "") for a in attributes)
    return S.Table(S.PERSON.name, S.PERSON.columns + extra, S.PERSON.key, S.PERSON.description)


class RegistryWriter:
    """Append-only builder of a registry file; ``commit()`` renames it into place.

    >>> with RegistryWriter(path, attributes=attrs, metadata={"name": "demo"}) as w:  # doctest: +SKIP
    ...     w.append("person", persons)
    ...     w.append("events", events)
    """

    def __init__(
        self,
        path: Path | str,
        *,
        attributes: tuple[Attribute, ...] = (),
        metadata: Mapping[str, Any] | None = None,
        overwrite: bool = True,
        format: str = "duckdb",
    ) -> None:
        from toolkit.registry.lake import check_format

        self.path = Path(path)
        self.format = check_format(format)  # "parquet": built as a DuckDB file, published as a lake
        if self.path.exists() and not overwrite:
            raise RegistryError(f"{self.path}: already exists (pass overwrite to replace it)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp-{uuid.uuid4().hex[:8]}")
        self._con: duckdb.DuckDBPyConnection | None = duckdb.connect(str(self._tmp))
        _no_progress_bar(self._con)
        self.attributes = attributes
        self._tables = dict(S.TABLES)
        self._tables["person"] = _person_table(attributes)
        for table in self._tables.values():
            self._con.execute(S.create_table_sql(table))
        for a in attributes:
            self._con.execute(
                "INSERT INTO attribute VALUES (?, ?, ?, ?, ?)",
                [a.name, a.dtype, json.dumps(list(a.levels)) if a.levels else None, a.unit, a.description],
            )
        meta = {"schema_version": S.SCHEMA_VERSION, **(metadata or {})}
        for k, v in meta.items():
            self._con.execute(
                "INSERT INTO metadata VALUES (?, ?)", [k, v if isinstance(v, str) else json.dumps(v)]
            )

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise RegistryError(f"{self.path}: writer already closed")
        return self._con

    def append(self, table: str, frame: pd.DataFrame) -> None:
        """Append rows; columns must match the canonical schema (missing nullable ones become NULL)."""
        spec = self._tables.get(table)
        if spec is None or table in ("attribute", "metadata"):
            raise RegistryError(f"{self.path}: cannot append to table {table!r}")
        unknown = set(frame.columns) - set(spec.column_names)
        if unknown:
            raise RegistryError(
                f"{self.path}: table {table!r} has no column(s) {sorted(unknown)}; "
                f"expected {list(spec.column_names)}"
            )
        for c in spec.columns:
            if not c.nullable and c.name not in frame.columns:
                raise RegistryError(f"{self.path}: table {table!r} needs column {c.name!r}")
        cols = [c.name for c in spec.columns if c.name in frame.columns]
        self.con.register("_incoming", frame[cols])
        try:
            casts = ", ".join(
                f"CAST({c.name} AS {c.sql_type}) AS {c.name}" for c in spec.columns if c.name in cols
            )
            self.con.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {casts} FROM _incoming")
        except duckdb.Error as exc:
            raise RegistryError(f"{self.path}: could not append to {table!r}: {exc}") from None
        finally:
            self.con.unregister("_incoming")

    def commit(self) -> Path:
        self.con.execute("CHECKPOINT")
        self.con.close()
        self._con = None
        if self.format == "parquet":
            from toolkit.registry.lake import finish_as_lake

            return finish_as_lake(self._tmp, self.path)
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        for p in (self._tmp, self._tmp.with_name(self._tmp.name + ".wal")):
            if p.exists():
                p.unlink()

    def __enter__(self) -> RegistryWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


@dataclass(frozen=True)
class RegistryData:
    """A whole registry held in memory, for small registries and tests."""

    person: pd.DataFrame
    observation_period: pd.DataFrame
    events: pd.DataFrame
    notes: pd.DataFrame | None = None
    images: pd.DataFrame | None = None
    attributes: tuple[Attribute, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)


def write_registry(
    path: Path | str, data: RegistryData, *, overwrite: bool = True, format: str = "duckdb"
) -> Path:
    """Write ``data`` as a registry at ``path`` atomically (a DuckDB file, or a Parquet lake folder)."""
    with RegistryWriter(
        path, attributes=data.attributes, metadata=data.metadata, overwrite=overwrite, format=format
    ) as w:
        w.append("person", data.person)
        w.append("observation_period", data.observation_period)
        w.append("events", data.events)
        if data.notes is not None:
            w.append("notes", data.notes)
        if data.images is not None:
            w.append("images", data.images)
    return Path(path)


def _no_progress_bar(con: duckdb.DuckDBPyConnection) -> None:
    # Inside a Jupyter kernel without ipywidgets DuckDB refuses to change the setting (and its
    # progress bar is already off there).
    with contextlib.suppress(duckdb.InvalidInputException):
        con.execute("SET enable_progress_bar = false")


class Registry:
    """A registry opened read-only: a DuckDB file, or a folder of Parquet tables (a lake,
    :mod:`toolkit.registry.lake`) read in place through views.  Use as a context manager.

    ``sql`` runs a query whose unqualified table names resolve to the registry; temporary and
    in-memory tables live in a scratch catalog, so nothing can be written to the file.  A lake's
    row counts are checked against its manifest when it is opened (``verify``).
    """

    def __init__(self, path: Path | str, *, validate: bool = True, verify: bool = True) -> None:
        self.path = Path(path)
        self.manifest: Any = None  # a lake's toolkit.registry.lake.Manifest
        if self.path.is_dir():
            from toolkit.registry.lake import open_lake

            self.con, self.manifest = open_lake(self.path, verify=verify)
            self._validate(validate)
            return
        if not self.path.is_file():
            raise RegistryError(f"{self.path}: registry file not found")
        check_file(self.path)
        self.con = duckdb.connect()
        _no_progress_bar(self.con)
        try:
            self.con.execute(f"ATTACH '{_sql_str(str(self.path))}' AS reg (READ_ONLY)")
        except duckdb.Error as exc:
            self.con.close()
            raise RegistryError(
                f"{self.path}: not a readable DuckDB registry ({type(exc).__name__}); the file may be "
                "damaged or from another DuckDB version: rebuild or re-import it"
            ) from None
        self.con.execute("USE reg")
        self._validate(validate)

    def _validate(self, validate: bool) -> None:
        if validate:
            try:
                problems = schema_problems(self)
            except duckdb.Error as exc:
                self.close()
                raise RegistryError(
                    f"{self.path}: the registry cannot be read ({type(exc).__name__}); the file is "
                    "damaged or incomplete: copy it again, or rebuild or re-import it"
                ) from None
            if problems:
                self.close()
                raise RegistryError(
                    f"{self.path}: schema errors:\n" + "\n".join(f"  - {p}" for p in problems)
                )

    @property
    def base(self) -> Path:
        """The folder relative image ``uri``s resolve against: the one holding the file or lake."""
        return self.path.parent

    # --- introspection -------------------------------------------------------------------
    def table_names(self) -> set[str]:
        rows = self.con.execute(  # a lake's tables are views over its Parquet files
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'reg' "
            "UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = 'reg'"
        ).fetchall()
        return {r[0] for r in rows}

    def columns(self, table: str) -> dict[str, str]:
        rows = self.con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = 'reg' AND table_name = ?",
            [table],
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def attributes(self) -> tuple[Attribute, ...]:
        if "attribute" not in self.table_names():
            return ()
        rows = self.con.execute(
            "SELECT name, dtype, levels, unit, description FROM attribute ORDER BY name"
        ).fetchall()
        return tuple(
            Attribute(n, d, tuple(json.loads(lv)) if lv else None, u, desc) for n, d, lv, u, desc in rows
        )

    def metadata(self) -> dict[str, str]:
        if "metadata" not in self.table_names():
            return {}
        return dict(self.con.execute("SELECT key, value FROM metadata").fetchall())

    def count(self, table: str) -> int:
        rows = self.con.execute(f"SELECT COUNT(*) FROM {table}").fetchall()  # fetchall closes the result
        return int(rows[0][0]) if rows else 0

    def digest(self, *, recompute: bool = False) -> str:
        """Content digest: order-independent row hashes of every canonical table.

        DuckDB's ``hash`` is stable within a DuckDB version; the digest records that version.  A
        lake's digest is its manifest's, computed when it was written, unless ``recompute``
        (``regent registry check`` recomputes it and compares).
        """
        if self.manifest is not None and not recompute:
            return str(self.manifest.digest)
        try:
            return self._digest()
        except duckdb.Error as exc:  # reading every row is where a damaged file shows itself
            raise RegistryError(
                f"{self.path}: the registry cannot be read ({type(exc).__name__}); the file is "
                "damaged or incomplete: copy it again, or rebuild or re-import it"
            ) from None

    def _digest(self) -> str:
        h = hashlib.sha256(f"duckdb={duckdb.__version__};".encode())
        present = self.table_names()
        for name in sorted(S.TABLES):
            if name not in present or name == "import_summary":  # how it was imported, not content
                continue
            cols = sorted(self.columns(name))
            row = self.con.execute(
                f"SELECT COUNT(*), COALESCE(SUM(hash({', '.join(cols)}))::HUGEINT, 0) FROM {name}"
            ).fetchone()
            if name in S.OPTIONAL_TABLES and not (row and row[0]):
                continue  # an empty optional table leaves the digest as it was before the table existed
            h.update(f"{name}:{','.join(cols)}:{row[0] if row else 0}:{row[1] if row else 0};".encode())
        return "sha256:" + h.hexdigest()

    def sql(self, query: str, params: list[Any] | None = None) -> pd.DataFrame:
        return self.con.execute(query, params or []).df()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_HEADER = 4096  # DuckDB's main header and its two database headers are 4 KiB each


def check_file(path: Path) -> None:
    """Refuse, in one line, a file that cannot be a whole DuckDB database: empty, without
    DuckDB's header (random bytes, another format), or shorter than its header says (a copy or
    download cut short).  The header's active copy (the higher iteration) gives the number of
    blocks and the block size; a file from a DuckDB whose header does not hold them is left to
    DuckDB to judge."""
    size = path.stat().st_size
    if size == 0:
        raise RegistryError(f"{path}: the file is empty (0 bytes); expected a DuckDB registry")
    with path.open("rb") as fh:
        head = fh.read(3 * _HEADER)
    if len(head) < 3 * _HEADER or head[8:12] != b"DUCK":
        raise RegistryError(
            f"{path}: not a DuckDB file (no DuckDB header in its first bytes); expected a registry "
            "built by regent registry import/synth"
        )
    headers = [struct.unpack_from("<6Q", head, off) for off in (_HEADER, 2 * _HEADER)]
    _, _, _, _, blocks, block_size = max(headers, key=lambda h: h[1] if h[1] < 2**62 else -1)
    sane = block_size in {2**k for k in range(14, 31)} and blocks < 2**40
    expected = 3 * _HEADER + blocks * block_size
    if sane and size < expected:
        raise RegistryError(
            f"{path}: the file is truncated ({size} bytes; its header says {expected}): a copy or "
            "download was cut short; copy it again, or rebuild or re-import it"
        )


def _sql_str(value: str) -> str:
    return value.replace("'", "''")


_TYPE_FAMILIES = {
    "BIGINT": {"BIGINT", "INTEGER", "HUGEINT", "SMALLINT", "UBIGINT"},
    "DOUBLE": {"DOUBLE", "FLOAT", "REAL", "DECIMAL"},
    "TIMESTAMP": {"TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "TIMESTAMP WITH TIME ZONE"},
    "DATE": {"DATE"},
    "VARCHAR": {"VARCHAR"},
    "BOOLEAN": {"BOOLEAN"},
}


def schema_problems(reg: Registry) -> list[str]:
    """Schema errors: missing required tables or columns, and columns of the wrong type."""
    problems: list[str] = []
    present = reg.table_names()
    for table in S.TABLES.values():
        if table.name not in present:
            if table.required:
                problems.append(f"table {table.name!r} is missing")
            continue
        cols = reg.columns(table.name)
        for col in table.columns:
            got = cols.get(col.name)
            if got is None:
                problems.append(f"table {table.name!r}: column {col.name!r} is missing")
                continue
            base = got.split("(")[0].upper()
            if base not in _TYPE_FAMILIES.get(col.sql_type, {col.sql_type}):
                problems.append(
                    f"table {table.name!r}: column {col.name!r} should be {col.sql_type}, got {got}"
                )
    if not problems and "attribute" in present:
        person_cols = reg.columns("person")
        for a in reg.attributes():
            if a.name not in person_cols:
                problems.append(f"attribute {a.name!r} is declared but person has no such column")
    return problems


@contextmanager
def open_registry(path: Path | str) -> Iterator[Registry]:
    reg = Registry(path)
    try:
        yield reg
    finally:
        reg.close()
