"""OMOP CDM 5.4 import on a tiny hand-written folder of CSV files (written by the test itself).

Foreign data (OHDSI's Synthea folder, CDM 5.3, header-less files) is in test_omop_foreign.py."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from toolkit.errors import ImportMappingError
from toolkit.registry import Registry
from toolkit.registry.importers.omop import import_omop

FILES = {
    "person.csv": """person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth,birth_datetime,race_concept_id,ethnicity_concept_id,care_site_id
1,8532,1950,3,,,8527,0,10
2,8507,1960,,,1960-07-04 00:00:00,0,,
3,0,1970,12,31,,,,11
""",
    "observation_period.csv": """observation_period_id,person_id,observation_period_start_date,observation_period_end_date,period_type_concept_id
1,1,2010-01-01,2020-12-31,32817
2,2,2012-05-01,2019-01-01,32817
3,3,2015-01-01,2016-01-01,32817
""",
    "visit_occurrence.csv": """visit_occurrence_id,person_id,visit_concept_id,visit_start_date,visit_start_datetime,visit_end_date,visit_type_concept_id
1,1,9201,2015-03-01,2015-03-01 08:30:00,2015-03-05,32817
2,2,9202,2013-01-01,,2013-01-01,32817
3,3,581379,2015-06-01,,2015-06-02,32817
""",
    "condition_occurrence.csv": """condition_occurrence_id,person_id,condition_concept_id,condition_start_date,condition_start_datetime,condition_source_value,condition_source_concept_id
1,1,319835,2015-03-01,,I50.9,45591453
2,2,0,2013-01-01,,I10,1569133
3,3,0,2015-06-01,,XYZ,0
""",
    "drug_exposure.csv": """drug_exposure_id,person_id,drug_concept_id,drug_exposure_start_date,drug_type_concept_id,quantity
1,1,1307046,2015-03-02,38000177,30
2,2,21601665,2013-01-02,38000177,
""",
    "procedure_occurrence.csv": """procedure_occurrence_id,person_id,procedure_concept_id,procedure_date,procedure_type_concept_id
1,1,4324124,2015-03-03,38000275
""",
    "measurement.csv": """measurement_id,person_id,measurement_concept_id,measurement_date,measurement_datetime,value_as_number,value_as_concept_id,unit_source_value,measurement_type_concept_id
1,1,3029187,2015-03-01,2015-03-01 09:00:00,1234.5,,pg/mL,44818702
2,2,3020460,2013-01-01,,,45878583,,44818702
""",
    "observation.csv": """observation_id,person_id,observation_concept_id,observation_date,value_as_number,value_as_string,value_as_concept_id,unit_source_value,observation_type_concept_id
1,3,4275495,2015-06-01,,former smoker,,,38000280
""",
    "death.csv": """person_id,death_date,death_datetime,death_type_concept_id,cause_concept_id,cause_source_value,cause_source_concept_id
1,2020-12-31,,32817,0,I21.9,45576876
3,2016-01-01,2016-01-01 04:00:00,32817,0,,0
""",
    "note.csv": """note_id,person_id,note_date,note_datetime,note_type_concept_id,note_class_concept_id,note_title,note_text
100,1,2015-03-05,,44814640,44814637,Discharge,Discharged home on day 4.
""",
    "concept.csv": """concept_id,concept_name,domain_id,vocabulary_id,concept_class_id,standard_concept,concept_code
319835,Congestive heart failure,Condition,SNOMED,Clinical Finding,S,42343007
45591453,Heart failure unspecified,Condition,ICD10CM,5-char billing code,,I50.9
1569133,Essential hypertension,Condition,ICD10CM,3-char billing code,,I10
1307046,metoprolol,Drug,RxNorm,Ingredient,S,6918
21601665,bisoprolol,Drug,ATC,ATC 5th,C,C07AB07
4324124,Echocardiography,Procedure,SNOMED,Procedure,S,40701008
3029187,NT-proBNP,Measurement,LOINC,Lab Test,S,33762-6
3020460,Troponin,Measurement,LOINC,Lab Test,S,6598-7
45878583,Positive,Meas Value,LOINC,Answer,S,LA6576-8
45576876,Acute myocardial infarction,Condition,ICD10CM,4-char billing code,,I21.9
8527,White,Race,Race,Race,S,5
""",
}


def write_folder(folder: Path, files: dict[str, str] = FILES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def omop(tmp_path: Path) -> Path:
    return import_omop(write_folder(tmp_path / "omop"), tmp_path / "omop.duckdb")


def events(reg: Registry) -> list[tuple[object, ...]]:
    frame = reg.sql("SELECT person_id, time, code, numeric_value, text_value, unit FROM events ORDER BY ALL")
    return [tuple(None if pd.isna(v) else v for v in row) for row in frame.itertuples(index=False)]


def test_person_and_periods(omop: Path) -> None:
    with Registry(omop) as reg:
        p = reg.sql("SELECT * FROM person ORDER BY person_id")
        assert p["sex"].tolist()[:2] == ["F", "M"] and pd.isna(p["sex"][2])
        assert [str(d)[:10] for d in p["birth_date"]] == ["1950-03-01", "1960-07-04", "1970-12-31"]
        assert p["site_id"].tolist()[0] == "10" and pd.isna(p["site_id"][1])
        assert p["race"].tolist()[0] == "White" and pd.isna(p["race"][1]) and pd.isna(p["ethnicity"][0])
        o = reg.sql("SELECT * FROM observation_period ORDER BY person_id")
        assert o["start_time"][0] == pd.Timestamp("2010-01-01")
        assert o["end_time"][0] == pd.Timestamp("2020-12-31 23:59:59.999999")  # end date is inclusive
        assert reg.metadata()["source"] == "OMOP CDM 5.4"  # no cdm_source: from the columns, else 5.4


def test_events_get_namespaced_codes(omop: Path) -> None:
    ts = pd.Timestamp
    with Registry(omop) as reg:
        assert events(reg) == [
            (1, ts("2015-03-01 00:00"), "SNOMED:42343007", None, None, None),  # standard concept
            (1, ts("2015-03-01 08:30"), "VISIT:IP", None, None, None),
            (1, ts("2015-03-01 09:00"), "LOINC:33762-6", 1234.5, None, "pg/mL"),
            (1, ts("2015-03-02"), "RXNORM:6918", None, None, None),
            (1, ts("2015-03-03"), "SNOMED:40701008", None, None, None),
            (1, ts("2020-12-31"), "DEATH", None, "ICD10CM:I21.9", None),  # cause from the source concept
            (2, ts("2013-01-01"), "ICD10CM:I10", None, None, None),  # standard 0: source concept
            (2, ts("2013-01-01"), "LOINC:6598-7", None, "LOINC:LA6576-8", None),
            (2, ts("2013-01-01"), "VISIT:OP", None, None, None),
            (2, ts("2013-01-02"), "ATC:C07AB07", None, None, None),
            (3, ts("2015-06-01"), "OMOP:0", None, None, None),  # no concept at all
            (3, ts("2015-06-01"), "OMOP:4275495", None, "former smoker", None),  # not in the concept table
            (3, ts("2015-06-01"), "OMOP:581379", None, None, None),
            (3, ts("2016-01-01 04:00"), "DEATH", None, None, None),
        ]
        notes = reg.sql("SELECT * FROM notes")
        assert notes["note_id"].tolist() == [100] and notes["text"][0].startswith("Discharged")


def test_prefer_source_keeps_icd10(tmp_path: Path) -> None:
    out = import_omop(write_folder(tmp_path / "omop"), tmp_path / "r.duckdb", prefer_source=True)
    with Registry(out) as reg:
        codes = reg.sql("SELECT code FROM events WHERE person_id = 1 AND time = '2015-03-01'")["code"]
        assert codes.tolist() == ["ICD10CM:I50.9"]


def test_without_vocabulary_codes_are_concept_ids(tmp_path: Path) -> None:
    files = {k: v for k, v in FILES.items() if k != "concept.csv"}
    out = import_omop(write_folder(tmp_path / "omop", files), tmp_path / "r.duckdb")
    with Registry(out) as reg:
        codes = set(reg.sql("SELECT code FROM events")["code"])
        assert {"OMOP:319835", "OMOP:3029187", "VISIT:IP", "DEATH"} <= codes
        assert reg.metadata()["vocabulary"].startswith("none")


def test_vocabulary_folder_with_tab_separated_concept(tmp_path: Path) -> None:
    files = {k: v for k, v in FILES.items() if k != "concept.csv"}
    vocab = tmp_path / "athena"
    vocab.mkdir()
    (vocab / "CONCEPT.csv").write_text(FILES["concept.csv"].replace(",", "\t"))
    out = import_omop(write_folder(tmp_path / "omop", files), tmp_path / "r.duckdb", vocabulary=vocab)
    with Registry(out) as reg:
        assert "LOINC:33762-6" in set(reg.sql("SELECT code FROM events")["code"])


def test_parquet_tables_import_like_csv(tmp_path: Path, omop: Path) -> None:
    folder = write_folder(tmp_path / "csv")
    pq_folder = tmp_path / "pq"
    pq_folder.mkdir()
    for f in folder.iterdir():
        frame = pd.read_csv(f)
        for c in frame.columns:
            if c.endswith("_date"):
                frame[c] = pd.to_datetime(frame[c]).dt.date
            elif c.endswith("_datetime"):
                frame[c] = pd.to_datetime(frame[c])
        frame.to_parquet(pq_folder / f"{f.stem}.parquet", index=False)
    out = import_omop(pq_folder, tmp_path / "pq.duckdb")
    with Registry(out) as a, Registry(omop) as b:
        assert events(a) == events(b)


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [
        (
            "measurement.csv",
            lambda t: t.replace("value_as_number", "value_as_numbr"),
            r"measurement\.csv: unknown column\(s\) \['value_as_numbr'\]",
        ),
        (
            "person.csv",
            lambda t: t.replace("person_id,", "person_ident,", 1),
            r"person\.csv: unknown column\(s\) \['person_ident'\]",
        ),
        (
            "condition_occurrence.csv",
            lambda t: "\n".join(
                ",".join(f for i, f in enumerate(line.split(",")) if i != 3) for line in t.splitlines()
            ),
            r"condition_occurrence\.csv: missing required column 'condition_start_date'",
        ),
    ],
)
def test_mapping_errors_name_file_and_column(tmp_path: Path, file: str, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    folder = write_folder(tmp_path / "omop")
    (folder / file).write_text(edit(FILES[file]))
    with pytest.raises(ImportMappingError, match=message):
        import_omop(folder, tmp_path / "r.duckdb")
    assert not (tmp_path / "r.duckdb").exists()
    assert not list(tmp_path.glob(".r.duckdb*")), "temporary registry left behind"


@pytest.mark.parametrize(
    ("file", "edit", "reason"),
    [
        ("visit_occurrence.csv", lambda t: t.replace("2013-01-01,,", ",,"), "no valid date"),
        ("drug_exposure.csv", lambda t: t.replace("2013-01-02", "02/01/2013"), "no valid date"),
        ("death.csv", lambda t: t.replace("\n3,", "\n42,"), "person_id not in person"),
        ("procedure_occurrence.csv", lambda t: t.replace("2015-03-03", "1940-03-03"), "dated before birth"),
        ("procedure_occurrence.csv", lambda t: t.replace("2015-03-03", "2999-03-03"), "dated in the future"),
    ],
)
def test_bad_rows_are_dropped_and_counted(tmp_path: Path, file: str, edit, reason: str) -> None:  # type: ignore[no-untyped-def]
    """A row that cannot be placed costs that row, counted under its reason; nothing is silent."""
    from toolkit.registry.check import import_summary

    folder = write_folder(tmp_path / "omop")
    (folder / file).write_text(edit(FILES[file]))
    out = import_omop(folder, tmp_path / "r.duckdb")
    summary = import_summary(out)
    assert summary is not None
    table = summary.source(file.removesuffix(".csv"))
    assert table.drops == {reason: 1}
    assert table.rows_written == table.rows_read - 1
    with Registry(out) as reg:  # the other tables are untouched
        assert reg.count("person") == 3


def test_missing_person_table(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "omop", {k: v for k, v in FILES.items() if k != "person.csv"})
    with pytest.raises(ImportMappingError, match="'person' not found"):
        import_omop(folder, tmp_path / "r.duckdb")


def test_cli_omop_to_meds_and_back(tmp_path: Path) -> None:
    """`regent registry import-omop`, `export-meds` and `import-meds` chain to the same registry."""
    from typer.testing import CliRunner

    from toolkit.cli.main import app

    runner = CliRunner()
    reg, meds, back = tmp_path / "r.duckdb", tmp_path / "meds", tmp_path / "back.duckdb"
    for args in (
        ["registry", "import-omop", str(write_folder(tmp_path / "omop")), "--out", str(reg)],
        ["registry", "export-meds", str(reg), "--out", str(meds), "--shard-size", "2"],
        ["registry", "import-meds", str(meds), "--out", str(back)],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    with Registry(reg) as a, Registry(back) as b:
        assert a.digest() == b.digest()
