"""OMOP vocabularies: concept ids to Regent codes, 'Maps to', and the ancestors kept in the registry.

A concept becomes the code ``<VOCABULARY>:<concept_code>``, the namespace being the
``vocabulary_id`` in upper case with other characters as ``_`` (``SNOMED:42343007``,
``ICD10CM:I50.9``, ``RXNORM:6918``, ``LOINC:33762-6``, ``RXNORM_EXTENSION:OMOP123``).  A concept id
the vocabulary does not hold stays addressable as ``OMOP:<concept_id>``; concept 0 ("no matching
concept") is ``OMOP:0``.

The concept table may come from the CDM folder or from an Athena download (``--vocabulary DIR``:
``CONCEPT.csv``, ``CONCEPT_RELATIONSHIP.csv``, ``CONCEPT_ANCESTOR.csv``, tab-separated with a
header).  A concept id listed twice is counted and read once (a standard, valid row first), so a
duplicated vocabulary row can never duplicate events.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

#: The namespace of an OMOP vocabulary_id, as SQL over a column ``v``.
NAMESPACE_SQL = "upper(regexp_replace({v}, '[^A-Za-z0-9]+', '_', 'g'))"


@dataclass(frozen=True)
class VocabularyInfo:
    """What the vocabulary tables held: counts for the import summary."""

    concepts: int  # distinct concept ids
    duplicate_rows: int  # concept rows beyond the first per concept id
    maps_to: int  # source concepts with a 'Maps to' target
    several_targets: int  # source concepts with more than one 'Maps to' target (first taken)
    ancestors: bool  # whether a concept_ancestor table was given

    @property
    def present(self) -> bool:
        return self.concepts > 0


def build(con: duckdb.DuckDBPyConnection, present: set[str]) -> VocabularyInfo:
    """Create ``_vocab`` (concept_id -> code, name, ...) and ``_maps_to`` (source -> standard)."""
    if "concept" in present:
        ns = NAMESPACE_SQL.format(v="vocabulary_id")
        con.execute(
            "CREATE TEMP TABLE _vocab AS SELECT concept_id, code, concept_code, name, vocabulary, domain, "
            "standard FROM (SELECT TRY_CAST(concept_id AS BIGINT) AS concept_id, "
            f"{ns} || ':' || concept_code AS code, concept_code, "
            "concept_name AS name, vocabulary_id AS vocabulary, domain_id AS domain, "
            "standard_concept AS standard, ROW_NUMBER() OVER (PARTITION BY TRY_CAST(concept_id AS BIGINT) "
            "ORDER BY standard_concept = 'S' DESC NULLS LAST, invalid_reason IS NULL DESC, concept_code, "
            "vocabulary_id, concept_name) AS _k FROM omop_concept "
            "WHERE TRY_CAST(concept_id AS BIGINT) IS NOT NULL AND concept_code IS NOT NULL "
            "AND vocabulary_id IS NOT NULL) WHERE _k = 1"
        )
        row = con.execute(
            "SELECT (SELECT COUNT(*) FROM _vocab), (SELECT COUNT(*) FROM omop_concept "
            "WHERE TRY_CAST(concept_id AS BIGINT) IS NOT NULL AND concept_code IS NOT NULL "
            "AND vocabulary_id IS NOT NULL)"
        ).fetchone()
        concepts, rows = (int(row[0]), int(row[1])) if row else (0, 0)
    else:
        con.execute(
            "CREATE TEMP TABLE _vocab (concept_id BIGINT, code VARCHAR, concept_code VARCHAR, name VARCHAR, "
            "vocabulary VARCHAR, domain VARCHAR, standard VARCHAR)"
        )
        concepts = rows = 0
    if "concept_relationship" in present:
        con.execute(
            "CREATE TEMP TABLE _maps_all AS SELECT DISTINCT TRY_CAST(concept_id_1 AS BIGINT) AS source, "
            "TRY_CAST(concept_id_2 AS BIGINT) AS target FROM omop_concept_relationship "
            "WHERE relationship_id = 'Maps to' AND invalid_reason IS NULL "
            "AND TRY_CAST(concept_id_1 AS BIGINT) IS NOT NULL AND TRY_CAST(concept_id_2 AS BIGINT) IS NOT NULL"
        )
    else:
        con.execute("CREATE TEMP TABLE _maps_all (source BIGINT, target BIGINT)")
    con.execute(
        "CREATE TEMP TABLE _maps_to AS SELECT source, MIN(target) AS target FROM _maps_all GROUP BY source"
    )
    row = con.execute(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE n > 1) FROM (SELECT source, COUNT(*) AS n FROM _maps_all GROUP BY source)"
    ).fetchone()
    maps, several = (int(row[0]), int(row[1])) if row else (0, 0)
    return VocabularyInfo(concepts, rows - concepts, maps, several, "concept_ancestor" in present)


def code_sql(concept: str, alias: str) -> str:
    """The code of concept id expression ``concept`` (a ``_vocab`` row joined as ``alias``)."""
    return f"CASE WHEN {concept} = 0 THEN 'OMOP:0' ELSE COALESCE({alias}.code, 'OMOP:' || CAST({concept} AS VARCHAR)) END"


def write_registry_tables(con: duckdb.DuckDBPyConnection, info: VocabularyInfo) -> dict[str, int]:
    """Fill the registry's ``concept`` and ``concept_ancestor`` with the concepts events use.

    Expects ``_used(concept_id)``: every concept id an event was coded from.
    """
    con.execute(
        "INSERT INTO concept SELECT v.code, v.concept_id, v.name, v.vocabulary, v.domain, v.standard, NULL "
        "FROM _vocab v SEMI JOIN _used u ON u.concept_id = v.concept_id ORDER BY v.concept_id"
    )
    if info.ancestors:
        con.execute(
            "INSERT INTO concept_ancestor SELECT DISTINCT TRY_CAST(ancestor_concept_id AS BIGINT), "
            "TRY_CAST(descendant_concept_id AS BIGINT), TRY_CAST(min_levels_of_separation AS BIGINT) "
            "FROM omop_concept_ancestor a SEMI JOIN _used u "
            "ON u.concept_id = TRY_CAST(a.descendant_concept_id AS BIGINT) "
            "WHERE TRY_CAST(ancestor_concept_id AS BIGINT) IS NOT NULL"
        )
    row = con.execute(
        "SELECT (SELECT COUNT(*) FROM concept), (SELECT COUNT(*) FROM concept_ancestor)"
    ).fetchone()
    return {"concepts": int(row[0]) if row else 0, "ancestor rows": int(row[1]) if row else 0}
