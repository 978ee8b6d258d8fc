"""MEDS datasets Regent did not write: meds-testing-helpers' sample dataset (sharded by split, static
numeric and categorical codes, MEDS_BIRTH, NS//code codes, a codes.parquet with parents)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from toolkit.cohort.run import run_cohort
from toolkit.cohort.spec import cohort_from_dict
from toolkit.registry import Registry
from toolkit.registry.check import import_summary
from toolkit.registry.meds import import_meds


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """The helper package's static sample dataset, written by the helper package itself."""
    import meds_testing_helpers
    from meds_testing_helpers.dataset import MEDSDataset

    sample = (
        Path(meds_testing_helpers.__file__).parent / "static_sample_data/simple_static_sharded_by_split.yaml"
    )
    root = tmp_path_factory.mktemp("foreign") / "meds"
    MEDSDataset.from_yaml(sample).write(root)
    rows = pd.concat([pq.read_table(p).to_pandas() for p in sorted((root / "data").rglob("*.parquet"))])
    return root, rows


def test_static_codes_become_typed_attributes(foreign: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    root, rows = foreign
    out = import_meds(root, tmp_path / "r.duckdb")
    with Registry(out) as reg:
        attrs = {a.name: a for a in reg.attributes()}
        assert attrs["height"].dtype == "float"
        assert attrs["eye_color"].dtype == "category"
        assert set(attrs["eye_color"].levels or ()) == {"BLUE", "BROWN", "HAZEL"}
        person = reg.sql("SELECT * FROM person ORDER BY person_id").set_index("person_id")
    static = rows[rows["time"].isna()]
    assert sorted(person.index) == sorted(rows["subject_id"].unique())
    for sid, group in static.groupby("subject_id"):
        height = group.loc[group["code"] == "HEIGHT", "numeric_value"].iloc[0]
        assert person.loc[sid, "height"] == pytest.approx(float(height), rel=1e-6)
        eye = group.loc[group["code"].str.startswith("EYE_COLOR//"), "code"].iloc[0]
        assert person.loc[sid, "eye_color"] == eye.split("//", 1)[1]
    births = rows[rows["code"] == "MEDS_BIRTH"].set_index("subject_id")["time"]
    for sid, born in births.items():
        assert pd.Timestamp(person.loc[sid, "birth_date"]) == born.normalize()


def test_observation_starts_at_the_first_measurement_not_at_birth(
    foreign: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    root, rows = foreign
    out = import_meds(root, tmp_path / "r.duckdb")
    timed = rows[rows["time"].notna() & (rows["code"] != "MEDS_BIRTH")]
    expected = timed.groupby("subject_id")["time"].agg(["min", "max"])
    with Registry(out) as reg:
        obs = reg.sql("SELECT * FROM observation_period").set_index("person_id").sort_index()
        assert reg.sql("SELECT COUNT(*) AS n FROM events WHERE code = 'MEDS_BIRTH'")["n"][0] == 0
    assert (obs["start_time"] == expected["min"]).all() and (obs["end_time"] == expected["max"]).all()
    births = rows[rows["code"] == "MEDS_BIRTH"].set_index("subject_id")["time"]
    assert (obs["start_time"] > births.reindex(obs.index)).all()


def test_every_row_is_accounted_for(foreign: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    root, rows = foreign
    summary = import_summary(import_meds(root, tmp_path / "r.duckdb"))
    assert summary is not None and summary.format == "MEDS"
    read = sum(s.rows_read for s in summary.sources if s.target != "concept")
    assert read == len(rows)
    timed = summary.source("timed measurements")
    with Registry(tmp_path / "r.duckdb") as reg:
        assert reg.count("events") == timed.rows_written
        concept = reg.sql("SELECT code, name, parent_codes FROM concept").set_index("code")
    assert concept.loc["HR", "name"] == "Heart Rate"  # codes.parquet description kept
    assert concept.loc["HR", "parent_codes"] == '["LOINC/8867-4"]'  # and its parents
    assert concept.loc["EYE_COLOR:BLUE", "name"].startswith("Blue")  # in canonical form


def test_a_cohort_written_with_the_codes_as_they_appear_runs(
    foreign: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    root, rows = foreign
    out = import_meds(root, tmp_path / "r.duckdb")
    cardiac = set(rows.loc[rows["code"] == "ADMISSION//CARDIAC", "subject_id"])
    for spelling in ("ADMISSION//CARDIAC", "ADMISSION:CARDIAC"):  # MEDS's and Regent's spelling
        spec = cohort_from_dict(
            {"name": "cardiac", "entry": {"codes": [spelling], "occurrence": "first"}}, source="c.yaml"
        )
        with Registry(out) as reg:
            assert set(run_cohort(spec, reg).cohort["person_id"]) == cardiac


def _write(root: Path, table: pa.Table) -> Path:
    (root / "data").mkdir(parents=True)
    pq.write_table(table, root / "data" / "0.parquet")
    return root


def _table(
    subjects: list[int], times: list[str | None], codes: list[str], values: list[float | None]
) -> pa.Table:
    return pa.table(
        {
            "subject_id": pa.array(subjects, pa.int64()),
            "time": pa.array([pd.Timestamp(t) if t else None for t in times], pa.timestamp("us")),
            "code": pa.array(codes, pa.string()),
            "numeric_value": pa.array(values, pa.float32()),
        }
    )


def test_declared_period_codes_pair_in_order(tmp_path: Path) -> None:
    root = _write(
        tmp_path / "m",
        _table(
            [1, 1, 1, 1, 1, 1],
            ["2010-01-01", "2010-02-01", "2010-03-01", "2011-01-01", "2011-02-01", "2011-06-01"],
            ["ENROL", "HR", "DISENROL", "ENROL", "HR", "DISENROL"],
            [None, 80.0, None, None, 90.0, None],
        ),
    )
    out = import_meds(root, tmp_path / "r.duckdb", period_codes=("ENROL", "DISENROL"))
    with Registry(out) as reg:
        obs = reg.sql("SELECT start_time, end_time FROM observation_period ORDER BY start_time")
        assert [str(t)[:10] for t in obs["start_time"]] == ["2010-01-01", "2011-01-01"]
        assert [str(t)[:10] for t in obs["end_time"]] == ["2010-03-01", "2011-06-01"]
        assert reg.count("events") == 2  # the period codes are not events


def test_a_static_code_with_several_values_per_subject_becomes_a_counted_flag(tmp_path: Path) -> None:
    """Several values of one static code (meds-testing-helpers' generator writes such data): the
    attribute is a flag, and the summary says how many subjects lost their values (never which)."""
    root = _write(
        tmp_path / "m",
        _table(
            [1, 1, 2, 1],
            [None, None, None, "2020-01-01"],
            ["HEIGHT", "HEIGHT", "HEIGHT", "HR"],
            [170.0, 180.0, 160.0, 70.0],
        ),
    )
    out = import_meds(root, tmp_path / "r.duckdb")
    with Registry(out) as reg:
        assert reg.sql("SELECT height FROM person ORDER BY person_id")["height"].tolist() == [True, True]
    summary = import_summary(out)
    assert summary is not None
    note = summary.facts["static code HEIGHT"]
    assert note.startswith("1 subjects have several values") and "170" not in note


def test_static_flags_and_builtin_clashes(tmp_path: Path) -> None:
    root = _write(
        tmp_path / "m",
        _table(
            [1, 2, 1, 2],
            [None, None, "2020-01-01", "2020-01-02"],
            ["DIABETES", "SEX//X", "HR", "HR"],
            [None, None, 1.0, 2.0],
        ),
    )
    out = import_meds(root, tmp_path / "r.duckdb")
    with Registry(out) as reg:
        person = reg.sql("SELECT * FROM person ORDER BY person_id")
        assert person["diabetes"].tolist() == [True, False]  # a flag: present or not
        assert person["meds_sex"].tolist()[1] == "X"  # 'sex' is a built-in column: prefixed


def test_several_static_codes_of_one_name_become_flags(tmp_path: Path) -> None:
    """meds-testing-helpers' generator gives subjects several ``static//k`` codes: one flag each."""
    root = _write(
        tmp_path / "m",
        _table(
            [1, 1, 2, 1, 2],
            [None, None, None, "2020-01-01", "2020-01-02"],
            ["static//0", "static//2", "static//2", "HR", "MEDS_DEATH//I21"],
            [None, None, None, 1.0, None],
        ),
    )
    out = import_meds(root, tmp_path / "r.duckdb")
    with Registry(out) as reg:
        person = reg.sql("SELECT person_id, static_0, static_2 FROM person ORDER BY person_id")
        assert person["static_0"].tolist() == [True, False] and person["static_2"].tolist() == [True, True]
        death = reg.sql("SELECT code, text_value FROM events WHERE person_id = 2")
        assert death.values.tolist() == [["DEATH", "I21"]]  # the cause kept where a registry keeps it
