"""Finding and reading OMOP CDM files: CSV (header or not, comma or tab, quoted) and Parquet.

Each table becomes a DuckDB view ``omop_<table>`` with every column of the table in any CDM
version (columns the file lacks are NULL), lower-case names, and empty strings read as NULL.

Header detection: the first line is a header when at least half of its fields are column names of
that table; otherwise the file is header-less and its columns are named in specification order of
the CDM version (from ``cdm_source``, else the version whose column count the rows match).  A
header-less file whose rows match no version is refused with exactly that diagnosis.  Messages
name files, columns and counts; they never quote a line of the file.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from toolkit.errors import ImportMappingError
from toolkit.registry.importers.omop.cdm import ALL_COLUMNS, CDM, NOT_IMPORTED, REQUIRED, VERSIONS

_SNIFF_BYTES = 1 << 16


@dataclass(frozen=True)
class TableFile:
    """One OMOP table file and how it was read."""

    table: str
    path: Path
    kind: str  # "csv" | "parquet" | "empty"
    header: bool = True
    delimiter: str = ","
    columns: tuple[str, ...] = ()  # as named in the file (header) or assumed (header-less)
    version: str | None = None  # the CDM version whose column order named a header-less file

    @property
    def how(self) -> str:
        if self.kind != "csv":
            return self.kind
        delim = "tab" if self.delimiter == "\t" else "comma"
        head = "header" if self.header else f"no header: CDM {self.version} column order"
        return f"CSV, {delim}-separated, {head}"


def find_files(folder: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Table files in ``folder`` (``<table>.csv``/``.parquet``/``.tsv``, any case) and the other files.

    Returns (table -> path, file name -> why it is not read).
    """
    if not folder.is_dir():
        raise ImportMappingError(f"{folder}: not a folder")
    found: dict[str, Path] = {}
    others: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        stem, suffix = path.stem.lower(), path.suffix.lower()
        if not path.is_file() or suffix not in (".csv", ".tsv", ".parquet"):
            continue
        if stem in ALL_COLUMNS:
            if stem in found:
                raise ImportMappingError(
                    f"{folder}: both {found[stem].name} and {path.name} hold table {stem!r}"
                )
            found[stem] = path
        elif stem in NOT_IMPORTED:
            others[path.name] = NOT_IMPORTED[stem]
        else:
            others[path.name] = "not an OMOP CDM table"
    return found, others


def _first_record(path: Path) -> tuple[list[str], str, bool]:
    """The first CSV record of ``path``, its delimiter, and whether quoting is in use."""
    with path.open("rb") as f:
        raw = f.read(_SNIFF_BYTES)
    text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    line = text.split("\n", 1)[0].rstrip("\r")
    delimiter = "\t" if line.count("\t") >= max(1, line.count(",")) else ","
    # Athena's tab-separated vocabulary files are not quoted (concept names contain '"')
    quoted = delimiter == "," or line.startswith('"')
    reader = csv.reader(
        io.StringIO(line), delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE
    )
    fields = next(reader, [])
    return fields, delimiter, quoted


def _is_header(fields: list[str], table: str) -> bool:
    names = {f.strip().strip('"').lower() for f in fields}
    known = names & set(ALL_COLUMNS[table])
    return len(known) * 2 >= len(fields) and bool(known)


def inspect_file(table: str, path: Path, version: str | None) -> TableFile:
    """How to read ``path``: format, header, delimiter and column names (checked)."""
    if path.stat().st_size == 0:
        return TableFile(table, path, "empty")
    if path.suffix.lower() == ".parquet":
        try:
            names = tuple(n.lower() for n in pq.read_schema(path).names)
        except (OSError, pa.ArrowException) as exc:
            raise ImportMappingError(f"{path}: cannot be read as Parquet ({type(exc).__name__})") from None
        return TableFile(table, path, "parquet", columns=names)
    fields, delimiter, _ = _first_record(path)
    if not fields or fields == [""]:
        return TableFile(table, path, "empty")
    if _is_header(fields, table):
        columns = tuple(f.strip().strip('"').lower() for f in fields)
        return TableFile(table, path, "csv", True, delimiter, columns)
    # header-less: name the columns from the specification
    order = [version] if version else []
    order += [v for v in reversed(VERSIONS) if v not in order]
    for v in order:
        if len(CDM[v][table]) == len(fields):
            return TableFile(table, path, "csv", False, delimiter, CDM[v][table], v)
    expected = " or ".join(sorted({f"{len(CDM[v][table])} (CDM {v})" for v in VERSIONS}))
    raise ImportMappingError(
        f"{path}: no header row, and its first row has {len(fields)} fields where table {table!r} has "
        f"{expected} columns; add a header row or export the columns in CDM order"
    )


def _duck_error(path: Path, exc: duckdb.Error) -> ImportMappingError:
    """A reading error without the line DuckDB quotes (it may hold patient values)."""
    m = re.search(r"[Ll]ine:?\s*(\d+)", str(exc))
    where = f" near line {m.group(1)}" if m else ""
    return ImportMappingError(
        f"{path}: cannot be read as CSV{where} ({type(exc).__name__}: a row with the wrong number of "
        "fields, an unclosed quote, or a different delimiter)"
    )


def register(con: duckdb.DuckDBPyConnection, tf: TableFile) -> int:
    """Create the view ``omop_<table>`` for ``tf`` and return its row count."""
    table, path = tf.table, tf.path
    if tf.kind == "empty":
        cols = ", ".join(f"NULL::VARCHAR AS {c}" for c in ALL_COLUMNS[table])
        con.execute(f"CREATE OR REPLACE TEMP VIEW omop_{table} AS SELECT {cols} WHERE FALSE")
        return 0
    src = _sql_str(str(path))
    if tf.kind == "parquet":
        reader = f"read_parquet('{src}')"
    else:
        quote = "'\"', escape = '\"'" if tf.delimiter == "," else "''"
        names = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(tf.columns)))
        reader = (
            f"read_csv('{src}', delim = '{tf.delimiter}', quote = {quote}, header = {str(tf.header).lower()}, "
            f"columns = {{{names}}})"
        )
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
    except duckdb.Error as exc:
        raise _duck_error(path, exc) from None
    raw = [str(r[0]) for r in described]
    types = {str(r[0]): str(r[1]) for r in described}
    named = dict(zip(raw, tf.columns, strict=True)) if tf.kind == "csv" else {c: c.lower() for c in raw}
    unknown = sorted(set(named.values()) - set(ALL_COLUMNS[table]))
    if unknown:
        raise ImportMappingError(
            f"{path}: unknown column(s) {unknown} for OMOP table {table!r} (CDM {', '.join(VERSIONS)})"
        )
    missing = [c for c in REQUIRED[table] if c not in named.values()]
    if missing:
        raise ImportMappingError(f"{path}: missing required column {missing[0]!r} (table {table!r})")
    by_name = {v: k for k, v in named.items()}
    items = []
    for c in ALL_COLUMNS[table]:
        if c not in by_name:
            items.append(f"NULL::VARCHAR AS {c}")
        elif types[by_name[c]].upper() == "VARCHAR":
            items.append(f"NULLIF(TRIM(\"{by_name[c]}\"), '') AS {c}")
        else:
            items.append(f'"{by_name[c]}" AS {c}')
    con.execute(f"CREATE OR REPLACE TEMP VIEW omop_{table} AS SELECT {', '.join(items)} FROM {reader}")
    try:
        row = con.execute(f"SELECT COUNT(*) FROM omop_{table}").fetchone()
    except duckdb.Error as exc:
        raise _duck_error(path, exc) from None
    return int(row[0]) if row else 0


def declared_version(con: duckdb.DuckDBPyConnection, tf: TableFile | None) -> str | None:
    """The CDM version ``cdm_source.cdm_version`` declares (``v5.3.1`` -> ``5.3``), if any."""
    if tf is None or tf.kind == "empty":
        return None
    register(con, tf)
    rows = con.execute("SELECT cdm_version FROM omop_cdm_source WHERE cdm_version IS NOT NULL").fetchall()
    for (value,) in rows:
        m = re.search(r"5\.(\d)", str(value))
        if m and f"5.{m.group(1)}" in CDM:
            return f"5.{m.group(1)}"
    return None


def version_from_columns(files: list[TableFile]) -> str | None:
    """The CDM version that the files' columns point to (a column only one version has)."""
    votes: set[str] = set()
    for tf in files:
        if tf.kind == "csv" and not tf.header and tf.version:
            if len({len(CDM[v][tf.table]) for v in VERSIONS}) > 1:
                votes.add(tf.version)
            continue
        cols = set(tf.columns)
        for v in VERSIONS:
            only = set(CDM[v][tf.table]) - {c for w in VERSIONS if w != v for c in CDM[w][tf.table]}
            if cols & only:
                votes.add(v)
    return votes.pop() if len(votes) == 1 else None


def _sql_str(value: str) -> str:
    return value.replace("'", "''")
