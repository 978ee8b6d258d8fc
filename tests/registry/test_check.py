from __future__ import annotations

from pathlib import Path

import pandas as pd

from toolkit.registry import RegistryData, check_registry, write_registry


def test_quality_report_counts_planted_problems(tmp_path: Path) -> None:
    person = pd.DataFrame(
        {
            "person_id": [1, 2, 3, 3],
            "birth_date": pd.to_datetime(["1950-01-01"] * 4).date,
            "sex": ["F", None, "M", "M"],
            "site_id": ["A"] * 4,
        }
    )
    obs = pd.DataFrame(
        {
            "person_id": [1, 2],
            "start_time": pd.to_datetime(["2010-01-01", "2012-01-01"]),
            "end_time": pd.to_datetime(["2020-01-01", "2011-01-01"]),
        }
    )  # person 2 ends before start
    events = pd.DataFrame(
        {
            "person_id": [1, 1, 1, 9],
            "time": pd.to_datetime(["2015-01-01", "2021-06-01", "1940-01-01", "2015-01-01"]),
            "code": ["ICD10:I50.9", "FOO:1", "LOINC:718-7", "DEATH"],
        }
    )
    path = write_registry(tmp_path / "r.duckdb", RegistryData(person, obs, events))
    report = check_registry(path)
    found = {f.check: f.count for f in report.findings}
    assert found["events outside any observation period"] == 3  # after end, before start, unknown person
    assert found["events of persons not in person"] == 1
    assert found["events before birth"] == 1
    assert found["observation periods ending before they start"] == 1
    assert found["persons without observation period"] == 2  # person 3 (twice)
    assert found["duplicate person_id in person"] == 1
    assert found["persons with missing sex"] == 1
    assert found["events with unknown code namespace"] == 1
    assert report.namespaces["FOO"] == 1
    assert "unknown namespace" in report.to_text()
