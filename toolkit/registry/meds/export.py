"""Registries to MEDS (Medical Event Data Standard 0.4), checked against the ``meds`` package.

``export_meds(registry, out)`` writes::

    out/data/<shard>.parquet         one row per measurement, sorted by subject_id then time
    out/metadata/dataset.json        dataset_name, dataset_version (the registry digest), etl_*, meds_version
    out/metadata/codes.parquet       code, description, parent_codes (every code in data/)
    out/metadata/subject_splits.parquet   subject_id, split (train / tuning / held_out)
    out/metadata/regent.json         what MEDS has no place for: attribute declarations, registry metadata
    out/metadata/regent_concept.parquet, regent_concept_ancestor.parquet   the registry's vocabulary

Data columns: ``subject_id`` int64, ``time`` timestamp[us] (null for static rows), ``code`` string,
``numeric_value`` float32, ``text_value`` large_string (the MEDS 0.4 schema), and the extension
columns ``unit`` string, ``regent_numeric_value`` float64 and ``regent_id`` int64.  A subject's
rows never span shards.  Codes are written as MEDS spells them: the registry's ``ICD10:I50.9``
becomes ``ICD10//I50.9`` (import turns it back).

How each registry fact becomes a MEDS row (``import_meds`` reverses it exactly):

=========================  =================================  ===========================================
registry                   code                               time / values
=========================  =================================  ===========================================
person (every row)         ``REGENT_PERSON``                  static; keeps persons with no other facts
person.birth_date          ``MEDS_BIRTH``                     birth date at 00:00
person.sex                 ``GENDER//<sex>``                  static
person.site_id             ``REGENT_SITE//<site_id>``         static
person.<attribute>         ``REGENT_ATTR//<name>``            static; text_value = value as text
                                                              (numeric_value too for numbers and booleans)
observation_period         ``REGENT_OBS_START``,              start_time / end_time; numeric_value = the
                           ``REGENT_OBS_END``                 period's number within the person (pairs them)
events, code ``DEATH``     ``MEDS_DEATH``                     time, text_value (cause), unit, values
other events               the code, ``NS//rest``             time, numeric_value, text_value, unit
notes                      ``REGENT_NOTE//<note_type>``       time; text_value = text; regent_id = note_id
                           (``REGENT_NOTE`` if no type)
images                     ``REGENT_IMAGE``                   time; regent_id = image_id; text_value =
                                                              JSON {modality, body_site, uri}
=========================  =================================  ===========================================

Null values produce no row (a person with no sex has no ``GENDER//`` row).  MEDS stores
``numeric_value`` as float32; where widening that float32 through its shortest decimal form does
not give back the registry's double, the double is kept in ``regent_numeric_value`` (and
``numeric_value`` is null if the double is beyond float32's range).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from toolkit.errors import RegistryError
from toolkit.io import atomic_dir
from toolkit.registry import schema as S
from toolkit.registry.meds.common import (
    ATTR,
    BIRTH,
    CONCEPT_TABLES,
    DEATH,
    GENDER,
    IMAGE,
    MAPPING_VERSION,
    MEDS_VERSION,
    NOTE,
    OBS_END,
    OBS_START,
    PERSON,
    RESERVED_PREFIXES,
    SITE,
    sql_str,
    to_meds_sql,
)
from toolkit.registry.store import Attribute, Registry

#: The Arrow schema of a data shard: MEDS 0.4's core columns, then Regent's extension columns.
DATA_SCHEMA = pa.schema(
    [
        ("subject_id", pa.int64()),
        ("time", pa.timestamp("us")),
        ("code", pa.string()),
        ("numeric_value", pa.float32()),
        ("text_value", pa.large_string()),
        ("unit", pa.string()),
        ("regent_numeric_value", pa.float64()),
        ("regent_id", pa.int64()),
    ]
)

_FLOAT32_MAX = 3.4028234663852886e38
_DESCRIPTIONS = {
    PERSON: "A person of the Regent registry (one static row each).",
    BIRTH: "Birth (date of birth at 00:00).",
    DEATH: "Death; text_value holds the recorded cause.",
    OBS_START: "Start of an observation period; numeric_value numbers the period within the person.",
    OBS_END: "End of an observation period; numeric_value numbers the period within the person.",
    IMAGE: "Imaging study; regent_id is the image id, text_value JSON {modality, body_site, uri}.",
}

# One SELECT per kind of registry fact, each with the same seven columns.
_ROWS = f"""
SELECT person_id, NULL::TIMESTAMP, '{PERSON}', NULL::DOUBLE, NULL, NULL, NULL::BIGINT FROM person
UNION ALL SELECT person_id, CAST(birth_date AS TIMESTAMP), '{BIRTH}', NULL, NULL, NULL, NULL
    FROM person WHERE birth_date IS NOT NULL
UNION ALL SELECT person_id, NULL, '{GENDER}' || sex, NULL, NULL, NULL, NULL FROM person WHERE sex IS NOT NULL
UNION ALL SELECT person_id, NULL, '{SITE}' || site_id, NULL, NULL, NULL, NULL
    FROM person WHERE site_id IS NOT NULL
{{attributes}}
UNION ALL SELECT person_id, start_time, '{OBS_START}', k, NULL, NULL, NULL FROM _periods
UNION ALL SELECT person_id, end_time, '{OBS_END}', k, NULL, NULL, NULL FROM _periods
UNION ALL SELECT person_id, time, CASE WHEN code = 'DEATH' THEN '{DEATH}' ELSE {to_meds_sql("code")} END,
    numeric_value, text_value, unit, NULL FROM events
UNION ALL SELECT person_id, time, '{NOTE}' || COALESCE('//' || note_type, ''), NULL, text, NULL, note_id
    FROM notes
UNION ALL SELECT person_id, time, '{IMAGE}', NULL,
    json_object('modality', modality, 'body_site', body_site, 'uri', uri)::VARCHAR, NULL, image_id FROM images
"""


def _widened(expr: str) -> str:
    """A float32 widened to DOUBLE through its shortest decimal form (``1.23`` stays ``1.23``)."""
    return f"CAST(CAST({expr} AS VARCHAR) AS DOUBLE)"


def _as_float32(expr: str) -> str:
    return f"CASE WHEN abs({expr}) <= {_FLOAT32_MAX} THEN CAST({expr} AS FLOAT) END"


def export_meds(
    registry_path: Path | str,
    out_dir: Path | str,
    *,
    shard_size: int = 50_000,
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> Path:
    """Write the registry as a MEDS dataset in ``out_dir`` (atomically; replaces it).

    ``shard_size`` is subjects per data shard; subjects are split train/tuning/held_out by
    ``split_fractions`` with a seeded permutation.

    >>> export_meds("data/hf.duckdb", "data/hf-meds")  # doctest: +SKIP
    """
    if shard_size < 1:
        raise RegistryError(f"shard_size must be >= 1; got {shard_size}")
    if len(split_fractions) != 3 or min(split_fractions) < 0 or abs(sum(split_fractions) - 1) > 1e-9:
        raise RegistryError(
            f"split_fractions must be three non-negative numbers summing to 1; got {split_fractions}"
        )
    out = Path(out_dir)
    with Registry(registry_path) as reg, atomic_dir(out) as tmp:
        con = reg.con
        _check_reserved(reg)
        person_cols = list(reg.columns("person"))
        declared = {a.name: a for a in reg.attributes()}
        attributes = [declared[c] for c in person_cols if c in declared]
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _periods AS SELECT person_id, start_time, end_time, "
            "ROW_NUMBER() OVER (PARTITION BY person_id ORDER BY start_time, end_time) AS k "
            "FROM observation_period"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _meds (subject_id BIGINT, time TIMESTAMP, code VARCHAR, "
            "value DOUBLE, text_value VARCHAR, unit VARCHAR, regent_id BIGINT)"
        )
        con.execute(f"INSERT INTO _meds {_ROWS.format(attributes=_attribute_rows(attributes))}")
        # events of a person_id missing from person (a checker finding) travel too, without REGENT_PERSON
        subjects = np.array(
            [r[0] for r in con.execute("SELECT DISTINCT subject_id FROM _meds ORDER BY 1").fetchall()],
            dtype=np.int64,
        )
        _write_shards(con, tmp / "data", subjects, shard_size)
        meta = tmp / "metadata"
        meta.mkdir()
        _write_codes(con, meta / "codes.parquet", attributes, reg.table_names())
        _write_concepts(con, meta, reg.table_names())
        _write_splits(meta / "subject_splits.parquet", subjects, split_fractions, seed)
        _write_json(meta / "dataset.json", _dataset_json(reg))
        _write_json(meta / "regent.json", _regent_json(attributes, reg.metadata()))
    return out


def _check_reserved(reg: Registry) -> None:
    spelled = to_meds_sql("code")
    row = reg.con.execute(
        "SELECT COUNT(*), COUNT(DISTINCT code) FROM events WHERE "
        + " OR ".join(f"starts_with({spelled}, '{p}')" for p in RESERVED_PREFIXES)
    ).fetchone()
    if row and row[0]:
        raise RegistryError(
            f"{reg.path}: events: {row[0]} rows ({row[1]} codes) use a prefix MEDS export reserves "
            f"({', '.join(RESERVED_PREFIXES)})"
        )


def _dataset_json(reg: Registry) -> dict[str, Any]:
    """MEDS ``dataset.json``; the dataset version is the registry's content digest."""
    return {
        "dataset_name": reg.metadata().get("name", reg.path.stem),
        "dataset_version": reg.digest(),
        "etl_name": "regent",
        "etl_version": _version(),
        "meds_version": MEDS_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _regent_json(attributes: Sequence[Attribute], registry_meta: dict[str, str]) -> dict[str, Any]:
    """What MEDS has no place for: attribute declarations (in person column order) and metadata."""
    declared = [
        {"name": a.name, "dtype": a.dtype, "levels": list(a.levels) if a.levels else None, "unit": a.unit,
         "description": a.description}
        for a in attributes
    ]  # fmt: skip
    return {"mapping_version": MAPPING_VERSION, "attributes": declared, "metadata": registry_meta}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _attribute_rows(attributes: Sequence[Attribute]) -> str:
    parts = []
    for a in attributes:
        value = f"CAST({a.name} AS DOUBLE)" if a.dtype in ("float", "int", "bool") else "NULL"
        parts.append(
            f"UNION ALL SELECT person_id, NULL, '{ATTR}{a.name}', {value}, CAST({a.name} AS VARCHAR), "
            f"NULL, NULL FROM person WHERE {a.name} IS NOT NULL"
        )
    return "\n".join(parts)


def _write_shards(con: duckdb.DuckDBPyConnection, data: Path, subjects: np.ndarray, shard_size: int) -> None:
    """Shards written through Arrow, so that ``text_value`` is ``large_string`` as MEDS 0.4 requires."""
    data.mkdir()
    exact = _widened(_as_float32("value"))
    select = (
        f"SELECT subject_id, time, code, {_as_float32('value')} AS numeric_value, text_value, unit, "
        f"CASE WHEN value IS NOT NULL AND {exact} IS DISTINCT FROM value THEN value END "
        "AS regent_numeric_value, regent_id FROM _meds"
    )
    order = "ORDER BY subject_id, time NULLS FIRST, code, value, text_value, unit, regent_id"
    n_shards = max(1, -(-len(subjects) // shard_size))
    for i in range(n_shards):
        chunk = subjects[i * shard_size : (i + 1) * shard_size]
        where = (
            f"WHERE subject_id BETWEEN {int(chunk[0])} AND {int(chunk[-1])}" if len(chunk) else "WHERE FALSE"
        )
        table: pa.Table = con.sql(f"{select} {where} {order}").to_arrow_table()
        pq.write_table(table.cast(DATA_SCHEMA), data / f"{i}.parquet")


def _write_codes(
    con: duckdb.DuckDBPyConnection, path: Path, attributes: Sequence[Attribute], tables: set[str]
) -> None:
    """``codes.parquet``: every code in data/, described from the registry's concept table if it has one."""
    codes = [r[0] for r in con.execute("SELECT DISTINCT code FROM _meds ORDER BY code").fetchall()]
    described = {f"{ATTR}{a.name}": a.description for a in attributes}
    vocab: dict[str, tuple[str | None, list[str] | None]] = {}
    if "concept" in tables:
        for code, name, parents in con.execute(
            f"SELECT {to_meds_sql('code')}, name, parent_codes FROM concept"
        ).fetchall():
            vocab[code] = (name, [_meds_code(p) for p in json.loads(parents)] if parents else None)
    descriptions, parent_codes = [], []
    for code in codes:
        text, parents = vocab.get(code, (None, None))
        text = text or _DESCRIPTIONS.get(code) or described.get(code)
        if text is None and code.startswith(NOTE):
            text = "Clinical note; text_value is the text, regent_id the note id."
        descriptions.append(text)
        parent_codes.append(parents)
    table = pa.table(
        {
            "code": pa.array(codes, pa.string()),
            "description": pa.array(descriptions, pa.string()),
            "parent_codes": pa.array(parent_codes, pa.list_(pa.string())),
        }
    )
    pq.write_table(table, path)


def _meds_code(code: str) -> str:
    return DEATH if code == "DEATH" else S.meds_code(code)


def _write_concepts(con: duckdb.DuckDBPyConnection, meta: Path, tables: set[str]) -> None:
    """The registry's concept tables as they are, for an exact round trip (empty files if absent)."""
    for table in CONCEPT_TABLES:
        spec = S.TABLES[table]
        if table in tables:
            query = f"SELECT {', '.join(spec.column_names)} FROM {table} ORDER BY ALL"
        else:
            cols = ", ".join(f"NULL::{c.sql_type} AS {c.name}" for c in spec.columns)
            query = f"SELECT {cols} WHERE FALSE"
        con.execute(f"COPY ({query}) TO '{sql_str(str(meta / f'regent_{table}.parquet'))}' (FORMAT parquet)")


def _write_splits(path: Path, subjects: np.ndarray, fractions: tuple[float, float, float], seed: int) -> None:
    order = np.random.default_rng(seed).permutation(len(subjects))
    n_train = round(fractions[0] * len(subjects))
    n_tuning = round(fractions[1] * len(subjects))
    split = np.empty(len(subjects), dtype=object)
    split[order[:n_train]] = "train"
    split[order[n_train : n_train + n_tuning]] = "tuning"
    split[order[n_train + n_tuning :]] = "held_out"
    pq.write_table(
        pa.table({"subject_id": pa.array(subjects, pa.int64()), "split": pa.array(split, pa.string())}), path
    )


def _version() -> str:
    try:
        return importlib_metadata.version("regent-toolkit")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"
