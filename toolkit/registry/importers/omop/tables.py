"""How each OMOP clinical table becomes registry rows, with every dropped row counted by reason.

Each table is first staged (``_stage``): one row per source row with the registry columns and a
``_drop`` reason (NULL when the row is kept).  The rows kept are inserted; the reasons are
counted for the import summary.  Reasons, in the order they are tested:

* ``person_id not in person`` — the row's person is missing from ``person`` (or has no id);
* ``no valid date`` — neither the date nor the datetime column parses;
* ``dated before birth`` — before the person's date of birth;
* ``dated in the future`` — after the day of the import.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from toolkit.errors import ImportMappingError
from toolkit.registry.importers.omop.vocabulary import code_sql
from toolkit.registry.importers.summary import SourceSummary

VISIT_CODES: dict[int, str] = {
    9201: "VISIT:IP",
    9202: "VISIT:OP",
    9203: "VISIT:ER",
    262: "VISIT:ERIP",
    32037: "VISIT:ICU",
}
SEX_CODES: dict[int, str] = {8507: "M", 8532: "F"}
FUTURE = "CAST(current_date AS TIMESTAMP) + INTERVAL 1 DAY"


@dataclass(frozen=True)
class EventTable:
    """Which columns of an OMOP table give an event's code, time and values."""

    table: str
    concept: str
    date: str
    datetime: str | None
    source_concept: str | None = None
    numeric: str | None = None
    unit_concept: str | None = None
    unit: str | None = None
    value_concept: str | None = None
    value_text: str | None = None
    fixed_code: str | None = None  # death: every row is DEATH; the concept is the cause
    prefix: str | None = None  # visit_detail: VISIT_DETAIL:<visit code>


EVENT_TABLES: tuple[EventTable, ...] = (
    EventTable("visit_occurrence", "visit_concept_id", "visit_start_date", "visit_start_datetime",
               "visit_source_concept_id"),
    EventTable("visit_detail", "visit_detail_concept_id", "visit_detail_start_date",
               "visit_detail_start_datetime", "visit_detail_source_concept_id", prefix="VISIT_DETAIL"),
    EventTable("condition_occurrence", "condition_concept_id", "condition_start_date",
               "condition_start_datetime", "condition_source_concept_id"),
    EventTable("drug_exposure", "drug_concept_id", "drug_exposure_start_date", "drug_exposure_start_datetime",
               "drug_source_concept_id"),
    EventTable("procedure_occurrence", "procedure_concept_id", "procedure_date", "procedure_datetime",
               "procedure_source_concept_id"),
    EventTable("device_exposure", "device_concept_id", "device_exposure_start_date",
               "device_exposure_start_datetime", "device_source_concept_id", numeric="quantity",
               unit_concept="unit_concept_id", unit="unit_source_value"),
    EventTable("measurement", "measurement_concept_id", "measurement_date", "measurement_datetime",
               "measurement_source_concept_id", numeric="value_as_number", unit_concept="unit_concept_id",
               unit="unit_source_value", value_concept="value_as_concept_id"),
    EventTable("observation", "observation_concept_id", "observation_date", "observation_datetime",
               "observation_source_concept_id", numeric="value_as_number", unit_concept="unit_concept_id",
               unit="unit_source_value", value_concept="value_as_concept_id", value_text="value_as_string"),
    EventTable("specimen", "specimen_concept_id", "specimen_date", "specimen_datetime", None,
               numeric="quantity", unit_concept="unit_concept_id", unit="unit_source_value"),
    EventTable("death", "cause_concept_id", "death_date", "death_datetime", "cause_source_concept_id",
               fixed_code="DEATH"),
)  # fmt: skip


def _bigint(expr: str) -> str:
    return f"TRY_CAST({expr} AS BIGINT)"


def _time(date: str, datetime: str | None) -> str:
    day = f"CAST(TRY_CAST({date} AS DATE) AS TIMESTAMP)"
    return f"COALESCE(TRY_CAST({datetime} AS TIMESTAMP), {day})" if datetime else day


def _drop(person_ok: str, time: str) -> str:
    return (
        f"CASE WHEN NOT ({person_ok}) THEN 'person_id not in person' "
        f"WHEN {time} IS NULL THEN 'no valid date' "
        f"WHEN _birth IS NOT NULL AND {time} < CAST(_birth AS TIMESTAMP) THEN 'dated before birth' "
        f"WHEN {time} > {FUTURE} THEN 'dated in the future' END"
    )


def _counts(con: duckdb.DuckDBPyConnection) -> tuple[int, dict[str, int]]:
    rows = con.execute(
        "SELECT _drop, COUNT(*) FROM _stage GROUP BY _drop ORDER BY _drop NULLS FIRST"
    ).fetchall()
    total = sum(int(n) for _, n in rows)
    return total, {str(r): int(n) for r, n in rows if r is not None}


def person(con: duckdb.DuckDBPyConnection) -> SourceSummary:
    """``person`` -> person (sex, birth date, site, race and ethnicity attributes)."""
    yob, mob, dob = _bigint("year_of_birth"), _bigint("month_of_birth"), _bigint("day_of_birth")
    ymd = f"TRY_CAST(printf('%04d-%02d-%02d', {yob}, COALESCE({mob}, 1), COALESCE({dob}, 1)) AS DATE)"
    birth = f"COALESCE(CAST(TRY_CAST(birth_datetime AS TIMESTAMP) AS DATE), {ymd})"
    sex = " ".join(f"WHEN {k} THEN '{v}'" for k, v in SEX_CODES.items())

    def named(column: str, alias: str) -> tuple[str, str]:
        cid = _bigint(f"p.{column}")
        join = f" LEFT JOIN _vocab {alias} ON {alias}.concept_id = {cid}"
        return (
            f"CASE WHEN COALESCE({cid}, 0) <> 0 THEN COALESCE({alias}.name, 'OMOP:' || CAST({cid} AS VARCHAR)) END",
            join,
        )

    race, rj = named("race_concept_id", "r")
    eth, ej = named("ethnicity_concept_id", "e")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _stage AS SELECT {_bigint('p.person_id')} AS person_id, {birth} AS birth_date, "
        f"CASE {_bigint('p.gender_concept_id')} {sex} END AS sex, CAST({_bigint('p.care_site_id')} AS VARCHAR) AS site_id, "
        f"{race} AS race, {eth} AS ethnicity, CASE WHEN {_bigint('p.person_id')} IS NULL THEN 'no person_id' "
        f"WHEN {birth} IS NULL THEN 'no valid year of birth' END AS _drop FROM omop_person p{rj}{ej}"
    )
    dup = con.execute(
        "SELECT COUNT(*) - COUNT(DISTINCT person_id) FROM _stage WHERE _drop IS NULL"
    ).fetchone()
    if dup and dup[0]:
        raise ImportMappingError(
            f"person: column 'person_id': {dup[0]} duplicate rows (the key must be unique)"
        )
    con.execute(
        "INSERT INTO person (person_id, birth_date, sex, site_id, race, ethnicity) "
        "SELECT person_id, birth_date, sex, site_id, race, ethnicity FROM _stage WHERE _drop IS NULL"
    )
    total, drops = _counts(con)
    row = con.execute("SELECT COUNT(*) FROM _stage WHERE _drop IS NULL AND sex IS NULL").fetchone()
    notes = {"sex not male or female (NULL)": int(row[0])} if row and row[0] else {}
    return SourceSummary("person", "person", "imported", total, total - sum(drops.values()), drops, notes)


def observation_period(con: duckdb.DuckDBPyConnection) -> SourceSummary:
    start = "CAST(TRY_CAST(o.observation_period_start_date AS DATE) AS TIMESTAMP)"
    end = "CAST(TRY_CAST(o.observation_period_end_date AS DATE) AS TIMESTAMP)"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _stage AS SELECT p.person_id, {start} AS start_time, "
        f"{end} + INTERVAL 1 DAY - INTERVAL 1 MICROSECOND AS end_time, "
        "CASE WHEN p.person_id IS NULL THEN 'person_id not in person' "
        f"WHEN {start} IS NULL OR {end} IS NULL THEN 'no valid date' "
        f"WHEN {end} < {start} THEN 'ends before it starts' END AS _drop "
        f"FROM omop_observation_period o LEFT JOIN person p ON p.person_id = {_bigint('o.person_id')}"
    )
    con.execute(
        "INSERT INTO observation_period SELECT person_id, start_time, end_time FROM _stage WHERE _drop IS NULL"
    )
    total, drops = _counts(con)
    return SourceSummary(
        "observation_period", "observation_period", "imported", total, total - sum(drops.values()), drops
    )


def events(con: duckdb.DuckDBPyConnection, spec: EventTable, *, prefer_source: bool) -> SourceSummary:
    """One OMOP event table -> events, through ``_stage``."""
    c = f"COALESCE({_bigint('x.' + spec.concept)}, 0)"
    s = f"COALESCE({_bigint('x.' + spec.source_concept)}, 0)" if spec.source_concept else "0"
    if prefer_source:
        cid = f"CASE WHEN {s} <> 0 THEN {s} WHEN {c} <> 0 THEN {c} ELSE 0 END"
    else:
        cid = f"CASE WHEN {c} <> 0 THEN {c} WHEN {s} <> 0 THEN COALESCE(m.target, {s}) ELSE 0 END"
    mapped = f"({c} = 0 AND {s} <> 0 AND m.target IS NOT NULL)" if not prefer_source else "FALSE"
    time = _time("x." + spec.date, "x." + spec.datetime if spec.datetime else None)
    numeric = f"TRY_CAST(x.{spec.numeric} AS DOUBLE)" if spec.numeric else "NULL::DOUBLE"
    unit = "NULL"
    if spec.unit_concept or spec.unit:
        ucum = "CASE WHEN u.vocabulary = 'UCUM' THEN u.concept_code END"
        unit = f"COALESCE({ucum}, CAST(x.{spec.unit} AS VARCHAR))" if spec.unit else ucum
    text_parts = []
    if spec.value_text:
        text_parts.append(f"CAST(x.{spec.value_text} AS VARCHAR)")
    if spec.value_concept:
        vc = f"COALESCE({_bigint('x.' + spec.value_concept)}, 0)"
        text_parts.append(f"CASE WHEN {vc} <> 0 THEN {code_sql(vc, 'vv')} END")
    text = f"COALESCE({', '.join(text_parts)})" if text_parts else "NULL::VARCHAR"
    joins = (
        (
            f" LEFT JOIN _maps_to m ON m.source = {s}"
            if spec.source_concept
            else " LEFT JOIN _maps_to m ON FALSE"
        )
        + f" LEFT JOIN person p ON p.person_id = {_bigint('x.person_id')}"
        + (
            f" LEFT JOIN _vocab u ON u.concept_id = {_bigint('x.' + spec.unit_concept)}"
            if spec.unit_concept
            else ""
        )
        + (
            f" LEFT JOIN _vocab vv ON vv.concept_id = {_bigint('x.' + spec.value_concept)}"
            if spec.value_concept
            else ""
        )
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _pre AS SELECT p.person_id, p.birth_date AS _birth, {time} AS time, "
        f"{cid} AS concept_id, {mapped} AS _mapped, {numeric} AS numeric_value, {text} AS text_value, "
        f"{unit} AS unit FROM omop_{spec.table} x{joins}"
    )
    code = code_sql("_pre.concept_id", "v")
    if spec.table in ("visit_occurrence", "visit_detail"):
        visit = " ".join(f"WHEN {k} THEN '{v}'" for k, v in VISIT_CODES.items())
        code = f"COALESCE(CASE _pre.concept_id {visit} END, {code})"
    if spec.prefix:
        code = f"'{spec.prefix}:' || CASE WHEN starts_with({code}, 'VISIT:') THEN substr({code}, 7) ELSE {code} END"
    text_value = "text_value"
    if spec.fixed_code:  # death: the concept is the cause, kept in text_value
        text_value = f"CASE WHEN _pre.concept_id <> 0 THEN {code} END"
        code = f"'{spec.fixed_code}'"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _stage AS SELECT _pre.person_id, time, {code} AS code, numeric_value, "
        f"{text_value} AS text_value, unit, _pre.concept_id, _mapped, v.code IS NULL AND _pre.concept_id <> 0 AS _opaque, "
        f"{_drop('_pre.person_id IS NOT NULL', 'time')} AS _drop FROM _pre LEFT JOIN _vocab v ON v.concept_id = _pre.concept_id"
    )
    con.execute(
        "INSERT INTO events SELECT person_id, time, code, numeric_value, text_value, unit FROM _stage WHERE _drop IS NULL"
    )
    con.execute(
        "INSERT INTO _used SELECT DISTINCT concept_id FROM _stage WHERE _drop IS NULL AND concept_id <> 0"
    )
    total, drops = _counts(con)
    return SourceSummary(
        spec.table, "events", "imported", total, total - sum(drops.values()), drops, _event_notes(con)
    )


def _event_notes(con: duckdb.DuckDBPyConnection) -> dict[str, int | str]:
    row = con.execute(
        "SELECT COUNT(*) FILTER (WHERE concept_id = 0), COUNT(*) FILTER (WHERE _opaque), "
        "COUNT(*) FILTER (WHERE _mapped), COUNT(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM observation_period o "
        "WHERE o.person_id = _stage.person_id AND _stage.time BETWEEN o.start_time AND o.end_time)) "
        "FROM _stage WHERE _drop IS NULL"
    ).fetchone()
    labels = (
        "concept 0, kept as OMOP:0 (no matching concept)",
        "concept not in the vocabulary, kept as opaque OMOP:<id>",
        "source concept mapped to a standard concept through 'Maps to'",
        "outside every observation period (kept)",
    )
    return {k: int(n) for k, n in zip(labels, row or (), strict=False) if n}


def notes(con: duckdb.DuckDBPyConnection) -> SourceSummary:
    """``note`` -> notes (the note class concept's code as the note type)."""
    time = _time("x.note_date", "x.note_datetime")
    cls = f"COALESCE({_bigint('x.note_class_concept_id')}, 0)"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _stage AS SELECT {_bigint('x.note_id')} AS note_id, p.person_id, "
        f"p.birth_date AS _birth, {time} AS time, CASE WHEN {cls} <> 0 THEN {code_sql(cls, 'v')} END AS note_type, "
        "CAST(x.note_text AS VARCHAR) AS text FROM omop_note x "
        f"LEFT JOIN person p ON p.person_id = {_bigint('x.person_id')} LEFT JOIN _vocab v ON v.concept_id = {cls}"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _stage AS SELECT *, CASE WHEN note_id IS NULL THEN 'no note_id' "
        "WHEN ROW_NUMBER() OVER (PARTITION BY note_id ORDER BY time) > 1 THEN 'duplicate note_id' "
        f"ELSE {_drop('person_id IS NOT NULL', 'time')} END AS _drop FROM _stage"
    )
    con.execute(
        "INSERT INTO notes SELECT note_id, person_id, time, note_type, text FROM _stage WHERE _drop IS NULL"
    )
    total, drops = _counts(con)
    return SourceSummary("note", "notes", "imported", total, total - sum(drops.values()), drops)


def note_nlp(con: duckdb.DuckDBPyConnection) -> SourceSummary:
    """``note_nlp`` -> events ``NLP:<code>`` at the note's time; text_value is term_exists (Y/N)."""
    c = f"COALESCE({_bigint('x.note_nlp_concept_id')}, 0)"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _stage AS SELECT n.person_id, n.time, 'NLP:' || {code_sql(c, 'v')} AS code, "
        f"NULL::DOUBLE AS numeric_value, CAST(x.term_exists AS VARCHAR) AS text_value, NULL::VARCHAR AS unit, {c} AS concept_id, "
        f"CASE WHEN n.note_id IS NULL THEN 'note_id not in note' END AS _drop "
        f"FROM omop_note_nlp x LEFT JOIN notes n ON n.note_id = {_bigint('x.note_id')} "
        f"LEFT JOIN _vocab v ON v.concept_id = {c}"
    )
    con.execute(
        "INSERT INTO events SELECT person_id, time, code, numeric_value, text_value, unit FROM _stage WHERE _drop IS NULL"
    )
    con.execute(
        "INSERT INTO _used SELECT DISTINCT concept_id FROM _stage WHERE _drop IS NULL AND concept_id <> 0"
    )
    total, drops = _counts(con)
    return SourceSummary("note_nlp", "events", "imported", total, total - sum(drops.values()), drops)
