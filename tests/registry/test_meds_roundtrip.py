"""registry -> MEDS -> registry is the identity: every table (sorted) and the digest."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import jsonschema
import meds as meds_pkg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from toolkit.errors import ImportMappingError, RegistryError
from toolkit.registry import Registry, RegistryData, write_registry
from toolkit.registry import schema as S
from toolkit.registry.meds import export_meds, import_meds
from toolkit.registry.store import Attribute

MEDS_DATA_SCHEMA = {
    "subject_id": pa.int64(),
    "time": pa.timestamp("us"),
    "code": pa.string(),
    "numeric_value": pa.float32(),
}


def assert_same_registry(a: Path, b: Path) -> None:
    with Registry(a) as ra, Registry(b) as rb:
        for table in S.TABLES:
            if table == "import_summary":  # how each was imported, not what it holds
                continue
            assert ra.columns(table) == rb.columns(table), table
            x, y = ra.sql(f"SELECT * FROM {table}"), rb.sql(f"SELECT * FROM {table}")
            x = x.sort_values(list(x.columns)).reset_index(drop=True)
            y = y.sort_values(list(y.columns)).reset_index(drop=True)
            pd.testing.assert_frame_equal(x, y, obj=table)
        assert ra.digest() == rb.digest()


def edge_registry(path: Path) -> Path:
    """Every column type and the awkward cases: nulls, nested and duplicate periods, a person with
    no events, an orphan event, doubles float32 cannot hold, notes and images with null fields."""
    ts = pd.Timestamp
    person = pd.DataFrame(
        {
            "person_id": [1, 2, 3, 4],
            "birth_date": [pd.Timestamp("1950-02-28").date(), None, pd.Timestamp("2000-01-01").date(), None],
            "sex": ["F", "M", None, ""],
            "site_id": ["A//B", None, "C", "C"],
            "bmi": [24.25, None, 31.1, 0.1],
            "n_children": [2, 0, None, 12345678901234],
            "smoker": [True, False, None, True],
            "stage": ["II", None, "I", "III"],
            "diagnosed": [pd.Timestamp("2010-05-01").date(), None, None, pd.Timestamp("1999-12-31").date()],
            "note": ["free text, with 'quotes'", None, "", "ünïcode"],
        }
    )
    obs = pd.DataFrame(
        {
            "person_id": [1, 1, 2, 2, 2, 3],
            "start_time": [
                ts("2010-01-01"),
                ts("2015-01-01"),
                ts("2011-01-01"),
                ts("2012-01-01"),
                ts("2012-01-01"),
                ts("2013-03-04 05:06:07.123456"),
            ],
            "end_time": [
                ts("2014-12-31 23:59:59"),
                ts("2020-01-01"),
                ts("2020-01-01"),
                ts("2013-01-01"),
                ts("2013-01-01"),
                ts("2019-01-01"),
            ],
        }
    )
    events = pd.DataFrame(
        {
            "person_id": [1, 1, 1, 1, 2, 2, 2, 3, 99],
            "time": [
                ts("2012-01-01"),
                ts("2012-01-01"),
                ts("2016-06-01 12:30"),
                ts("2019-12-31"),
                ts("2012-06-01"),
                ts("2012-06-01"),
                ts("2013-01-01"),
                ts("2014-01-01"),
                ts("2014-01-01"),
            ],
            "code": [
                "LOINC:2160-0",
                "LOINC:2160-0",
                "LOINC:33762-6",
                "DEATH",
                "ICD10:I50.9",
                "LOINC:718-7",
                "DEATH",
                "LOCAL:X",
                "ICD10:I10",
            ],
            "numeric_value": [1.23, 1.23, 1e300, None, None, -0.0, None, 5e-324, 0.5],
            "text_value": [None, None, None, "ICD10:I21.9", None, None, None, "a", None],
            "unit": ["mg/dL", "mg/dL", "pg/mL", None, None, "g/dL", None, None, None],
        }
    )
    notes = pd.DataFrame(
        {
            "note_id": [10, 11, 12],
            "person_id": [1, 1, 3],
            "time": [ts("2012-01-01"), ts("2012-01-02"), ts("2014-01-01")],
            "note_type": ["discharge_summary", None, ""],
            "text": ["Patient seen.", None, "x"],
        }
    )
    images = pd.DataFrame(
        {
            "image_id": [7, 8],
            "person_id": [2, 3],
            "time": [ts("2012-06-01"), ts("2014-01-01")],
            "modality": ["US", None],
            "body_site": [None, "CHEST"],
            "uri": ["dicom/7.dcm", None],
        }
    )
    # declared out of name order, so person's column order must come back as written
    attributes = (
        Attribute("stage", "category", ("I", "II", "III"), None, "Tumour stage"),
        Attribute("bmi", "float", unit="kg/m2"),
        Attribute("n_children", "int"),
        Attribute("smoker", "bool"),
        Attribute("diagnosed", "date"),
        Attribute("note", "string"),
    )
    data = RegistryData(person, obs, events, notes, images, attributes, {"name": "edge", "seed": 3, "x": "y"})
    return write_registry(path, data)


def test_edge_cases_round_trip(tmp_path: Path) -> None:
    src = edge_registry(tmp_path / "edge.duckdb")
    meds = export_meds(src, tmp_path / "meds", shard_size=2)
    assert_same_registry(src, import_meds(meds, tmp_path / "back.duckdb"))


def test_synthetic_registry_round_trips(hf_registry: Path, tmp_path: Path) -> None:
    meds = export_meds(hf_registry, tmp_path / "meds", shard_size=700)
    assert_same_registry(hf_registry, import_meds(meds, tmp_path / "back.duckdb"))


def test_layout_follows_meds(tmp_path: Path) -> None:
    src = edge_registry(tmp_path / "edge.duckdb")
    meds = export_meds(src, tmp_path / "meds", shard_size=2)
    shards = sorted((meds / "data").glob("*.parquet"))
    assert len(shards) == 3  # subjects 1-4 and the orphan 99, two per shard
    seen: set[int] = set()
    for shard in shards:
        table = pq.read_table(shard)
        for name, dtype in MEDS_DATA_SCHEMA.items():
            assert table.schema.field(name).type == dtype, name
        frame = table.to_pandas()
        subjects = set(frame["subject_id"])
        assert not subjects & seen, "a subject spans shards"
        seen |= subjects
        # sorted by subject, static rows (null time) first, then time
        key = frame.assign(t=frame["time"].fillna(pd.Timestamp.min))[["subject_id", "t"]]
        assert key.equals(key.sort_values(["subject_id", "t"], kind="stable"))
    for shard in shards:  # the current meds package's own schemas accept every file
        meds_pkg.DataSchema.validate(pq.read_table(shard))  # raises when invalid
    meds_pkg.CodeMetadataSchema.validate(pq.read_table(meds / "metadata/codes.parquet"))
    meds_pkg.SubjectSplitSchema.validate(pq.read_table(meds / "metadata/subject_splits.parquet"))
    codes = pq.read_table(meds / "metadata/codes.parquet")
    assert codes.schema.field("parent_codes").type == pa.list_(pa.string())
    all_codes = duckdb.sql(f"SELECT DISTINCT code FROM '{meds}/data/*.parquet'").fetchall()
    assert {c for (c,) in all_codes} <= set(codes.column("code").to_pylist())
    assert {"MEDS_BIRTH", "MEDS_DEATH", "GENDER//F", "REGENT_OBS_START", "REGENT_SITE//A//B"} <= set(
        codes.column("code").to_pylist()
    )
    splits = pq.read_table(meds / "metadata/subject_splits.parquet").to_pandas()
    assert sorted(splits["subject_id"]) == [1, 2, 3, 4, 99]
    assert set(splits["split"]) <= {"train", "tuning", "held_out"}
    dataset = json.loads((meds / "metadata/dataset.json").read_text())
    jsonschema.validate(dataset, meds_pkg.DatasetMetadataSchema.schema())
    assert dataset["meds_version"] == meds_pkg.__version__  # the version whose schemas checked it above
    with Registry(src) as reg:
        assert dataset["dataset_version"] == reg.digest()


def test_float32_values_keep_their_double_only_when_needed(tmp_path: Path) -> None:
    meds = export_meds(edge_registry(tmp_path / "edge.duckdb"), tmp_path / "meds")
    rows = duckdb.sql(
        f"SELECT code, numeric_value, regent_numeric_value FROM '{meds}/data/*.parquet' "
        "WHERE code IN ('LOINC//2160-0', 'LOINC//33762-6', 'LOCAL//X')"  # MEDS spelling of LOINC:2160-0
    ).fetchall()
    by_code = {code: (f32, f64) for code, f32, f64 in rows}
    assert by_code["LOINC//2160-0"][1] is None  # 1.23 comes back from float32 via '1.23'
    assert by_code["LOINC//33762-6"] == (None, 1e300)  # beyond float32
    assert by_code["LOCAL//X"][1] == 5e-324  # a subnormal double float32 cannot hold


def test_foreign_meds_dataset_imports(tmp_path: Path) -> None:
    """A MEDS dataset from another ETL: no extension columns, no regent.json."""
    (tmp_path / "m/data/train").mkdir(parents=True)
    table = pa.table(
        {
            "subject_id": pa.array([5, 5, 5, 5, 6], pa.int64()),
            "time": pa.array(
                [
                    None,
                    pd.Timestamp("1970-03-01"),
                    pd.Timestamp("2020-01-01"),
                    pd.Timestamp("2021-01-01"),
                    pd.Timestamp("2020-02-02"),
                ],
                pa.timestamp("us"),
            ),
            "code": pa.array(["GENDER//F", "MEDS_BIRTH", "LAB//51221//%", "MEDS_DEATH", "LAB//51221//%"]),
            "numeric_value": pa.array([None, None, 1.23, None, 40.0], pa.float32()),
        }
    )
    pq.write_table(table, tmp_path / "m/data/train/0.parquet")
    (tmp_path / "m/metadata").mkdir()
    (tmp_path / "m/metadata/dataset.json").write_text(json.dumps({"dataset_name": "toy"}))
    out = import_meds(tmp_path / "m", tmp_path / "r.duckdb")
    with Registry(out) as reg:
        person = reg.sql("SELECT * FROM person ORDER BY person_id")
        assert person["person_id"].tolist() == [5, 6]
        assert person["sex"].tolist()[0] == "F"
        assert str(person["birth_date"][0])[:10] == "1970-03-01"
        events = reg.sql("SELECT code, numeric_value FROM events ORDER BY person_id, time")
        assert events["code"].tolist() == ["LAB:51221//%", "DEATH", "LAB:51221//%"]  # canonical form
        assert events["numeric_value"].tolist()[0] == 1.23  # widened via '1.23', not 1.2300000190734863
        obs = reg.sql("SELECT * FROM observation_period ORDER BY person_id")
        # MEDS_BIRTH never starts observation: the first timed measurement does
        assert obs["start_time"].tolist() == [pd.Timestamp("2020-01-01"), pd.Timestamp("2020-02-02")]
        assert reg.metadata()["name"] == "toy"


def test_meds_without_required_column_names_file_and_column(tmp_path: Path) -> None:
    (tmp_path / "m/data").mkdir(parents=True)
    pq.write_table(
        pa.table({"subject_id": [1], "time": [pd.Timestamp("2020-01-01")], "code": ["X"]}),
        tmp_path / "m/data/0.parquet",
    )
    with pytest.raises(ImportMappingError, match=r"0\.parquet: missing MEDS column 'numeric_value'"):
        import_meds(tmp_path / "m", tmp_path / "r.duckdb")
    assert not (tmp_path / "r.duckdb").exists()


def test_reserved_event_codes_refuse_to_export(tmp_path: Path) -> None:
    person = pd.DataFrame({"person_id": [1]})
    obs = pd.DataFrame(
        {
            "person_id": [1],
            "start_time": [pd.Timestamp("2020-01-01")],
            "end_time": [pd.Timestamp("2021-01-01")],
        }
    )
    events = pd.DataFrame({"person_id": [1], "time": [pd.Timestamp("2020-06-01")], "code": ["MEDS_BIRTH"]})
    src = write_registry(tmp_path / "r.duckdb", RegistryData(person, obs, events))
    with pytest.raises(RegistryError, match="reserves"):
        export_meds(src, tmp_path / "meds")
    assert not (tmp_path / "meds").exists()
