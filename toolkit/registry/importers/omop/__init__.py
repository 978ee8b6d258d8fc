"""Import an OMOP CDM 5.3 or 5.4 folder (CSV or Parquet, as other tools write it) into a registry.

>>> import_omop("data/omop", "data/omop.duckdb", vocabulary="data/athena")  # doctest: +SKIP

What it reads, and how (docs/registry.md has the worked example on OHDSI's Synthea data):

* **Files**: one per table, ``<table>.csv``, ``.tsv`` or ``.parquet`` in any letter case.  CSV may
  have a header row or not (detected; header-less columns are named in CDM order), be comma- or
  tab-separated, and be quoted.  Files of tables that hold no clinical facts (eras, costs,
  providers, ...) and other files are listed in the summary with the reason they were not read.
* **Version**: ``cdm_source.cdm_version`` when present, else the columns (a column only one
  version has), else 5.4 (stated as assumed in the summary).  ``cdm_version=`` overrides.
* **Clinical tables**: person, observation_period, visit_occurrence, visit_detail,
  condition_occurrence, drug_exposure, procedure_occurrence, device_exposure, measurement,
  observation, specimen, death, note and note_nlp.
* **Vocabulary**: ``concept``, ``concept_relationship`` ('Maps to') and ``concept_ancestor`` from
  the folder or from ``vocabulary=`` (an Athena download).  See
  :mod:`toolkit.registry.importers.omop.vocabulary` for the codes written.
* **Row accounting**: every source table's rows read, written and dropped by reason are printed
  by the CLI and stored in the registry's ``import_summary`` table.

Errors name the file and the column and give counts, never a value from a data row.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import duckdb

from toolkit.errors import ImportMappingError
from toolkit.registry.importers.omop import tables, vocabulary
from toolkit.registry.importers.omop.cdm import VERSIONS, VOCABULARY_TABLES
from toolkit.registry.importers.omop.files import (
    TableFile,
    declared_version,
    find_files,
    inspect_file,
    register,
    version_from_columns,
)
from toolkit.registry.importers.summary import ImportSummary, SourceSummary, write_summary
from toolkit.registry.store import Attribute, RegistryWriter

__all__ = ["ATTRIBUTES", "import_omop"]

ATTRIBUTES = (
    Attribute("race", "string", description="OMOP race_concept_id (concept name when known)"),
    Attribute("ethnicity", "string", description="OMOP ethnicity_concept_id (concept name when known)"),
)


def import_omop(
    folder: Path | str,
    out: Path | str,
    *,
    vocabulary: Path | str | None = None,
    prefer_source: bool = False,
    cdm_version: str | None = None,
    format: str = "duckdb",
) -> Path:
    """Import the OMOP CDM tables in ``folder`` into a registry file at ``out`` (atomically).

    ``prefer_source`` codes facts by their source concept (ICD-10-CM rather than SNOMED) where
    one is given.  The summary is in the registry (:func:`toolkit.registry.import_summary`).
    """
    folder = Path(folder)
    if cdm_version is not None and cdm_version not in VERSIONS:
        raise ImportMappingError(f"cdm_version: expected one of {list(VERSIONS)}; got {cdm_version!r}")
    found, others = find_files(folder)
    vocab_from = "the CDM folder" if "concept" in found else None
    if vocabulary is not None:
        vfound = _vocabulary_files(Path(vocabulary))
        found.update(vfound)
        vocab_from = str(vocabulary)
    for table in ("person", "observation_period"):
        if table not in found:
            raise ImportMappingError(
                f"{folder}: OMOP table {table!r} not found (expected {table}.csv or .parquet)"
            )
    with RegistryWriter(out, attributes=ATTRIBUTES, metadata={"name": folder.name}, format=format) as w:
        con = w.con
        con.execute("SET TimeZone = 'UTC'")  # TIMESTAMPTZ columns in Parquet read as UTC wall times
        version, how = _version(con, found, cdm_version)
        files = {t: inspect_file(t, p, version) for t, p in found.items() if t != "cdm_source"}
        if how == "assumed":
            voted = version_from_columns(list(files.values()))
            if voted is not None:
                version, how = voted, "from the columns"
                files = {t: inspect_file(t, p, version) for t, p in found.items() if t != "cdm_source"}
        rows = {t: register(con, tf) for t, tf in files.items()}
        summary = _import(con, files, rows, prefer_source=prefer_source)
        facts = {
            "CDM version": f"{version} ({how})",
            "vocabulary": vocab_from or "none: codes stay OMOP:<concept_id>",
            **_opaque_fact(con, summary, vocab_from is not None),
            **{f"file {tf.path.name}": tf.how for tf in files.values()},
        }
        skipped = tuple(
            SourceSummary(name, None, "skipped", notes={"reason": why}) for name, why in others.items()
        )
        full = ImportSummary(f"OMOP CDM {version}", summary + skipped, facts)
        write_summary(con, full)
        con.execute("INSERT INTO metadata VALUES ('source', ?)", [f"OMOP CDM {version}"])
        con.execute("INSERT INTO metadata VALUES ('importer', 'toolkit.registry.importers.omop')")
        con.execute("INSERT INTO metadata VALUES ('vocabulary', ?)", [facts["vocabulary"]])
    return Path(out)


def _vocabulary_files(path: Path) -> dict[str, Path]:
    if path.is_file():
        return {"concept": path}
    vfound, _ = find_files(path)
    vocab = {t: p for t, p in vfound.items() if t in VOCABULARY_TABLES}
    if "concept" not in vocab:
        raise ImportMappingError(
            f"{path}: no CONCEPT.csv (or concept.parquet) found in the vocabulary folder"
        )
    return vocab


def _version(con: duckdb.DuckDBPyConnection, found: dict[str, Path], given: str | None) -> tuple[str, str]:
    if given is not None:
        return given, "given"
    source = found.get("cdm_source")
    tf: TableFile | None = inspect_file("cdm_source", source, None) if source else None
    declared = declared_version(con, tf)
    if declared is not None:
        return declared, "cdm_source.cdm_version"
    return "5.4", "assumed"


def _import(
    con: duckdb.DuckDBPyConnection, files: dict[str, TableFile], rows: dict[str, int], *, prefer_source: bool
) -> tuple[SourceSummary, ...]:
    present = {t for t, n in rows.items() if n > 0}
    info = vocabulary.build(con, present)
    con.execute("CREATE TEMP TABLE _used (concept_id BIGINT)")
    out = [tables.person(con), tables.observation_period(con)]
    for spec in tables.EVENT_TABLES:
        out.append(
            _table(spec.table, files, rows, partial(tables.events, con, spec, prefer_source=prefer_source))
        )
    out.append(_table("note", files, rows, partial(tables.notes, con)))
    out.append(_table("note_nlp", files, rows, partial(tables.note_nlp, con)))
    written = vocabulary.write_registry_tables(con, info)
    for t in VOCABULARY_TABLES:
        if t in files:
            notes: dict[str, int | str] = {}
            if t == "concept":
                notes = {
                    "distinct concept ids": info.concepts,
                    "duplicate rows (read once)": info.duplicate_rows,
                    "concepts used by events (registry concept table)": written["concepts"],
                }
            elif t == "concept_relationship":
                notes = {"source concepts with a 'Maps to' target": info.maps_to}
                if info.several_targets:
                    notes["source concepts with several 'Maps to' targets (lowest concept id taken)"] = (
                        info.several_targets
                    )
            else:
                notes = {"rows kept (descendant used by events)": written["ancestor rows"]}
            out.append(SourceSummary(t, "concept" if t != "concept_ancestor" else "concept_ancestor",
                                     "read" if rows[t] else "empty", rows[t], 0, {}, notes))  # fmt: skip
    return tuple(out)


def _table(
    table: str, files: dict[str, TableFile], rows: dict[str, int], run: Callable[[], SourceSummary]
) -> SourceSummary:
    target = "notes" if table == "note" else "events"
    if table not in files:
        return SourceSummary(table, target, "skipped", notes={"reason": "no file in the folder"})
    if rows[table] == 0:
        return SourceSummary(table, target, "empty")
    return run()


def _opaque_fact(
    con: duckdb.DuckDBPyConnection, sources: tuple[SourceSummary, ...], has_vocab: bool
) -> dict[str, str]:
    key = "concept not in the vocabulary, kept as opaque OMOP:<id>"
    opaque = sum(int(s.notes.get(key, 0)) for s in sources)
    row = con.execute("SELECT COUNT(*) FROM events").fetchone()
    total = int(row[0]) if row else 0
    if not opaque:
        return {}
    share = f"{opaque:,} of {total:,} events ({opaque / max(total, 1):.1%}) have opaque OMOP:<id> codes"
    return {
        "opaque codes": share + ("" if has_vocab else "; give the standard vocabulary (--vocabulary DIR)")
    }
