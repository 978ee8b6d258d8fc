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

TABLES: dict[str, Table] = {
    t.name: t for t in (PERSON, OBSERVATION_PERIOD, EVENTS, NOTES, IMAGES, ATTRIBUTE, METADATA)
}

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
    }
)

_CODE_RE = re.compile(r"^(?P<ns>[A-Z][A-Z0-9_]*)(?::(?P<rest>.+))?$")
_IDENT_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


def namespace(code: str) -> str | None:
    """The namespace of a code: ``ICD10:I50.9`` -> ``ICD10``; ``DEATH`` -> ``DEATH``."""
    m = _CODE_RE.match(code)
    return m.group("ns") if m else None


def is_identifier(name: str) -> bool:
    """Whether ``name`` is a safe lower-case SQL identifier (attribute and feature names)."""
    return bool(_IDENT_RE.match(name))


def create_table_sql(table: Table) -> str:
    cols = ", ".join(f"{c.name} {c.sql_type}{'' if c.nullable else ' NOT NULL'}" for c in table.columns)
    return f"CREATE TABLE {table.name} ({cols})"
