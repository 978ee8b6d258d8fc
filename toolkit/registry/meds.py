"""Registries to and from MEDS (Medical Event Data Standard, v0.3 layout).

``export_meds(registry, out)`` writes::

    out/data/<shard>.parquet         one row per measurement, sorted by subject_id then time
    out/metadata/dataset.json        dataset_name, dataset_version (the registry digest), etl_*, meds_version
    out/metadata/codes.parquet       code, description, parent_codes (every code in data/)
    out/metadata/subject_splits.parquet   subject_id, split (train / tuning / held_out)
    out/metadata/regent.json         what MEDS has no place for: attribute declarations, registry metadata

Data columns: ``subject_id`` int64, ``time`` timestamp[us] (null for static rows), ``code`` string,
``numeric_value`` float32, and the extension columns ``text_value`` string, ``unit`` string,
``regent_numeric_value`` float64 and ``regent_id`` int64.  A subject's rows never span shards.

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
other events               the code itself                    time, numeric_value, text_value, unit
notes                      ``REGENT_NOTE//<note_type>``       time; text_value = text; regent_id = note_id
                           (``REGENT_NOTE`` if no type)
images                     ``REGENT_IMAGE``                   time; regent_id = image_id; text_value =
                                                              JSON {modality, body_site, uri}
=========================  =================================  ===========================================

Null values produce no row (a person with no sex has no ``GENDER//`` row).  MEDS stores
``numeric_value`` as float32; where widening that float32 through its shortest decimal form does
not give back the registry's double, the double is kept in ``regent_numeric_value`` (and
``numeric_value`` is null if the double is beyond float32's range).

``import_meds`` also reads MEDS datasets written by other tools: codes it does not know become
events verbatim, ``MEDS_DEATH`` becomes ``DEATH``, float32 values are widened through their
shortest decimal form (``1.23``, not ``1.2300000190734863``), and without ``regent.json`` each
subject's observation period is derived as first-to-last timed row.
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

from toolkit.errors import ImportMappingError, RegistryError
from toolkit.io import atomic_dir
from toolkit.registry import schema as S
from toolkit.registry.store import Attribute, Registry, RegistryWriter

MEDS_VERSION = "0.3.3"
MAPPING_VERSION = "1"

PERSON = "REGENT_PERSON"
BIRTH = "MEDS_BIRTH"
DEATH = "MEDS_DEATH"
GENDER = "GENDER//"
SITE = "REGENT_SITE//"
ATTR = "REGENT_ATTR//"
OBS_START = "REGENT_OBS_START"
OBS_END = "REGENT_OBS_END"
NOTE = "REGENT_NOTE"
IMAGE = "REGENT_IMAGE"
RESERVED_PREFIXES = ("REGENT_", "MEDS_", GENDER)
EXTENSION_COLUMNS = ("text_value", "unit", "regent_numeric_value", "regent_id")

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
UNION ALL SELECT person_id, time, CASE WHEN code = 'DEATH' THEN '{DEATH}' ELSE code END,
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
        _write_codes(con, meta / "codes.parquet", attributes)
        _write_splits(meta / "subject_splits.parquet", subjects, split_fractions, seed)
        _write_json(meta / "dataset.json", _dataset_json(reg))
        _write_json(meta / "regent.json", _regent_json(attributes, reg.metadata()))
    return out


def _check_reserved(reg: Registry) -> None:
    row = reg.con.execute(
        "SELECT COUNT(*), COUNT(DISTINCT code) FROM events WHERE "
        + " OR ".join(f"starts_with(code, '{p}')" for p in RESERVED_PREFIXES)
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
        target = data / f"{i}.parquet"
        con.execute(f"COPY ({select} {where} {order}) TO '{_sql_str(str(target))}' (FORMAT parquet)")


def _write_codes(con: duckdb.DuckDBPyConnection, path: Path, attributes: Sequence[Attribute]) -> None:
    codes = [r[0] for r in con.execute("SELECT DISTINCT code FROM _meds ORDER BY code").fetchall()]
    described = {f"{ATTR}{a.name}": a.description for a in attributes}
    descriptions = []
    for code in codes:
        text = _DESCRIPTIONS.get(code) or described.get(code)
        if text is None and code.startswith(NOTE):
            text = "Clinical note; text_value is the text, regent_id the note id."
        descriptions.append(text)
    table = pa.table(
        {
            "code": pa.array(codes, pa.string()),
            "description": pa.array(descriptions, pa.string()),
            "parent_codes": pa.array([None] * len(codes), pa.list_(pa.string())),
        }
    )
    pq.write_table(table, path)


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


def _sql_str(value: str) -> str:
    return value.replace("'", "''")


# --- import ----------------------------------------------------------------------------------
def import_meds(meds_dir: Path | str, out: Path | str) -> Path:
    """Read a MEDS dataset into a registry file at ``out`` (written atomically).

    A dataset written by :func:`export_meds` comes back identical (same tables, same digest).

    >>> import_meds("data/hf-meds", "data/hf-again.duckdb")  # doctest: +SKIP
    """
    root = Path(meds_dir)
    shards = sorted((root / "data").rglob("*.parquet"))
    if not shards:
        raise ImportMappingError(f"{root / 'data'}: no .parquet shards found")
    regent_file = root / "metadata" / "regent.json"
    regent = _read_regent(regent_file) if regent_file.is_file() else None
    attributes = tuple(_attribute(d, regent_file) for d in (regent or {}).get("attributes", []))
    if regent is not None:
        metadata: dict[str, Any] = dict(regent.get("metadata", {}))
    else:
        metadata = {"name": _dataset_name(root), "source": "MEDS", "importer": "toolkit.registry.meds"}
    columns = _shard_columns(shards)
    with RegistryWriter(out, attributes=attributes, metadata=metadata) as w:
        con = w.con
        con.execute("SET TimeZone = 'UTC'")
        files = ", ".join(f"'{_sql_str(str(p))}'" for p in shards)
        ext = {
            c: (c if c in columns else f"NULL::{t}")
            for c, t in (("text_value", "VARCHAR"), ("unit", "VARCHAR"), ("regent_numeric_value", "DOUBLE"))
        }
        regent_id = "regent_id" if "regent_id" in columns else "NULL::BIGINT"
        con.execute(
            "CREATE TEMP VIEW _meds AS SELECT CAST(subject_id AS BIGINT) AS subject_id, "
            "CAST(time AS TIMESTAMP) AS time, CAST(code AS VARCHAR) AS code, "
            f"COALESCE({ext['regent_numeric_value']}, {_widened('numeric_value')}) AS value, "
            f"CAST({ext['text_value']} AS VARCHAR) AS text_value, CAST({ext['unit']} AS VARCHAR) AS unit, "
            f"CAST({regent_id} AS BIGINT) AS regent_id "
            f"FROM read_parquet([{files}], union_by_name = true)"
        )
        _check_rows(con, root)
        _insert_person(con, root, attributes, marked=regent is not None)
        _insert_periods(con, root, derive=regent is None)
        known = " OR ".join(
            [f"starts_with(code, '{p}')" for p in (GENDER, SITE, ATTR, NOTE)]
            + [f"code IN ('{PERSON}', '{BIRTH}', '{OBS_START}', '{OBS_END}', '{IMAGE}')"]
        )
        con.execute(
            "INSERT INTO events SELECT subject_id, time, CASE WHEN code = 'MEDS_DEATH' THEN 'DEATH' "
            f"ELSE code END, value, text_value, unit FROM _meds WHERE NOT ({known})"
        )
        con.execute(
            f"INSERT INTO notes SELECT regent_id, subject_id, time, CASE WHEN code = '{NOTE}' THEN NULL "
            f"ELSE substr(code, {len(NOTE) + 3}) END, text_value FROM _meds "
            f"WHERE code = '{NOTE}' OR starts_with(code, '{NOTE}//')"
        )
        con.execute(
            "INSERT INTO images SELECT regent_id, subject_id, time, text_value->>'modality', "
            f"text_value->>'body_site', text_value->>'uri' FROM _meds WHERE code = '{IMAGE}'"
        )
    return Path(out)


def _read_regent(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ImportMappingError(f"{path}: not readable JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("mapping_version") != MAPPING_VERSION:
        raise ImportMappingError(f"{path}: mapping_version: expected {MAPPING_VERSION!r}")
    return data


def _attribute(d: Any, source: Path) -> Attribute:
    try:
        return Attribute(
            d["name"],
            d["dtype"],
            tuple(d["levels"]) if d.get("levels") else None,
            d.get("unit"),
            d.get("description"),
        )
    except (KeyError, TypeError, RegistryError) as exc:
        raise ImportMappingError(f"{source}: attributes: invalid declaration ({exc})") from None


def _dataset_name(root: Path) -> str:
    try:
        name = json.loads((root / "metadata" / "dataset.json").read_text()).get("dataset_name")
    except (OSError, json.JSONDecodeError, AttributeError):
        name = None
    return str(name) if name else root.name


def _shard_columns(shards: list[Path]) -> set[str]:
    columns: set[str] = set()
    for shard in shards:
        names = set(pq.read_schema(shard).names)
        for required in ("subject_id", "time", "code", "numeric_value"):
            if required not in names:
                raise ImportMappingError(f"{shard}: missing MEDS column {required!r}")
        columns |= names
    return columns


def _check_rows(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    static = f"code IN ('{PERSON}') OR " + " OR ".join(
        f"starts_with(code, '{p}')" for p in (GENDER, SITE, ATTR)
    )
    row = con.execute(
        "SELECT COUNT(*) FILTER (WHERE subject_id IS NULL), COUNT(*) FILTER (WHERE code IS NULL), "
        f"COUNT(*) FILTER (WHERE time IS NULL AND NOT ({static})), "
        f"COUNT(DISTINCT code) FILTER (WHERE time IS NULL AND NOT ({static})) FROM _meds"
    ).fetchone()
    assert row is not None
    if row[0] or row[1]:
        raise ImportMappingError(f"{root / 'data'}: {row[0]} rows lack subject_id and {row[1]} lack code")
    if row[2]:
        raise ImportMappingError(
            f"{root / 'data'}: {row[2]} static rows (null time) with {row[3]} codes Regent cannot place; "
            f"static rows may only carry {PERSON}, {GENDER}*, {SITE}* or {ATTR}* (events need a time)"
        )


def _single(con: duckdb.DuckDBPyConnection, root: Path, what: str, where: str, value: str) -> None:
    row = con.execute(
        f"SELECT COUNT(*) FROM (SELECT subject_id FROM _meds WHERE {where} GROUP BY subject_id "
        f"HAVING COUNT(DISTINCT {value}) > 1)"
    ).fetchone()
    if row and row[0]:
        raise ImportMappingError(f"{root / 'data'}: {what}: {row[0]} subjects have conflicting values")


def _insert_person(
    con: duckdb.DuckDBPyConnection, root: Path, attributes: tuple[Attribute, ...], *, marked: bool
) -> None:
    """One person per subject; with ``marked`` (a Regent export) only subjects with REGENT_PERSON."""
    singles = [
        ("birth (MEDS_BIRTH)", f"code = '{BIRTH}'", "time", "CAST(MIN(time) FILTER (WHERE {w}) AS DATE)"),
        (
            "sex (GENDER//)",
            f"starts_with(code, '{GENDER}')",
            "code",
            f"MIN(substr(code, {len(GENDER) + 1})) FILTER (WHERE {{w}})",
        ),
        (
            "site (REGENT_SITE//)",
            f"starts_with(code, '{SITE}')",
            "code",
            f"MIN(substr(code, {len(SITE) + 1})) FILTER (WHERE {{w}})",
        ),
    ]
    for a in attributes:
        singles.append(
            (
                f"attribute {a.name}",
                f"code = '{ATTR}{a.name}'",
                "text_value",
                f"CAST(MIN(text_value) FILTER (WHERE {{w}}) AS {S.ATTRIBUTE_TYPES[a.dtype]})",
            )
        )
    items = []
    for what, where, value, agg in singles:
        _single(con, root, what, where, value)
        items.append(agg.format(w=where))
    names = ", ".join(["person_id", "birth_date", "sex", "site_id", *(a.name for a in attributes)])
    having = f" HAVING COUNT(*) FILTER (WHERE code = '{PERSON}') > 0" if marked else ""
    con.execute(
        f"INSERT INTO person ({names}) SELECT subject_id, {', '.join(items)} FROM _meds "
        f"GROUP BY subject_id{having}"
    )


def _insert_periods(con: duckdb.DuckDBPyConnection, root: Path, *, derive: bool) -> None:
    if derive:
        con.execute(
            "INSERT INTO observation_period SELECT subject_id, MIN(time), MAX(time) FROM _meds "
            "WHERE time IS NOT NULL GROUP BY subject_id"
        )
        return
    con.execute(
        "INSERT INTO observation_period SELECT s.subject_id, s.time, e.time "
        f"FROM (SELECT * FROM _meds WHERE code = '{OBS_START}') s "
        f"JOIN (SELECT * FROM _meds WHERE code = '{OBS_END}') e "
        "ON e.subject_id = s.subject_id AND e.value = s.value"
    )
    row = con.execute(
        f"SELECT COUNT(*) FILTER (WHERE code = '{OBS_START}'), COUNT(*) FILTER (WHERE code = '{OBS_END}'), "
        "(SELECT COUNT(*) FROM observation_period) FROM _meds"
    ).fetchone()
    if row is None or not row[0] == row[1] == row[2]:
        raise ImportMappingError(
            f"{root / 'data'}: {OBS_START}/{OBS_END} rows do not pair up by numeric_value "
            f"({row[0] if row else 0} starts, {row[1] if row else 0} ends)"
        )
