"""Read a MEDS dataset, as Regent or any other tool writes it, into a registry.

>>> import_meds("data/mimic-meds", "data/mimic.duckdb")  # doctest: +SKIP

The rules (docs/registry.md, "import-meds"):

* **Codes** become the registry's canonical form: ``ICD10//I50.22`` -> ``ICD10:I50.22`` (only the
  first ``//``); ``MEDS_DEATH`` -> ``DEATH``.  Cohort specs accept either spelling.
* **Static rows** (null time) become typed person attributes: ``GENDER//F`` -> ``sex``;
  ``NAME//VALUE`` -> a category attribute ``name`` with level ``VALUE``; ``NAME`` with a numeric
  value -> a float attribute ``name``; with a text value -> a string attribute; with neither -> a
  boolean attribute (TRUE where present, FALSE for the other persons).  A subject with two
  different values of one attribute stops the import, naming the code.
* **MEDS_BIRTH** sets the birth date; it never starts observation.
* **Observation periods**: a Regent export carries its own; otherwise, with ``period_codes=(START,
  END)``, the k-th START pairs with the k-th END of each subject; otherwise a subject is observed
  from its first timed row other than ``MEDS_BIRTH`` to its last (``MEDS_DEATH`` included).
* **codes.parquet** descriptions and parent codes go to the registry's ``concept`` table.
* **Row accounting**: rows per class (static, birth, timed measurements, ...) read, written and
  dropped (no subject_id or no code) in the registry's ``import_summary``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from toolkit.errors import ImportMappingError, RegistryError
from toolkit.registry import schema as S
from toolkit.registry.importers.summary import ImportSummary, SourceSummary, write_summary
from toolkit.registry.meds.common import (
    ATTR,
    BIRTH,
    CONCEPT_TABLES,
    DEATH,
    GENDER,
    IMAGE,
    MAPPING_VERSION,
    NOTE,
    OBS_END,
    OBS_START,
    PERSON,
    SITE,
    sql_str,
    to_canonical_sql,
)
from toolkit.registry.store import Attribute, RegistryWriter

_REGENT_STATIC = f"(code = '{PERSON}' OR starts_with(code, '{GENDER}') OR starts_with(code, '{SITE}') OR starts_with(code, '{ATTR}'))"
#: MEDS_BIRTH, or MEDS_BIRTH//<kind> as some tools write it
_IS_BIRTH = f"(code = '{BIRTH}' OR starts_with(code, '{BIRTH}//'))"
_MARKERS = f"code IN ('{PERSON}', '{OBS_START}', '{OBS_END}', '{IMAGE}') OR {_IS_BIRTH} OR code = '{NOTE}' OR starts_with(code, '{NOTE}//')"


@dataclass(frozen=True)
class StaticCode:
    """A static MEDS code of a foreign dataset and the person attribute it becomes."""

    name: str  # code name before the first '//' (or the whole code)
    attribute: Attribute
    kind: str  # "category" | "float" | "string" | "bool"
    conflicts: int = 0  # subjects with several values: the attribute fell back to a flag


def _where_value(st: StaticCode) -> tuple[str, str]:
    """The static rows of ``st`` and the value each gives its attribute (SQL)."""
    name = sql_str(st.name)
    if st.kind == "category":
        return f"time IS NULL AND starts_with(code, '{name}//')", f"substr(code, {len(st.name) + 3})"
    return f"time IS NULL AND code = '{name}'", {"float": "value", "string": "text_value", "bool": "TRUE"}[
        st.kind
    ]


def _widened(expr: str) -> str:
    """A float32 widened to DOUBLE through its shortest decimal form (``1.23`` stays ``1.23``)."""
    return f"CAST(CAST({expr} AS VARCHAR) AS DOUBLE)"


def import_meds(
    meds_dir: Path | str,
    out: Path | str,
    *,
    period_codes: tuple[str | None, str | None] | None = None,
    format: str = "duckdb",
) -> Path:
    """Read the MEDS dataset in ``meds_dir`` into a registry file at ``out`` (written atomically).

    A dataset written by :func:`toolkit.registry.meds.export_meds` comes back identical (same
    tables, same digest).
    """
    root = Path(meds_dir)
    shards = sorted((root / "data").rglob("*.parquet"))
    if not shards:
        raise ImportMappingError(f"{root / 'data'}: no .parquet shards found")
    if period_codes is not None and (not period_codes[0] or not period_codes[1]):
        raise ImportMappingError(
            "period codes: give both the start and the end code (--obs-start, --obs-end)"
        )
    regent_file = root / "metadata" / "regent.json"
    regent = _read_regent(regent_file) if regent_file.is_file() else None
    columns = _shard_columns(shards)
    view = _view_sql(shards, columns)
    if regent is not None:
        attributes = tuple(_attribute(d, regent_file) for d in regent.get("attributes", []))
        statics: tuple[StaticCode, ...] = ()
        metadata: dict[str, Any] = dict(regent.get("metadata", {}))
    else:
        with duckdb.connect() as scan:
            scan.execute(f"CREATE TEMP VIEW _meds AS {view}")
            statics = _static_codes(scan, root)
        attributes = tuple(s.attribute for s in statics)
        metadata = {"name": _dataset_name(root), "source": "MEDS", "importer": "toolkit.registry.meds"}
    with RegistryWriter(out, attributes=attributes, metadata=metadata, format=format) as w:
        con = w.con
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"CREATE TEMP VIEW _meds AS {view}")
        sources = [_invalid_rows(con)]
        sources.append(_insert_person(con, root, attributes, statics, marked=regent is not None))
        sources.append(_insert_periods(con, root, regent is not None, period_codes))
        sources += _insert_facts(con, period_codes)
        sources.append(_insert_concepts(con, root))
        rule = (
            "REGENT_OBS_START/END rows"
            if regent is not None
            else f"{period_codes[0]} .. {period_codes[1]} pairs"
            if period_codes
            else "first to last timed row other than MEDS_BIRTH, per subject"
        )
        facts = {"observation periods": rule, "codes": "NS//code written as NS:code; MEDS_DEATH as DEATH"}
        if statics:
            facts["static codes"] = ", ".join(f"{s.name} -> {s.attribute.name} ({s.kind})" for s in statics)
        for st in statics:
            if st.conflicts:
                facts[f"static code {st.name}"] = (
                    f"{st.conflicts} subjects have several values: imported as a flag, the values are not kept"
                )
        write_summary(con, ImportSummary("MEDS", tuple(s for s in sources if s is not None), facts))
    return Path(out)


def _view_sql(shards: list[Path], columns: set[str]) -> str:
    files = ", ".join(f"'{sql_str(str(p))}'" for p in shards)
    ext = {
        c: (c if c in columns else f"NULL::{t}")
        for c, t in (("text_value", "VARCHAR"), ("unit", "VARCHAR"), ("regent_numeric_value", "DOUBLE"))
    }
    regent_id = "regent_id" if "regent_id" in columns else "NULL::BIGINT"
    return (
        "SELECT CAST(subject_id AS BIGINT) AS subject_id, CAST(time AS TIMESTAMP) AS time, "
        f"CAST(code AS VARCHAR) AS code, COALESCE({ext['regent_numeric_value']}, {_widened('numeric_value')}) AS value, "
        f"CAST({ext['text_value']} AS VARCHAR) AS text_value, CAST({ext['unit']} AS VARCHAR) AS unit, "
        f"CAST({regent_id} AS BIGINT) AS regent_id FROM read_parquet([{files}], union_by_name = true)"
    )


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
        try:
            names = set(pq.read_schema(shard).names)
        except Exception as exc:  # pyarrow raises several kinds for a damaged file
            raise ImportMappingError(f"{shard}: cannot be read as Parquet ({type(exc).__name__})") from None
        for required in ("subject_id", "time", "code", "numeric_value"):
            if required not in names:
                raise ImportMappingError(f"{shard}: missing MEDS column {required!r}")
        columns |= names
    return columns


def _identifier(name: str) -> str:
    ident = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "code"
    if ident[0].isdigit() or ident in S.PERSON.column_names:
        ident = f"meds_{ident}"
    return ident


def _static_codes(con: duckdb.DuckDBPyConnection, root: Path) -> tuple[StaticCode, ...]:
    """The foreign static codes (not GENDER//) and the attribute each becomes.

    ``NAME//VALUE`` codes become one category attribute when no subject has two of them; when
    some subject has several (``static//0`` and ``static//2``), each code becomes a flag.
    """
    static = f"time IS NULL AND subject_id IS NOT NULL AND code IS NOT NULL AND NOT {_REGENT_STATIC}"
    name = "CASE WHEN strpos(code, '//') > 0 THEN split_part(code, '//', 1) ELSE code END"
    multi = {
        str(r[0])
        for r in con.execute(
            f"SELECT name FROM (SELECT {name} AS name, subject_id, COUNT(DISTINCT code) AS k FROM _meds "
            f"WHERE {static} AND strpos(code, '//') > 0 GROUP BY ALL) GROUP BY name HAVING MAX(k) > 1"
        ).fetchall()
    }
    rows = con.execute(
        f"SELECT CASE WHEN {name} IN ({', '.join(_lit(m) for m in multi) or 'NULL'}) THEN code ELSE {name} END "
        "AS key, bool_or(strpos(code, '//') > 0), bool_or(value IS NOT NULL), bool_or(text_value IS NOT NULL), "
        "list_sort(list_distinct(list(CASE WHEN strpos(code, '//') > 0 THEN substr(code, strpos(code, '//') + 2) "
        f"END))) FROM _meds WHERE {static} GROUP BY key ORDER BY key"
    ).fetchall()
    out: list[StaticCode] = []
    seen: dict[str, str] = {}
    for key, has_level, has_value, has_text, levels in rows:
        key = str(key)
        ident = _identifier(key)
        if ident in seen:
            raise ImportMappingError(
                f"{root / 'data'}: static codes {seen[ident]!r} and {key!r} both become attribute {ident!r}"
            )
        seen[ident] = key
        description = f"MEDS static code {key}"
        if has_level and key.split("//", 1)[0] not in multi:
            attr = Attribute(
                ident, "category", tuple(str(v) for v in levels if v is not None), description=description
            )
            kind = "category"
        elif has_value:
            attr, kind = Attribute(ident, "float", description=description), "float"
        elif has_text:
            attr, kind = Attribute(ident, "string", description=description), "string"
        else:
            attr, kind = Attribute(ident, "bool", description=description + " (TRUE where present)"), "bool"
        out.append(_settle(con, StaticCode(key, attr, kind)))
    return tuple(out)


def _settle(con: duckdb.DuckDBPyConnection, st: StaticCode) -> StaticCode:
    """``st``, or a flag when some subject has several values of it (counted in the summary)."""
    if st.kind == "bool":
        return st
    where, value = _where_value(st)
    row = con.execute(
        f"SELECT COUNT(*) FROM (SELECT subject_id FROM _meds WHERE subject_id IS NOT NULL AND {where} "
        f"GROUP BY subject_id HAVING COUNT(DISTINCT {value}) > 1)"
    ).fetchone()
    if not row or not row[0]:
        return st
    attr = Attribute(
        st.attribute.name, "bool", description=f"MEDS static code {st.name} (TRUE where present)"
    )
    return StaticCode(st.name, attr, "bool", int(row[0]))


def _lit(value: str) -> str:
    return "'" + sql_str(value) + "'"


def _invalid_rows(con: duckdb.DuckDBPyConnection) -> SourceSummary | None:
    row = con.execute(
        "SELECT COUNT(*) FILTER (WHERE subject_id IS NULL), COUNT(*) FILTER (WHERE subject_id IS NOT NULL AND code IS NULL) FROM _meds"
    ).fetchone()
    no_subject, no_code = (int(row[0]), int(row[1])) if row else (0, 0)
    if not (no_subject or no_code):
        return None
    drops = {k: v for k, v in (("no subject_id", no_subject), ("no code", no_code)) if v}
    return SourceSummary("rows without subject_id or code", None, "imported", no_subject + no_code, 0, drops)


def _single(con: duckdb.DuckDBPyConnection, root: Path, what: str, where: str, value: str) -> None:
    row = con.execute(
        f"SELECT COUNT(*) FROM (SELECT subject_id FROM _meds WHERE subject_id IS NOT NULL AND ({where}) "
        f"GROUP BY subject_id HAVING COUNT(DISTINCT {value}) > 1)"
    ).fetchone()
    if row and row[0]:
        raise ImportMappingError(f"{root / 'data'}: {what}: {row[0]} subjects have conflicting values")


def _insert_person(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    attributes: tuple[Attribute, ...],
    statics: tuple[StaticCode, ...],
    *,
    marked: bool,
) -> SourceSummary:
    """One person per subject; with ``marked`` (a Regent export) only subjects with REGENT_PERSON."""
    g, s = len(GENDER) + 1, len(SITE) + 1
    singles = [
        ("birth (MEDS_BIRTH)", f"{_IS_BIRTH} AND time IS NOT NULL", "time", "CAST(MIN(time) FILTER (WHERE {w}) AS DATE)"),
        ("sex (GENDER//)", f"time IS NULL AND starts_with(code, '{GENDER}')", "code", f"MIN(substr(code, {g})) FILTER (WHERE {{w}})"),
        ("site (REGENT_SITE//)", f"time IS NULL AND starts_with(code, '{SITE}')", "code", f"MIN(substr(code, {s})) FILTER (WHERE {{w}})"),
    ]  # fmt: skip
    if marked:
        for a in attributes:
            singles.append(
                (f"attribute {a.name}", f"time IS NULL AND code = '{ATTR}{a.name}'", "text_value",
                 f"CAST(MIN(text_value) FILTER (WHERE {{w}}) AS {S.ATTRIBUTE_TYPES[a.dtype]})")
            )  # fmt: skip
    for st in statics:
        where, value = _where_value(st)
        agg = "COUNT(*) FILTER (WHERE {w}) > 0" if st.kind == "bool" else f"MIN({value}) FILTER (WHERE {{w}})"
        singles.append((f"static code {st.name}", where, value, agg))
    items = []
    for what, where, value, agg in singles:
        _single(con, root, what, where, value)
        items.append(agg.format(w=where))
    names = ", ".join(["person_id", "birth_date", "sex", "site_id", *(a.name for a in attributes)])
    having = f" HAVING COUNT(*) FILTER (WHERE code = '{PERSON}') > 0" if marked else ""
    con.execute(
        f"INSERT INTO person ({names}) SELECT subject_id, {', '.join(items)} FROM _meds "
        f"WHERE subject_id IS NOT NULL AND code IS NOT NULL GROUP BY subject_id{having}"
    )
    row = con.execute(
        f"SELECT COUNT(*) FROM _meds WHERE subject_id IS NOT NULL AND code IS NOT NULL AND (time IS NULL OR {_IS_BIRTH})"
    ).fetchone()
    n = int(row[0]) if row else 0
    persons = con.execute("SELECT COUNT(*) FROM person").fetchone()
    return SourceSummary(
        "static rows and MEDS_BIRTH",
        "person",
        "imported",
        n,
        n,
        notes={"persons": int(persons[0]) if persons else 0},
    )


def _insert_periods(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    marked: bool,
    period_codes: tuple[str | None, str | None] | None,
) -> SourceSummary:
    if marked or period_codes:
        start, end = (OBS_START, OBS_END) if marked else (str(period_codes[0]), str(period_codes[1]))  # type: ignore[index]
        key = "value" if marked else "ROW_NUMBER() OVER (PARTITION BY subject_id ORDER BY time)"
        pair = (
            f"SELECT subject_id, time, {key} AS k FROM _meds WHERE code = '{{c}}' AND subject_id IS NOT NULL"
        )
        con.execute(
            "INSERT INTO observation_period SELECT s.subject_id, s.time, e.time "
            f"FROM ({pair.format(c=sql_str(start))}) s JOIN ({pair.format(c=sql_str(end))}) e "
            "ON e.subject_id = s.subject_id AND e.k = s.k"
        )
        row = con.execute(
            f"SELECT COUNT(*) FILTER (WHERE code = '{sql_str(start)}'), COUNT(*) FILTER (WHERE code = '{sql_str(end)}'), "
            "(SELECT COUNT(*) FROM observation_period), "
            "(SELECT COUNT(*) FROM observation_period WHERE end_time < start_time OR start_time IS NULL) "
            "FROM _meds WHERE subject_id IS NOT NULL"
        ).fetchone()
        assert row is not None
        if not row[0] == row[1] == row[2] or row[3]:
            raise ImportMappingError(
                f"{root / 'data'}: {start}/{end} rows do not pair up ({row[0]} starts, {row[1]} ends, "
                f"{row[3]} ending before they start)"
            )
        n = int(row[0]) + int(row[1])
        return SourceSummary(f"{start} / {end}", "observation_period", "imported", n, n)
    con.execute(
        "INSERT INTO observation_period SELECT subject_id, MIN(time), MAX(time) FROM _meds "
        f"WHERE time IS NOT NULL AND subject_id IS NOT NULL AND code IS NOT NULL AND NOT {_IS_BIRTH} GROUP BY subject_id"
    )
    row = con.execute(
        "SELECT COUNT(*) FROM person p ANTI JOIN observation_period o USING (person_id)"
    ).fetchone()
    notes = (
        {"persons with no timed row but MEDS_BIRTH (no observation period)": int(row[0])}
        if row and row[0]
        else {}
    )
    return SourceSummary("(derived)", "observation_period", "imported", 0, 0, notes=notes)


def _insert_facts(
    con: duckdb.DuckDBPyConnection, period_codes: tuple[str | None, str | None] | None
) -> list[SourceSummary]:
    """Timed rows -> events, notes and images."""
    valid = "subject_id IS NOT NULL AND code IS NOT NULL AND time IS NOT NULL"
    markers = _MARKERS
    if period_codes:
        markers += f" OR code IN ('{sql_str(str(period_codes[0]))}', '{sql_str(str(period_codes[1]))}')"
    death = f"(code = '{DEATH}' OR starts_with(code, '{DEATH}//'))"
    code = f"CASE WHEN {death} THEN 'DEATH' ELSE {to_canonical_sql('code')} END"
    # MEDS_DEATH//<cause>: the cause goes where a registry keeps it, in text_value
    text = f"CASE WHEN starts_with(code, '{DEATH}//') THEN COALESCE(text_value, substr(code, {len(DEATH) + 3})) ELSE text_value END"
    con.execute(
        f"INSERT INTO events SELECT subject_id, time, {code}, value, {text}, unit FROM _meds "
        f"WHERE {valid} AND NOT ({markers})"
    )
    con.execute(
        f"INSERT INTO notes SELECT regent_id, subject_id, time, CASE WHEN code = '{NOTE}' THEN NULL "
        f"ELSE substr(code, {len(NOTE) + 3}) END, text_value FROM _meds "
        f"WHERE {valid} AND (code = '{NOTE}' OR starts_with(code, '{NOTE}//'))"
    )
    con.execute(
        "INSERT INTO images SELECT regent_id, subject_id, time, text_value->>'modality', "
        f"text_value->>'body_site', text_value->>'uri' FROM _meds WHERE {valid} AND code = '{IMAGE}'"
    )
    row = con.execute(
        f"SELECT COUNT(*) FILTER (WHERE NOT ({markers})), "
        f"COUNT(*) FILTER (WHERE code = '{NOTE}' OR starts_with(code, '{NOTE}//')), "
        f"COUNT(*) FILTER (WHERE code = '{IMAGE}'), "
        f"COUNT(*) FILTER (WHERE NOT ({markers}) AND strpos(code, '//') > 0 AND {to_canonical_sql('code')} <> code) "
        f"FROM _meds WHERE {valid}"
    ).fetchone()
    n_events, n_notes, n_images, converted = (int(v) for v in row) if row else (0, 0, 0, 0)
    out = [
        SourceSummary(
            "timed measurements", "events", "imported", n_events, n_events,
            notes={"codes converted from NS//code to NS:code": converted} if converted else {},
        )
    ]  # fmt: skip
    if n_notes:
        out.append(SourceSummary(NOTE, "notes", "imported", n_notes, n_notes))
    if n_images:
        out.append(SourceSummary(IMAGE, "images", "imported", n_images, n_images))
    return out


def _insert_concepts(con: duckdb.DuckDBPyConnection, root: Path) -> SourceSummary | None:
    """The registry's concept tables: Regent's own files if present, else codes.parquet."""
    meta = root / "metadata"
    own = {t: meta / f"regent_{t}.parquet" for t in CONCEPT_TABLES}
    if all(p.is_file() for p in own.values()):
        for table, path in own.items():
            con.execute(f"INSERT INTO {table} SELECT * FROM read_parquet('{sql_str(str(path))}')")
        return None
    codes = meta / "codes.parquet"
    if not codes.is_file():
        return None
    names = set(pq.read_schema(codes).names)
    if "code" not in names:
        raise ImportMappingError(f"{codes}: missing column 'code'")
    desc = "description" if "description" in names else "NULL::VARCHAR"
    canon = f"CASE WHEN code = '{DEATH}' THEN 'DEATH' ELSE {to_canonical_sql('code')} END"
    parents = (
        "CASE WHEN parent_codes IS NULL OR len(parent_codes) = 0 THEN NULL ELSE "
        f"to_json(list_transform(parent_codes, lambda x: {to_canonical_sql('x')}))::VARCHAR END"
        if "parent_codes" in names
        else "NULL::VARCHAR"
    )
    src = f"read_parquet('{sql_str(str(codes))}')"
    con.execute(
        f"INSERT INTO concept (code, name, parent_codes) SELECT {canon}, {desc}, {parents} FROM {src} WHERE code IS NOT NULL"
    )
    row = con.execute(f"SELECT COUNT(*), COUNT(*) FILTER (WHERE code IS NULL) FROM {src}").fetchone()
    n, missing = (int(row[0]), int(row[1])) if row else (0, 0)
    drops = {"no code": missing} if missing else {}
    return SourceSummary("codes.parquet", "concept", "imported", n, n - missing, drops)
