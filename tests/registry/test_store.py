from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from toolkit.errors import RegistryError
from toolkit.registry import Registry, RegistryData, write_registry
from toolkit.registry.store import Attribute, RegistryWriter


def tiny() -> RegistryData:
    person = pd.DataFrame(
        {
            "person_id": [1, 2],
            "birth_date": pd.to_datetime(["1950-01-01", "1960-06-15"]).date,
            "sex": ["F", "M"],
            "site_id": ["A", "B"],
            "bmi": [24.0, None],
        }
    )
    obs = pd.DataFrame(
        {
            "person_id": [1, 2],
            "start_time": pd.to_datetime(["2010-01-01", "2011-01-01"]),
            "end_time": pd.to_datetime(["2020-01-01", "2021-01-01"]),
        }
    )
    events = pd.DataFrame(
        {
            "person_id": [1, 2],
            "time": pd.to_datetime(["2015-01-01", "2016-01-01"]),
            "code": ["ICD10:I50.9", "LOINC:33762-6"],
            "numeric_value": [None, 900.0],
            "unit": [None, "pg/mL"],
        }
    )
    return RegistryData(
        person, obs, events, attributes=(Attribute("bmi", "float", unit="kg/m2"),), metadata={"name": "tiny"}
    )


def test_write_then_open_read_only(tmp_path: Path) -> None:
    path = write_registry(tmp_path / "r.duckdb", tiny())
    with Registry(path) as reg:
        assert reg.count("person") == 2
        assert [a.name for a in reg.attributes()] == ["bmi"]
        assert reg.metadata()["name"] == "tiny"
        with pytest.raises(duckdb.Error, match="read-only"):
            reg.con.execute("DELETE FROM person")
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


def test_digest_changes_with_content(tmp_path: Path) -> None:
    a = write_registry(tmp_path / "a.duckdb", tiny())
    d = tiny()
    changed = RegistryData(
        d.person,
        d.observation_period,
        d.events.assign(numeric_value=[None, 901.0]),
        attributes=d.attributes,
        metadata=d.metadata,
    )
    b = write_registry(tmp_path / "b.duckdb", changed)
    c = write_registry(tmp_path / "c.duckdb", tiny())
    with Registry(a) as ra, Registry(b) as rb, Registry(c) as rc:
        assert ra.digest() == rc.digest()
        assert ra.digest() != rb.digest()


def test_missing_table_is_a_schema_error(tmp_path: Path) -> None:
    path = write_registry(tmp_path / "r.duckdb", tiny())
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE images")
    con.close()
    with pytest.raises(RegistryError, match="table 'images' is missing"):
        Registry(path)


def test_wrong_column_type_is_a_schema_error(tmp_path: Path) -> None:
    path = write_registry(tmp_path / "r.duckdb", tiny())
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE events ALTER COLUMN numeric_value TYPE VARCHAR")
    con.close()
    with pytest.raises(RegistryError, match="'numeric_value' should be DOUBLE"):
        Registry(path)


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "r.duckdb"
    with pytest.raises(RegistryError, match="no column"), RegistryWriter(target) as w:
        w.append("person", pd.DataFrame({"person_id": [1], "nonsense": [1]}))
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_not_a_registry(tmp_path: Path) -> None:
    bad = tmp_path / "x.duckdb"
    bad.write_text("not a database")
    with pytest.raises(RegistryError, match="not a DuckDB registry"):
        Registry(bad)
