"""The canonical registry schema and the column vocabulary used everywhere in Regent.

Defined once here; the DuckDB store, the checker, the importers, the cohort compiler and the
documentation (docs/registry.md) all read these definitions.

``observation_period`` uses ``start_time``/``end_time`` rather than ``start``/``end`` because
``END`` is a reserved word in SQL and would need quoting on every backend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# --- the shared column vocabulary ---------------------------------------------------------
PERSON_ID = "person_id"
INDEX_TIME = "index_time"
TIME = "time"  # days from index in cohort tables; a timestamp in the events table
EVENT = "event"  # 0 censored, 1 outcome, k >= 2 competing event k
CENSOR_REASON = "censor_reason"
AGE = "age"
SEX = "sex"
SITE = "site_id"

SCHEMA_VERSION = "1"


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    nullable: bool
    description: str


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    description: str
    required: bool = True

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


PERSON = Table(
    "person",
    (
        Column(PERSON_ID, "BIGINT", False, "Registry-wide person identifier (pseudonymous)."),
        Column("birth_date", "DATE", True, "Date of birth (may be shifted by de-identification)."),
        Column(SEX, "VARCHAR", True, "'F', 'M' or another documented code; NULL when unknown."),
        Column(SITE, "VARCHAR", True, "Hospital or site that contributed the person."),
    ),
    (PERSON_ID,),
    "One row per person. Further typed static attributes are extra columns, declared in `attribute`.",
)
OBSERVATION_PERIOD = Table(
    "observation_period",
    (
        Column(PERSON_ID, "BIGINT", False, "Person."),
        Column("start_time", "TIMESTAMP", False, "Start of a span in which the registry sees the person."),
        Column("end_time", "TIMESTAMP", False, "End of the span (death, transfer, or data cut-off)."),
    ),
    (),
    "Spans of time in which events would be recorded if they happened.",
)
EVENTS = Table(
    "events",
    (
        Column(PERSON_ID, "BIGINT", False, "Person."),
        Column(TIME, "TIMESTAMP", False, "When the event happened (naive timestamps, read as UTC)."),
        Column("code", "VARCHAR", False, "Namespaced code: `ICD10:I50.9`, `LOINC:33762-6`, `DEATH`."),
        Column("numeric_value", "DOUBLE", True, "Measured value, if any."),
        Column("text_value", "VARCHAR", True, "Categorical or text value (e.g. the cause of a DEATH)."),
        Column("unit", "VARCHAR", True, "UCUM unit of numeric_value."),
    ),
    (),
    "Every coded fact: diagnoses, labs, vitals, medications, procedures, visits, deaths.",
)
NOTES = Table(
    "notes",
    (
        Column("note_id", "BIGINT", False, "Note identifier."),
        Column(PERSON_ID, "BIGINT", False, "Person."),
        Column(TIME, "TIMESTAMP", False, "When the note was written."),
        Column("note_type", "VARCHAR", True, "e.g. discharge_summary, echo_report."),
        Column("text", "VARCHAR", True, "Free text."),
    ),
    ("note_id",),
    "Clinical notes.",
)
IMAGES = Table(
    "images",
    (
        Column("image_id", "BIGINT", False, "Image identifier."),
        Column(PERSON_ID, "BIGINT", False, "Person."),
        Column(TIME, "TIMESTAMP", False, "Acquisition time."),
        Column("modality", "VARCHAR", True, "DICOM modality (XA, US, CT, MR...)."),
        Column("body_site", "VARCHAR", True, "Body part examined."),
        Column("uri", "VARCHAR", True, "Location of the DICOM file, relative to the registry file."),
    ),
    ("image_id",),
    "Imaging studies, linked to DICOM files.",
)
ATTRIBUTE = Table(
    "attribute",
    (
        Column("name", "VARCHAR", False, "Column name of the static attribute in `person`."),
        Column("dtype", "VARCHAR", False, "One of float, int, bool, category, date, string."),
        Column("levels", "VARCHAR", True, "JSON list of categorical levels, in order."),
        Column("unit", "VARCHAR", True, "UCUM unit for numeric attributes."),
        Column("description", "VARCHAR", True, "Human description."),
    ),
    ("name",),
    "Declares each typed static attribute stored as an extra column of `person`.",
)
METADATA = Table(
    "metadata",
    (
        Column("key", "VARCHAR", False, "Metadata key."),
        Column("value", "VARCHAR", True, "Value (text or JSON)."),
    ),
    ("key",),
    "Registry-level facts: schema version, name, source, generator and seed.",
)

CONCEPT = Table(
    "concept",
    (
        Column("code", "VARCHAR", False, "The code as events carry it (canonical form `NS:code`)."),
        Column("concept_id", "BIGINT", True, "OMOP concept id, when the code came from an OMOP vocabulary."),
        Column("name", "VARCHAR", True, "Concept name or MEDS code description."),
        Column("vocabulary", "VARCHAR", True, "OMOP vocabulary_id (SNOMED, ICD10CM, ...), when known."),
        Column("domain", "VARCHAR", True, "OMOP domain_id (Condition, Drug, ...), when known."),
        Column("standard", "VARCHAR", True, "OMOP standard_concept flag: 'S', 'C' or NULL."),
        Column("parent_codes", "VARCHAR", True, "JSON list of parent codes (MEDS codes.parquet)."),
    ),
    (),
    "The vocabulary behind the codes: names, OMOP concept ids and parents (optional; filled by "
    "import-omop with a concept table and by import-meds from codes.parquet).",
    required=False,
)
CONCEPT_ANCESTOR = Table(
    "concept_ancestor",
    (
        Column("ancestor_concept_id", "BIGINT", False, "Ancestor concept (a concept is its own ancestor)."),
        Column("descendant_concept_id", "BIGINT", False, "Descendant concept."),
        Column("min_levels", "BIGINT", True, "OMOP min_levels_of_separation."),
    ),
    (),
    "OMOP concept_ancestor rows whose descendant is a concept the registry uses (optional): resolves "
    "`{concept: ..., descendants: true}` in cohort concept sets.",
    required=False,
)
IMPORT_SUMMARY = Table(
    "import_summary",
    (
        Column("source", "VARCHAR", False, "Source table or file group (e.g. `measurement`)."),
        Column("target", "VARCHAR", True, "Registry table it went to (`events`, `person`, ...)."),
        Column("status", "VARCHAR", False, "`imported`, `empty` or `skipped`."),
        Column("rows_read", "BIGINT", True, "Rows read from the source."),
        Column("rows_written", "BIGINT", True, "Rows written to the target."),
        Column("rows_dropped", "BIGINT", True, "Rows not written (rows_read - rows_written)."),
        Column("drops", "VARCHAR", True, "JSON object: reason -> rows dropped for that reason."),
        Column(
            "notes",
            "VARCHAR",
            True,
            "JSON object: other counts (opaque codes, unmapped concepts) or the reason a source was skipped.",
        ),
    ),
    (),
    "What an import read, wrote and dropped, per source table (optional; counts only, no values).",
    required=False,
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        PERSON, OBSERVATION_PERIOD, EVENTS, NOTES, IMAGES, ATTRIBUTE, METADATA, CONCEPT, CONCEPT_ANCESTOR,
        IMPORT_SUMMARY,
    )
}  # fmt: skip
#: Optional tables: absent in older registries, skipped by the digest while empty.
OPTIONAL_TABLES: frozenset[str] = frozenset(t.name for t in TABLES.values() if not t.required)

ATTRIBUTE_TYPES: dict[str, str] = {
    "float": "DOUBLE",
    "int": "BIGINT",
    "bool": "BOOLEAN",
    "category": "VARCHAR",
    "date": "DATE",
    "string": "VARCHAR",
}

#: Code namespaces Regent knows. ``LOCAL`` is for site-specific codes, ``STUDY`` for study
#: enrolment/outcome markers created by flat-registry imports, ``VISIT`` for encounter types.
KNOWN_NAMESPACES: frozenset[str] = frozenset(
    {
        "ICD10",
        "ICD10PCS",
        "ICD9",
        "LOINC",
        "ATC",
        "RXNORM",
        "SNOMED",
        "CPT",
        "OMOP",
        "VISIT",
        "LOCAL",
        "STUDY",
        "DEATH",
        # OMOP vocabulary ids as import-omop writes them (upper case, '_' for other characters)
        "ICD10CM",
        "ICD9CM",
        "ICD9PROC",
        "CPT4",
        "HCPCS",
        "NDC",
        "CVX",
        "RXNORM_EXTENSION",
        "UCUM",
        "VISIT_DETAIL",  # import-omop: visit_detail rows (ICU stays, ward transfers)
        "NLP",  # import-omop: note_nlp rows
    }
)

_CODE_RE = re.compile(r"^(?P<ns>[A-Za-z][A-Za-z0-9_.\-]*)(?::(?P<rest>.+))?$")
#: MEDS writes ``NAMESPACE//code``; Regent's canonical form is ``NAMESPACE:code``.
_MEDS_SEP_RE = re.compile(r"^(?P<ns>[A-Za-z][A-Za-z0-9_.\-]*)//")
#: The same rules as SQL regular expressions (DuckDB and Spark ``regexp_replace``).
SQL_MEDS_TO_CANONICAL = (r"^([A-Za-z][A-Za-z0-9_.\-]*)//", r"\1:")
SQL_CANONICAL_TO_MEDS = (r"^([A-Za-z][A-Za-z0-9_.\-]*):", r"\1//")
_IDENT_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


def namespace(code: str) -> str | None:
    """The namespace of a code: ``ICD10:I50.9`` -> ``ICD10``; ``DEATH`` -> ``DEATH``.

    Namespaces are open: any name that starts with a letter is one (``KNOWN_NAMESPACES`` only
    decides whether ``regent registry check`` warns).  ``None`` for a code that has no namespace
    shape at all (``50912``, ``Body weight``).
    """
    m = _CODE_RE.match(canonical_code(code))
    return m.group("ns") if m else None


def canonical_code(code: str) -> str:
    """The registry's one code form, ``NS:code``: MEDS ``ICD10//I50.22`` -> ``ICD10:I50.22``.

    Only the first separator changes (``LAB//creatinine//mg/dL`` -> ``LAB:creatinine//mg/dL``);
    a code already in canonical form, or without a namespace (``HR``), is returned unchanged.

    >>> canonical_code("ICD10//I50.22"), canonical_code("ICD10:I50.22"), canonical_code("HR")
    ('ICD10:I50.22', 'ICD10:I50.22', 'HR')
    """
    m = _MEDS_SEP_RE.match(code)
    return f"{m.group('ns')}:{code[m.end() :]}" if m else code


def meds_code(code: str) -> str:
    """The MEDS spelling of a canonical code: ``ICD10:I50.22`` -> ``ICD10//I50.22``."""
    m = _CODE_RE.match(code)
    return f"{m.group('ns')}//{m.group('rest')}" if m and m.group("rest") is not None else code


def is_identifier(name: str) -> bool:
    """Whether ``name`` is a safe lower-case SQL identifier (attribute and feature names)."""
    return bool(_IDENT_RE.match(name))


def create_table_sql(table: Table) -> str:
    cols = ", ".join(f"{c.name} {c.sql_type}{'' if c.nullable else ' NOT NULL'}" for c in table.columns)
    return f"CREATE TABLE {table.name} ({cols})"
