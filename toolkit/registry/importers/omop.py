"""Import OMOP CDM 5.4 tables (CSV or Parquet) into the canonical registry schema.

Reads ``person`` and ``observation_period`` (required) and, when present, ``visit_occurrence``,
``condition_occurrence``, ``drug_exposure``, ``procedure_occurrence``, ``measurement``,
``observation``, ``death`` and ``note`` from a folder: one file per table, ``<table>.csv`` or
``<table>.parquet`` (any letter case).  Other files are ignored.

Concepts become namespaced codes through a ``concept`` table (in the folder, or the folder or file
given as ``vocabulary``, e.g. an Athena download): vocabulary ICD10CM/ICD10 -> ``ICD10:<code>``,
ICD9CM -> ``ICD9:``, ICD10PCS -> ``ICD10PCS:``, LOINC -> ``LOINC:``, SNOMED -> ``SNOMED:``,
RxNorm -> ``RXNORM:``, ATC -> ``ATC:``, CPT4 -> ``CPT:``; any other concept, or no concept table,
gives ``OMOP:<concept_id>``.  Each fact uses its standard concept (``*_concept_id``) and falls back
to its source concept (``*_source_concept_id``) when that is 0; ``prefer_source=True`` reverses the
order (keeps ICD-10-CM diagnoses as ICD-10 rather than their SNOMED mappings).

Mapping, in brief:

* person: sex from gender_concept_id (8507 -> ``M``, 8532 -> ``F``, else NULL); birth date from
  birth_datetime, else year/month/day of birth (a missing month or day counts as 1); site from
  care_site_id; race and ethnicity become ``string`` attributes (concept name when known).
* observation_period: start date at 00:00 to the last microsecond of the (inclusive) end date.
* visits: 9201 -> ``VISIT:IP``, 9202 -> ``VISIT:OP``, 9203 -> ``VISIT:ER``, 262 -> ``VISIT:ERIP``.
* measurement/observation: value_as_number -> numeric_value, unit_source_value -> unit; a value
  concept (or observation's value_as_string) -> text_value.
* death -> ``DEATH`` with the cause's code in text_value.  note -> ``notes``.
* Event times: the ``*_datetime`` column when filled, else the date at 00:00.

Problems stop the import with :class:`ImportMappingError` naming the file and column and giving
row counts, never values.  The registry is written atomically by :class:`RegistryWriter`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from toolkit.errors import ImportMappingError
from toolkit.registry.store import Attribute, RegistryWriter

#: OMOP vocabulary_id -> Regent code namespace.
VOCABULARY_NAMESPACES: dict[str, str] = {
    "ICD10CM": "ICD10",
    "ICD10": "ICD10",
    "ICD9CM": "ICD9",
    "ICD10PCS": "ICD10PCS",
    "LOINC": "LOINC",
    "SNOMED": "SNOMED",
    "RxNorm": "RXNORM",
    "ATC": "ATC",
    "CPT4": "CPT",
}
VISIT_CODES: dict[int, str] = {9201: "VISIT:IP", 9202: "VISIT:OP", 9203: "VISIT:ER", 262: "VISIT:ERIP"}
SEX_CODES: dict[int, str] = {8507: "M", 8532: "F"}

#: Every column of the CDM 5.4 tables read here; a column outside these is an error (a typo).
CDM_COLUMNS: dict[str, tuple[str, ...]] = {
    "person": (
        "person_id", "gender_concept_id", "year_of_birth", "month_of_birth", "day_of_birth",
        "birth_datetime", "race_concept_id", "ethnicity_concept_id", "location_id", "provider_id",
        "care_site_id", "person_source_value", "gender_source_value", "gender_source_concept_id",
        "race_source_value", "race_source_concept_id", "ethnicity_source_value",
        "ethnicity_source_concept_id",
    ),
    "observation_period": (
        "observation_period_id", "person_id", "observation_period_start_date",
        "observation_period_end_date", "period_type_concept_id",
    ),
    "visit_occurrence": (
        "visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date", "visit_start_datetime",
        "visit_end_date", "visit_end_datetime", "visit_type_concept_id", "provider_id", "care_site_id",
        "visit_source_value", "visit_source_concept_id", "admitted_from_concept_id",
        "admitted_from_source_value", "discharged_to_concept_id", "discharged_to_source_value",
        "preceding_visit_occurrence_id",
    ),
    "condition_occurrence": (
        "condition_occurrence_id", "person_id", "condition_concept_id", "condition_start_date",
        "condition_start_datetime", "condition_end_date", "condition_end_datetime",
        "condition_type_concept_id", "condition_status_concept_id", "stop_reason", "provider_id",
        "visit_occurrence_id", "visit_detail_id", "condition_source_value", "condition_source_concept_id",
        "condition_status_source_value",
    ),
    "drug_exposure": (
        "drug_exposure_id", "person_id", "drug_concept_id", "drug_exposure_start_date",
        "drug_exposure_start_datetime", "drug_exposure_end_date", "drug_exposure_end_datetime",
        "verbatim_end_date", "drug_type_concept_id", "stop_reason", "refills", "quantity", "days_supply",
        "sig", "route_concept_id", "lot_number", "provider_id", "visit_occurrence_id", "visit_detail_id",
        "drug_source_value", "drug_source_concept_id", "route_source_value", "dose_unit_source_value",
    ),
    "procedure_occurrence": (
        "procedure_occurrence_id", "person_id", "procedure_concept_id", "procedure_date",
        "procedure_datetime", "procedure_end_date", "procedure_end_datetime", "procedure_type_concept_id",
        "modifier_concept_id", "quantity", "provider_id", "visit_occurrence_id", "visit_detail_id",
        "procedure_source_value", "procedure_source_concept_id", "modifier_source_value",
    ),
    "measurement": (
        "measurement_id", "person_id", "measurement_concept_id", "measurement_date", "measurement_datetime",
        "measurement_time", "measurement_type_concept_id", "operator_concept_id", "value_as_number",
        "value_as_concept_id", "unit_concept_id", "range_low", "range_high", "provider_id",
        "visit_occurrence_id", "visit_detail_id", "measurement_source_value", "measurement_source_concept_id",
        "unit_source_value", "unit_source_concept_id", "value_source_value", "measurement_event_id",
        "meas_event_field_concept_id",
    ),
    "observation": (
        "observation_id", "person_id", "observation_concept_id", "observation_date", "observation_datetime",
        "observation_type_concept_id", "value_as_number", "value_as_string", "value_as_concept_id",
        "qualifier_concept_id", "unit_concept_id", "provider_id", "visit_occurrence_id", "visit_detail_id",
        "observation_source_value", "observation_source_concept_id", "unit_source_value",
        "qualifier_source_value", "value_source_value", "observation_event_id", "obs_event_field_concept_id",
    ),
    "death": (
        "person_id", "death_date", "death_datetime", "death_type_concept_id", "cause_concept_id",
        "cause_source_value", "cause_source_concept_id",
    ),
    "note": (
        "note_id", "person_id", "note_date", "note_datetime", "note_type_concept_id", "note_class_concept_id",
        "note_title", "note_text", "encoding_concept_id", "language_concept_id", "provider_id",
        "visit_occurrence_id", "visit_detail_id", "note_source_value", "note_event_id",
        "note_event_field_concept_id",
    ),
    "concept": (
        "concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id", "standard_concept",
        "concept_code", "valid_start_date", "valid_end_date", "invalid_reason",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class EventTable:
    """How one OMOP clinical table becomes events: which columns give the code, time and values."""

    table: str
    concept: str
    date: str
    datetime: str
    source_concept: str | None = None
    numeric: str | None = None
    unit: str | None = None
    value_concept: str | None = None
    value_text: str | None = None
    fixed_code: str | None = None  # death: every row is DEATH, the concept is the cause


EVENT_TABLES: tuple[EventTable, ...] = (
    EventTable("visit_occurrence", "visit_concept_id", "visit_start_date", "visit_start_datetime",
               "visit_source_concept_id"),
    EventTable("condition_occurrence", "condition_concept_id", "condition_start_date",
               "condition_start_datetime", "condition_source_concept_id"),
    EventTable("drug_exposure", "drug_concept_id", "drug_exposure_start_date", "drug_exposure_start_datetime",
               "drug_source_concept_id"),
    EventTable("procedure_occurrence", "procedure_concept_id", "procedure_date", "procedure_datetime",
               "procedure_source_concept_id"),
    EventTable("measurement", "measurement_concept_id", "measurement_date", "measurement_datetime",
               "measurement_source_concept_id", numeric="value_as_number", unit="unit_source_value",
               value_concept="value_as_concept_id"),
    EventTable("observation", "observation_concept_id", "observation_date", "observation_datetime",
               "observation_source_concept_id", numeric="value_as_number", unit="unit_source_value",
               value_concept="value_as_concept_id", value_text="value_as_string"),
    EventTable("death", "cause_concept_id", "death_date", "death_datetime", "cause_source_concept_id",
               fixed_code="DEATH"),
)  # fmt: skip

REQUIRED: dict[str, tuple[str, ...]] = {
    "person": ("person_id", "gender_concept_id", "year_of_birth"),
    "observation_period": ("person_id", "observation_period_start_date", "observation_period_end_date"),
    "note": ("note_id", "person_id", "note_date"),
    **{t.table: ("person_id", t.date) + (() if t.fixed_code else (t.concept,)) for t in EVENT_TABLES},
}
ATTRIBUTES = (
    Attribute("race", "string", description="OMOP race_concept_id (concept name when known)"),
    Attribute("ethnicity", "string", description="OMOP ethnicity_concept_id (concept name when known)"),
)


class _Source:
    """The OMOP files found in a folder, as DuckDB temporary views named ``omop_<table>``."""

    def __init__(self, con: duckdb.DuckDBPyConnection, folder: Path, vocabulary: Path | None) -> None:
        self.con = con
        self.folder = folder
        self.files: dict[str, Path] = {}
        self.columns: dict[str, set[str]] = {}
        found = _find_files(folder)
        if vocabulary is not None:
            vocab = _find_files(vocabulary) if vocabulary.is_dir() else {"concept": vocabulary}
            if "concept" not in vocab:
                raise ImportMappingError(f"{vocabulary}: no concept.csv or concept.parquet found")
            found["concept"] = vocab["concept"]
        for table, path in found.items():
            self._register(table, path)

    def _register(self, table: str, path: Path) -> None:
        if path.suffix.lower() == ".parquet":
            reader = f"read_parquet('{_sql_str(str(path))}')"
        else:  # Athena's vocabulary files are tab-separated; the sniffer finds the delimiter
            reader = f"read_csv('{_sql_str(str(path))}', header = true, all_varchar = true)"
        try:
            described = self.con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
        except duckdb.Error as exc:
            raise ImportMappingError(f"{path}: cannot read ({type(exc).__name__})") from None
        raw = [str(r[0]) for r in described]
        cols = {c.lower() for c in raw}
        unknown = sorted(cols - set(CDM_COLUMNS[table]))
        if unknown:
            raise ImportMappingError(f"{path}: unknown column(s) {unknown} for OMOP CDM 5.4 table {table!r}")
        missing = [
            c for c in REQUIRED.get(table, ("concept_id", "vocabulary_id", "concept_code")) if c not in cols
        ]
        if missing:
            raise ImportMappingError(f"{path}: missing required column {missing[0]!r} (table {table!r})")
        renames = ", ".join(f'"{c}" AS {c.lower()}' for c in raw)
        self.con.execute(f"CREATE TEMP VIEW omop_{table} AS SELECT {renames} FROM {reader}")
        self.files[table] = path
        self.columns[table] = cols

    def col(self, table: str, column: str, sql_type: str = "VARCHAR") -> str:
        """``column`` cast to ``sql_type`` (TRY_CAST; checked separately), or NULL if absent."""
        if column not in self.columns[table]:
            return f"NULL::{sql_type}"
        return f"TRY_CAST({column} AS {sql_type})"

    def check(self, table: str, column: str, sql_type: str, *, required: bool = False) -> None:
        """Every filled cell of ``column`` casts to ``sql_type``; a required one is never empty."""
        if column not in self.columns[table]:
            return
        row = self.con.execute(
            f"SELECT COUNT(*) FILTER (WHERE {column} IS NOT NULL AND TRY_CAST({column} AS {sql_type}) IS NULL), "
            f"COUNT(*) FILTER (WHERE {column} IS NULL) FROM omop_{table}"
        ).fetchone()
        bad, empty = row if row else (0, 0)
        if bad:
            raise ImportMappingError(
                f"{self.files[table]}: column {column!r}: {bad} rows are not {sql_type.lower()} values"
            )
        if required and empty:
            raise ImportMappingError(f"{self.files[table]}: column {column!r}: {empty} rows are empty")


def _find_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise ImportMappingError(f"{folder}: not a folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        stem, suffix = path.stem.lower(), path.suffix.lower()
        if suffix in (".csv", ".parquet") and stem in CDM_COLUMNS:
            if stem in found:
                raise ImportMappingError(
                    f"{folder}: both {found[stem].name} and {path.name} hold table {stem!r}"
                )
            found[stem] = path
    return found


def _sql_str(value: str) -> str:
    return value.replace("'", "''")


def import_omop(
    folder: Path | str,
    out: Path | str,
    *,
    vocabulary: Path | str | None = None,
    prefer_source: bool = False,
) -> Path:
    """Import the OMOP CDM 5.4 tables in ``folder`` into a registry file at ``out``.

    >>> import_omop("data/omop", "data/omop.duckdb", vocabulary="data/athena")  # doctest: +SKIP
    """
    folder = Path(folder)
    meta = {"name": folder.name, "source": "OMOP CDM 5.4", "importer": "toolkit.registry.importers.omop"}
    with RegistryWriter(out, attributes=ATTRIBUTES, metadata=meta) as w:
        con = w.con
        con.execute("SET TimeZone = 'UTC'")  # TIMESTAMPTZ columns in Parquet read as UTC wall times
        src = _Source(con, folder, Path(vocabulary) if vocabulary is not None else None)
        for table in ("person", "observation_period"):
            if table not in src.files:
                raise ImportMappingError(
                    f"{folder}: OMOP table {table!r} not found (expected {table}.csv or .parquet)"
                )
        concepts = _concept_map(con, src)
        _person(con, src, concepts)
        _periods(con, src)
        for spec in EVENT_TABLES:
            if spec.table in src.files:
                _events(con, src, spec, concepts, prefer_source=prefer_source)
        if "note" in src.files:
            _notes(con, src)
        _check_persons(con, src)
        con.execute(
            "INSERT INTO metadata VALUES ('vocabulary', ?)",
            ["concept table" if "concept" in src.files else "none (codes are OMOP:<concept_id>)"],
        )
    return Path(out)


def _concept_map(con: duckdb.DuckDBPyConnection, src: _Source) -> str:
    """Create ``_concept`` (concept_id -> code, name) and return its name."""
    if "concept" not in src.files:
        con.execute("CREATE TEMP TABLE _concept (concept_id BIGINT, code VARCHAR, name VARCHAR)")
        return "_concept"
    src.check("concept", "concept_id", "BIGINT", required=True)
    cases = " ".join(f"WHEN '{v}' THEN '{ns}:' || concept_code" for v, ns in VOCABULARY_NAMESPACES.items())
    con.execute(
        "CREATE TEMP TABLE _concept AS SELECT CAST(concept_id AS BIGINT) AS concept_id, "
        f"CASE vocabulary_id {cases} ELSE 'OMOP:' || CAST(CAST(concept_id AS BIGINT) AS VARCHAR) END AS code, "
        f"{src.col('concept', 'concept_name')} AS name FROM omop_concept"
    )
    return "_concept"


def _code(ids: list[str], concepts: str, alias: str) -> tuple[str, str]:
    """SQL for the code of the first non-zero concept id in ``ids``, and the joins it needs."""
    joins, whens = [], []
    for i, expr in enumerate(ids):
        joins.append(f" LEFT JOIN {concepts} {alias}{i} ON {alias}{i}.concept_id = {expr}")
        whens.append(
            f"WHEN COALESCE({expr}, 0) <> 0 THEN COALESCE({alias}{i}.code, 'OMOP:' || CAST({expr} AS VARCHAR))"
        )
    return f"CASE {' '.join(whens)} END", "".join(joins)


def _time(src: _Source, table: str, date: str, datetime: str) -> str:
    """The event time: ``datetime`` when filled, else ``date`` at 00:00; never empty."""
    src.check(table, date, "DATE")
    src.check(table, datetime, "TIMESTAMP")
    expr = f"COALESCE({src.col(table, datetime, 'TIMESTAMP')}, CAST({src.col(table, date, 'DATE')} AS TIMESTAMP))"
    row = src.con.execute(f"SELECT COUNT(*) FROM omop_{table} WHERE {expr} IS NULL").fetchone()
    if row and row[0]:
        raise ImportMappingError(
            f"{src.files[table]}: column {date!r}: {row[0]} rows have neither {date!r} nor {datetime!r}"
        )
    return expr


def _person(con: duckdb.DuckDBPyConnection, src: _Source, concepts: str) -> None:
    for c in ("person_id", "gender_concept_id", "year_of_birth"):
        src.check("person", c, "BIGINT", required=c != "gender_concept_id")
    for c in ("month_of_birth", "day_of_birth", "care_site_id", "race_concept_id", "ethnicity_concept_id"):
        src.check("person", c, "BIGINT")
    src.check("person", "birth_datetime", "TIMESTAMP")
    dup = con.execute("SELECT COUNT(*) - COUNT(DISTINCT person_id) FROM omop_person").fetchone()
    if dup and dup[0]:
        raise ImportMappingError(f"{src.files['person']}: column 'person_id': {dup[0]} duplicate rows")
    sex = " ".join(f"WHEN {k} THEN '{v}'" for k, v in SEX_CODES.items())
    col = src.col

    def named(column: str, alias: str) -> tuple[str, str]:
        expr = col("person", column, "BIGINT")
        join = f" LEFT JOIN {concepts} {alias} ON {alias}.concept_id = {expr}"
        name = f"COALESCE({alias}.name, {alias}.code, 'OMOP:' || CAST({expr} AS VARCHAR))"
        return f"CASE WHEN COALESCE({expr}, 0) <> 0 THEN {name} END", join

    race, race_join = named("race_concept_id", "r")
    eth, eth_join = named("ethnicity_concept_id", "e")
    ymd = (
        f"TRY_CAST(printf('%04d-%02d-%02d', {col('person', 'year_of_birth', 'BIGINT')}, "
        f"COALESCE({col('person', 'month_of_birth', 'BIGINT')}, 1), "
        f"COALESCE({col('person', 'day_of_birth', 'BIGINT')}, 1)) AS DATE)"
    )
    bad = con.execute(f"SELECT COUNT(*) FROM omop_person WHERE {ymd} IS NULL").fetchone()
    if bad and bad[0]:
        raise ImportMappingError(
            f"{src.files['person']}: columns 'year_of_birth', 'month_of_birth', 'day_of_birth': "
            f"{bad[0]} rows do not form a date"
        )
    birth = f"COALESCE(CAST({col('person', 'birth_datetime', 'TIMESTAMP')} AS DATE), {ymd})"
    con.execute(
        "INSERT INTO person (person_id, birth_date, sex, site_id, race, ethnicity) "
        f"SELECT CAST(p.person_id AS BIGINT), {birth}, "
        f"CASE {col('person', 'gender_concept_id', 'BIGINT')} {sex} END, "
        f"CAST({col('person', 'care_site_id', 'BIGINT')} AS VARCHAR), {race}, {eth} "
        f"FROM omop_person p{race_join}{eth_join}"
    )


def _periods(con: duckdb.DuckDBPyConnection, src: _Source) -> None:
    t = "observation_period"
    src.check(t, "person_id", "BIGINT", required=True)
    start, end = "observation_period_start_date", "observation_period_end_date"
    src.check(t, start, "DATE", required=True)
    src.check(t, end, "DATE", required=True)
    con.execute(
        f"INSERT INTO observation_period SELECT CAST(person_id AS BIGINT), CAST(CAST({start} AS DATE) AS TIMESTAMP), "
        f"CAST(CAST({end} AS DATE) AS TIMESTAMP) + INTERVAL 1 DAY - INTERVAL 1 MICROSECOND FROM omop_{t}"
    )


def _events(
    con: duckdb.DuckDBPyConnection, src: _Source, spec: EventTable, concepts: str, *, prefer_source: bool
) -> None:
    t = spec.table
    src.check(t, "person_id", "BIGINT", required=True)
    ids = [spec.concept] + ([spec.source_concept] if spec.source_concept else [])
    for c in [*ids, *([spec.value_concept] if spec.value_concept else [])]:
        src.check(t, c, "BIGINT")  # empty counts as 0, "no matching concept"
    if prefer_source:
        ids.reverse()
    code, joins = _code([src.col(t, c, "BIGINT") for c in ids], concepts, "c")
    if t == "visit_occurrence":
        visit = " ".join(f"WHEN {k} THEN '{v}'" for k, v in VISIT_CODES.items())
        code = f"COALESCE(CASE {src.col(t, spec.concept, 'BIGINT')} {visit} END, {code})"
    text = "NULL"
    if spec.fixed_code is not None:
        text, code = code, f"'{spec.fixed_code}'"
    else:
        code = f"COALESCE({code}, 'OMOP:0')"
        parts = []
        if spec.value_text:
            parts.append(src.col(t, spec.value_text))
        if spec.value_concept:
            vc, vjoin = _code([src.col(t, spec.value_concept, "BIGINT")], concepts, "v")
            parts.append(vc)
            joins += vjoin
        if parts:
            text = f"COALESCE({', '.join(parts)})"
    numeric = "NULL"
    if spec.numeric:
        src.check(t, spec.numeric, "DOUBLE")
        numeric = src.col(t, spec.numeric, "DOUBLE")
    unit = src.col(t, spec.unit) if spec.unit else "NULL"
    con.execute(
        f"INSERT INTO events SELECT CAST(x.person_id AS BIGINT), {_time(src, t, spec.date, spec.datetime)}, "
        f"{code}, {numeric}, {text}, {unit} FROM omop_{t} x{joins}"
    )


def _notes(con: duckdb.DuckDBPyConnection, src: _Source) -> None:
    t = "note"
    src.check(t, "note_id", "BIGINT", required=True)
    src.check(t, "person_id", "BIGINT", required=True)
    src.check(t, "note_class_concept_id", "BIGINT")
    kind, joins = _code([src.col(t, "note_class_concept_id", "BIGINT")], "_concept", "n")
    con.execute(
        f"INSERT INTO notes SELECT CAST(x.note_id AS BIGINT), CAST(x.person_id AS BIGINT), "
        f"{_time(src, t, 'note_date', 'note_datetime')}, {kind}, {src.col(t, 'note_text')} FROM omop_{t} x{joins}"
    )


def _check_persons(con: duckdb.DuckDBPyConnection, src: _Source) -> None:
    """Every row of every other table refers to a person in ``person``."""
    for table in [t for t in src.files if t not in ("person", "concept")]:
        row = con.execute(
            f"SELECT COUNT(*) FROM omop_{table} x WHERE NOT EXISTS "
            "(SELECT 1 FROM person p WHERE p.person_id = TRY_CAST(x.person_id AS BIGINT))"
        ).fetchone()
        if row and row[0]:
            raise ImportMappingError(
                f"{src.files[table]}: column 'person_id': {row[0]} rows refer to no row of person"
            )
