from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
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
    with pytest.raises(RegistryError, match="not a DuckDB file"):
        Registry(bad)


def test_a_zero_byte_file_is_refused_in_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    empty.write_bytes(b"")
    with pytest.raises(RegistryError, match=r"empty.duckdb: the file is empty \(0 bytes\)") as err:
        Registry(empty)
    assert "\n" not in str(err.value)


def test_random_bytes_are_refused_in_one_line(tmp_path: Path, rng: np.random.Generator) -> None:
    noise = tmp_path / "noise.duckdb"
    noise.write_bytes(rng.bytes(300_000))
    with pytest.raises(RegistryError, match=r"noise\.duckdb: not a DuckDB file") as err:
        Registry(noise)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("keep", [0.02, 0.3, 0.6, 0.95])
def test_a_truncated_file_is_refused_in_one_line(tmp_path: Path, keep: float) -> None:
    whole = write_registry(tmp_path / "whole.duckdb", tiny()).read_bytes()
    cut = tmp_path / "cut.duckdb"
    cut.write_bytes(whole[: int(len(whole) * keep)])
    with pytest.raises(RegistryError, match=r"cut.duckdb: (the file is truncated|not a DuckDB file)") as err:
        Registry(cut)
    assert "\n" not in str(err.value)


def test_damaged_blocks_behind_a_whole_header_are_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    data = bytearray(write_registry(tmp_path / "r.duckdb", tiny()).read_bytes())
    data[12288:] = rng.bytes(len(data) - 12288)  # header intact, every block overwritten
    bad = tmp_path / "damaged.duckdb"
    bad.write_bytes(bytes(data))
    with (
        pytest.raises(RegistryError, match=r"damaged\.duckdb: .*damaged") as err,
        Registry(bad) as reg,
    ):
        reg.digest()  # reads every row: where damage that the catalog hides shows itself
    assert "\n" not in str(err.value)


def test_the_cli_prints_one_line_for_a_truncated_registry(tmp_path: Path) -> None:
    import subprocess
    import sys

    whole = write_registry(tmp_path / "whole.duckdb", tiny()).read_bytes()
    cut = tmp_path / "cut.duckdb"
    cut.write_bytes(whole[: len(whole) // 2])
    r = subprocess.run(
        [sys.executable, "-m", "toolkit.cli.main", "registry", "check", str(cut)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONWARNINGS": "ignore", "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 2
    assert r.stdout == "" and r.stderr.count("\n") == 1 and "the file is truncated" in r.stderr
