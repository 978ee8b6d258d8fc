"""OMOP CDM as other tools write it: OHDSI's Synthea folder (header-less CDM 5.4), a CDM 5.3 folder,
header-less files, vocabularies (duplicates, 'Maps to', descendants, ATLAS concept sets), and errors
that never quote a value from a data row."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.registry.test_omop_import import FILES, write_folder
from toolkit.cohort.run import run_cohort
from toolkit.cohort.spec import cohort_from_dict
from toolkit.errors import CohortSpecError, ImportMappingError
from toolkit.registry import Registry
from toolkit.registry.check import check_registry, import_summary
from toolkit.registry.importers.omop import import_omop
from toolkit.registry.importers.omop.cdm import CDM

SYNTHEA = Path(__file__).resolve().parents[3] / "shared/data/omop_synthea27nj/Synthea27Nj_5.4.zip"
EVENT_SOURCES = (
    "visit_occurrence", "visit_detail", "condition_occurrence", "drug_exposure", "procedure_occurrence",
    "device_exposure", "measurement", "observation", "specimen", "death",
)  # fmt: skip


def _records(path: Path) -> int:
    """Rows of a header-less CSV counted by Python's csv module (independent of the importer)."""
    with path.open(newline="") as f:
        return sum(1 for _ in csv.reader(f))


@pytest.fixture(scope="module")
def synthea(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if not SYNTHEA.is_file():
        pytest.skip("../shared/data (OHDSI Synthea OMOP folder) is not present")
    folder = tmp_path_factory.mktemp("synthea")
    with zipfile.ZipFile(SYNTHEA) as z:
        z.extractall(folder)
    return folder, import_omop(folder, folder.parent / "synthea.duckdb")


def test_synthea_imports_unchanged_and_every_row_is_accounted_for(synthea: tuple[Path, Path]) -> None:
    folder, registry = synthea
    summary = import_summary(registry)
    assert summary is not None and summary.format == "OMOP CDM 5.4"
    assert summary.facts["CDM version"] == "5.4 (cdm_source.cdm_version)"
    assert "no header" in summary.facts["file person.csv"]
    with Registry(registry) as reg:
        n_events = reg.count("events")
        assert reg.count("person") == _records(folder / "person.csv")
    written = 0
    for table in EVENT_SOURCES:
        s = summary.source(table)
        assert s.rows_read == _records(folder / f"{table}.csv"), table
        assert s.rows_written == s.rows_read - sum(s.drops.values()), table
        written += s.rows_written
    assert written == n_events  # the events table holds exactly what the summary says it wrote
    skipped = {s.source: s.notes["reason"] for s in summary.sources if s.status == "skipped"}
    assert "drug_era.csv" in skipped and "cost.csv" in skipped  # named, with the reason


def test_synthea_codes_are_vocabulary_codes_and_a_cohort_runs(synthea: tuple[Path, Path]) -> None:
    _, registry = synthea
    report = check_registry(registry)
    assert not [f for f in report.findings if f.check == "events with unknown code namespace" and f.count]
    assert {"SNOMED", "LOINC", "RXNORM", "VISIT", "VISIT_DETAIL", "DEATH"} <= set(report.namespaces)
    with Registry(registry) as reg:
        assert reg.count("concept") > 0  # the concepts events use, addressable by concept id
        spec = cohort_from_dict(
            {"name": "any_visit", "entry": {"codes": ["VISIT:*"], "occurrence": "first"}},
            source="synthea.yaml",
        )
        cohort = run_cohort(spec, reg)
        assert (
            cohort.n
            == reg.sql("SELECT COUNT(DISTINCT person_id) AS n FROM events WHERE code LIKE 'VISIT:%'")["n"][0]
        )


# --- CDM 5.3 and header-less files ----------------------------------------------------------
def _as_53(files: dict[str, str]) -> dict[str, str]:
    """The fixture as a CDM 5.3 export writes it: 5.3 visit columns and a cdm_source saying so."""
    out = dict(files)
    out["visit_occurrence.csv"] = (
        "visit_occurrence_id,person_id,visit_concept_id,visit_start_date,visit_start_datetime,visit_end_date,"
        "visit_type_concept_id,admitting_source_concept_id,admitting_source_value,discharge_to_concept_id\n"
        "1,1,9201,2015-03-01,2015-03-01 08:30:00,2015-03-05,32817,8870,EMERGENCY ROOM,8536\n"
        "2,2,9202,2013-01-01,,2013-01-01,32817,0,,0\n"
        "3,3,581379,2015-06-01,,2015-06-02,32817,0,,0\n"
    )
    out["cdm_source.csv"] = (
        "cdm_source_name,cdm_source_abbreviation,cdm_holder,source_description,source_documentation_reference,"
        "cdm_etl_reference,source_release_date,cdm_release_date,cdm_version,vocabulary_version\n"
        'demo,demo,"Someone, Inc.",a 5.3 export,,,2023-01-01,2023-01-01,v5.3.1,v5.0\n'
    )
    return out


def _events(path: Path) -> list[tuple[object, ...]]:
    with Registry(path) as reg:
        frame = reg.sql("SELECT * FROM events ORDER BY ALL")
    return [tuple(None if pd.isna(v) else v for v in row) for row in frame.itertuples(index=False)]


def test_cdm_53_folder_imports(tmp_path: Path) -> None:
    out = import_omop(write_folder(tmp_path / "omop", _as_53(FILES)), tmp_path / "r.duckdb")
    summary = import_summary(out)
    assert summary is not None and summary.format == "OMOP CDM 5.3"
    assert summary.facts["CDM version"] == "5.3 (cdm_source.cdm_version)"
    five_four = import_omop(write_folder(tmp_path / "omop54"), tmp_path / "r54.duckdb")
    assert _events(out) == _events(five_four)  # the visit columns that differ carry no event


def _headerless(files: dict[str, str], version: str) -> dict[str, str]:
    """Every table written without a header row, its columns in CDM order (empty where absent)."""
    out = {}
    for name, text in files.items():
        table = name.removesuffix(".csv")
        frame = pd.read_csv(pd.io.common.StringIO(text), dtype=str, keep_default_na=False)
        frame = frame.reindex(columns=list(CDM[version][table]), fill_value="")
        out[name] = frame.to_csv(header=False, index=False)
    return out


@pytest.mark.parametrize("version", ["5.4", "5.3"])
def test_headerless_folder_imports_like_the_headed_one(tmp_path: Path, version: str) -> None:
    files = _as_53(FILES) if version == "5.3" else FILES
    headed = import_omop(write_folder(tmp_path / "h", files), tmp_path / "h.duckdb")
    bare = import_omop(write_folder(tmp_path / "b", _headerless(files, version)), tmp_path / "b.duckdb")
    assert _events(bare) == _events(headed)
    summary = import_summary(bare)
    assert summary is not None
    assert summary.facts["file person.csv"] == f"CSV, comma-separated, no header: CDM {version} column order"


def test_empty_table_file_is_reported_not_refused(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "omop")
    (folder / "specimen.csv").write_text("")
    (folder / "note_nlp.csv").write_text("")
    summary = import_summary(import_omop(folder, tmp_path / "r.duckdb"))
    assert summary is not None
    assert summary.source("specimen").status == "empty" and summary.source("note_nlp").status == "empty"


def test_tab_separated_quoted_and_parquet_tables(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "omop")
    (folder / "person.csv").unlink()
    (folder / "PERSON.tsv").write_text(FILES["person.csv"].replace(",", "\t"))
    (folder / "observation.csv").write_text(
        FILES["observation.csv"].replace("former smoker", '"former, smoker"')
    )
    out = import_omop(folder, tmp_path / "r.duckdb")
    with Registry(out) as reg:
        assert reg.count("person") == 3
        assert "former, smoker" in set(reg.sql("SELECT text_value FROM events")["text_value"].dropna())


# --- vocabularies -----------------------------------------------------------------------------
def test_duplicate_concept_rows_never_duplicate_events(tmp_path: Path) -> None:
    files = dict(FILES)
    lines = files["concept.csv"].splitlines()
    files["concept.csv"] = "\n".join([*lines, lines[1], lines[7]]) + "\n"  # two concepts listed twice
    out = import_omop(write_folder(tmp_path / "dup", files), tmp_path / "dup.duckdb")
    clean = import_omop(write_folder(tmp_path / "ok"), tmp_path / "ok.duckdb")
    assert _events(out) == _events(clean)
    summary = import_summary(out)
    assert summary is not None and summary.source("concept").notes["duplicate rows (read once)"] == 2


def test_without_vocabulary_the_opaque_share_is_stated(tmp_path: Path) -> None:
    files = {k: v for k, v in FILES.items() if k != "concept.csv"}
    summary = import_summary(import_omop(write_folder(tmp_path / "omop", files), tmp_path / "r.duckdb"))
    assert summary is not None
    assert "opaque OMOP:<id> codes" in summary.facts["opaque codes"]
    assert "--vocabulary" in summary.facts["opaque codes"]


def test_maps_to_gives_the_standard_concept_of_a_source_concept(tmp_path: Path) -> None:
    files = dict(FILES)
    files["concept_relationship.csv"] = (
        "concept_id_1,concept_id_2,relationship_id,valid_start_date,valid_end_date,invalid_reason\n"
        "1569133,320128,Maps to,1970-01-01,2099-12-31,\n"
    )
    files["concept.csv"] += "320128,Essential hypertension,Condition,SNOMED,Clinical Finding,S,59621000\n"
    out = import_omop(write_folder(tmp_path / "omop", files), tmp_path / "r.duckdb")
    with Registry(out) as reg:
        codes = set(reg.sql("SELECT code FROM events WHERE person_id = 2")["code"])
    assert "SNOMED:59621000" in codes and "ICD10CM:I10" not in codes


VOCAB = {
    "concept.csv": """concept_id,concept_name,domain_id,vocabulary_id,concept_class_id,standard_concept,concept_code
316139,Heart failure,Condition,SNOMED,Clinical Finding,S,84114007
319835,Congestive heart failure,Condition,SNOMED,Clinical Finding,S,42343007
443580,Systolic heart failure,Condition,SNOMED,Clinical Finding,S,417996009
4229440,Chronic congestive heart failure,Condition,SNOMED,Clinical Finding,S,88805009
320128,Essential hypertension,Condition,SNOMED,Clinical Finding,S,59621000
""",
    "concept_ancestor.csv": """ancestor_concept_id,descendant_concept_id,min_levels_of_separation,max_levels_of_separation
316139,316139,0,0
316139,319835,1,1
316139,443580,1,1
316139,4229440,2,2
319835,319835,0,0
319835,4229440,1,1
443580,443580,0,0
4229440,4229440,0,0
320128,320128,0,0
""",
}


def _vocab_folder(folder: Path) -> Path:
    files = {k: v for k, v in FILES.items() if k not in ("concept.csv",)}
    files["person.csv"] = "person_id,gender_concept_id,year_of_birth\n" + "".join(
        f"{i},8532,1950\n" for i in range(1, 7)
    )
    files["observation_period.csv"] = (
        "observation_period_id,person_id,observation_period_start_date,observation_period_end_date\n"
        + "".join(f"{i},{i},2000-01-01,2020-12-31\n" for i in range(1, 7))
    )
    files["condition_occurrence.csv"] = (
        "condition_occurrence_id,person_id,condition_concept_id,condition_start_date\n"
        "1,1,316139,2015-01-01\n2,2,319835,2015-01-01\n3,3,4229440,2015-01-01\n"
        "4,4,320128,2015-01-01\n5,5,443580,2015-01-01\n6,6,999999,2015-01-01\n"
    )
    for name in ("death.csv", "note.csv", "observation.csv", "measurement.csv", "drug_exposure.csv"):
        files.pop(name, None)
    files["visit_occurrence.csv"] = files["visit_occurrence.csv"].splitlines()[0] + "\n"
    files["procedure_occurrence.csv"] = files["procedure_occurrence.csv"].splitlines()[0] + "\n"
    return write_folder(folder, {**files, **VOCAB})


def _persons(registry: Path, concept_set: list[object]) -> set[int]:
    spec = cohort_from_dict(
        {"name": "hf", "concept_sets": {"hf": concept_set}, "entry": {"concept": "hf"}}, source="t.yaml"
    )
    with Registry(registry) as reg:
        return set(run_cohort(spec, reg).cohort["person_id"].astype(int))


def test_descendant_concept_set_equals_hand_written_sql(tmp_path: Path) -> None:
    folder = _vocab_folder(tmp_path / "omop")
    registry = import_omop(folder, tmp_path / "r.duckdb")
    expected = {
        int(r[0])
        for r in duckdb.sql(
            f"SELECT DISTINCT person_id FROM read_csv('{folder}/condition_occurrence.csv') WHERE "
            f"condition_concept_id IN (SELECT descendant_concept_id FROM read_csv('{folder}/concept_ancestor.csv') "
            "WHERE ancestor_concept_id = 316139)"
        ).fetchall()
    }
    assert expected == {1, 2, 3, 5}
    assert _persons(registry, [{"concept": 316139, "descendants": True}]) == expected
    assert _persons(registry, [{"concept": 316139}]) == {1}  # the concept alone
    # excluding a branch removes it and what lies under it
    assert _persons(
        registry,
        [{"concept": 316139, "descendants": True}, {"concept": 319835, "descendants": True, "exclude": True}],
    ) == {1, 5}
    assert _persons(registry, [{"concept": 999999}]) == {6}  # not in the vocabulary: its opaque OMOP code


def test_atlas_concept_set_json_is_a_concept_set(tmp_path: Path) -> None:
    registry = import_omop(_vocab_folder(tmp_path / "omop"), tmp_path / "r.duckdb")
    atlas = {
        "items": [
            {"concept": {"CONCEPT_ID": 316139, "CONCEPT_NAME": "Heart failure"}, "isExcluded": False,
             "includeDescendants": True, "includeMapped": False},
            {"concept": {"CONCEPT_ID": 443580}, "isExcluded": True, "includeDescendants": False,
             "includeMapped": False},
        ]
    }  # fmt: skip
    (tmp_path / "hf.json").write_text(json.dumps(atlas))
    (tmp_path / "cohort.yaml").write_text(
        "name: hf\nconcept_sets:\n  hf: {file: hf.json}\nentry: {concept: hf}\n"
    )
    from toolkit.cohort.spec import load_cohort

    with Registry(registry) as reg:
        persons = set(run_cohort(load_cohort(tmp_path / "cohort.yaml"), reg).cohort["person_id"].astype(int))
    assert persons == {1, 2, 3}
    atlas["items"][0]["includeMapped"] = True  # type: ignore[index]
    (tmp_path / "hf.json").write_text(json.dumps(atlas))
    with pytest.raises(CohortSpecError, match=r"items\[0\]\.includeMapped"):
        load_cohort(tmp_path / "cohort.yaml")


# --- errors never quote a data row -------------------------------------------------------------
SENTINEL = "Zq7SENTINEL"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("person.csv", ",".join(f"{SENTINEL}{i}" for i in range(7)) + "\n"),  # no header, 7 of 18 fields
        ("person.csv", FILES["person.csv"] + ",".join(f"{SENTINEL}{i}" for i in range(30)) + "\n"),  # ragged
        ("person.csv", FILES["person.csv"] + f'4,8532,"{SENTINEL} unclosed\n'),
        ("person.csv", FILES["person.csv"] + f"1,8532,1950,{SENTINEL},{SENTINEL},{SENTINEL},,,\n"),  # dup id
        ("measurement.parquet", f"PAR1{SENTINEL}" * 10),  # not Parquet
    ],
)
def test_a_sentinel_in_every_column_of_a_malformed_file_appears_in_no_error(
    tmp_path: Path, name: str, text: str
) -> None:
    folder = write_folder(tmp_path / "omop")
    if name.endswith(".parquet"):
        (folder / "measurement.csv").unlink()
    (folder / name).write_text(text)
    with pytest.raises(ImportMappingError) as info:
        import_omop(folder, tmp_path / "r.duckdb")
    assert SENTINEL not in str(info.value)
    assert name.split(".")[0] in str(info.value)  # names the file (or the table)
    assert not (tmp_path / "r.duckdb").exists()
