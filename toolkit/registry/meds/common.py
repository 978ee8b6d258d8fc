"""What export and import of MEDS share: the reserved codes and the code spelling rules."""

from __future__ import annotations

from toolkit.registry import schema as S

#: The MEDS version whose schemas the export is checked against (the ``meds`` package, in tests).
MEDS_VERSION = "0.4.1"
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
EXTENSION_COLUMNS = ("unit", "regent_numeric_value", "regent_id")
#: The registry's concept tables travel as ``metadata/regent_<table>.parquet`` (an exact round trip).
CONCEPT_TABLES = ("concept", "concept_ancestor")


def to_canonical_sql(expr: str) -> str:
    """SQL: a MEDS code (``ICD10//I50.22``) in the registry's canonical form (``ICD10:I50.22``)."""
    pattern, repl = S.SQL_MEDS_TO_CANONICAL
    return f"regexp_replace({expr}, '{pattern}', '{repl}')"


def to_meds_sql(expr: str) -> str:
    """SQL: a canonical code (``ICD10:I50.22``) spelled as MEDS writes it (``ICD10//I50.22``)."""
    pattern, repl = S.SQL_CANONICAL_TO_MEDS
    return f"regexp_replace({expr}, '{pattern}', '{repl}')"


def sql_str(value: str) -> str:
    return value.replace("'", "''")
