from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from toolkit.errors import ImportMappingError
from toolkit.registry import Registry, check_registry
from toolkit.registry.importers.datasets import dataset_names, import_dataset, load_dataset
from toolkit.registry.importers.flat import import_flat, load_mapping

EXPECTED = {
    "gbsg2": (686, 299),
    "whas500": (500, 215),
    "flchain": (7874, 2169),
    "lung": (228, 165),
    "rossi": (432, 114),
    "veterans": (137, 128),
    "bmt": (35, 24),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_dataset_imports_and_checks(name: str, tmp_path: Path) -> None:
    path = import_dataset(name, tmp_path / f"{name}.duckdb")
    report = check_registry(path)
    n, events = EXPECTED[name]
    assert report.row_counts["person"] == n
    # one enrolment event per person plus one event per outcome (or competing event)
    assert report.row_counts["events"] == n + events
    serious = [f for f in report.warnings if "missing" not in f.check]
    assert serious == [], serious


def test_every_shipped_dataset_is_tested() -> None:
    assert set(dataset_names()) == set(EXPECTED)


def test_flat_import_preserves_durations_and_outcomes(tmp_path: Path) -> None:
    frame, _mapping = load_dataset("gbsg2")
    path = import_dataset("gbsg2", tmp_path / "g.duckdb")
    with Registry(path) as reg:
        got = reg.sql("""
            SELECT p.person_id, date_diff('day', o.start_time, o.end_time) AS days,
                   EXISTS (SELECT 1 FROM events e WHERE e.person_id = p.person_id AND e.code = 'LOCAL:RECURRENCE') AS ev,
                   p.tumor_size, p.hormone_therapy
            FROM person p JOIN observation_period o USING (person_id) ORDER BY p.person_id""")
    assert got["days"].tolist() == frame["time"].tolist()
    assert got["ev"].astype(int).tolist() == frame["cens"].tolist()
    assert got["tumor_size"].tolist() == frame["tsize"].astype(float).tolist()
    assert got["hormone_therapy"].tolist() == frame["horTh"].tolist()


def test_competing_values_become_their_code(tmp_path: Path) -> None:
    frame, _ = load_dataset("bmt")
    with Registry(import_dataset("bmt", tmp_path / "b.duckdb")) as reg:
        codes = reg.sql("SELECT code, COUNT(*) n FROM events GROUP BY code").set_index("code")["n"].to_dict()
    assert codes["LOCAL:RELAPSE"] == int((frame["status"] == 1).sum())
    assert codes["DEATH"] == int((frame["status"] == 2).sum())


def test_unknown_dataset_names_the_choices() -> None:
    with pytest.raises(ImportMappingError, match=r"unknown dataset 'gbsg3'.*gbsg2"):
        import_dataset("gbsg3", "/nonexistent/x.duckdb")


def _write(tmp: Path, text: str) -> Path:
    p = tmp / "mapping.yaml"
    p.write_text(text)
    return p


MAPPING = """
name: demo
index: {anchor: 2000-01-01}
duration: {column: days}
outcome: {column: status, event_values: [1], code: DEATH}
attributes:
  - {name: grade, column: grade, dtype: category}
"""


def test_id_column_is_kept(tmp_path: Path) -> None:
    mapping = load_mapping(_write(tmp_path, MAPPING.replace("name: demo", "name: demo\nid_column: pid")))
    frame = pd.DataFrame(
        {"pid": [101, 205.0, 7], "days": [10, 20, 30], "status": [1, 0, 1], "grade": ["a", "b", "a"]}
    )
    with Registry(import_flat(frame, mapping, tmp_path / "r.duckdb", source="m")) as reg:
        assert reg.sql("SELECT person_id FROM person ORDER BY 1")["person_id"].tolist() == [7, 101, 205]
    with pytest.raises(ImportMappingError, match="id_column 'pid': expected whole-number ids"):
        import_flat(frame.assign(pid=[1.5, 2, 3]), mapping, tmp_path / "x.duckdb", source="m")


def test_csv_import_with_mapping(tmp_path: Path) -> None:
    csv = tmp_path / "d.csv"
    pd.DataFrame({"days": [10, 20, 30], "status": [1, 0, 1], "grade": ["a", "b", "a"]}).to_csv(
        csv, index=False
    )
    out = import_flat(
        pd.read_csv(csv), load_mapping(_write(tmp_path, MAPPING)), tmp_path / "r.duckdb", source="m"
    )
    assert check_registry(out).row_counts["events"] == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MAPPING.replace("duration:", "durration:"), r"durration: unknown key"),
        (MAPPING.replace("code: DEATH", "code: FOO:1"), r"outcome.code: .*namespaced"),
        (MAPPING.replace("{anchor: 2000-01-01}", "{}"), r"index: .*exactly one of 'column' or 'anchor'"),
        (MAPPING.replace("event_values: [1]", "event_values: [1], censored_values: [1]"), "also listed"),
        ("name: [unclosed", "not valid YAML"),
    ],
)
def test_malformed_mapping_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ImportMappingError, match=message):
        load_mapping(_write(tmp_path, text))


def test_data_not_matching_mapping(tmp_path: Path) -> None:
    mapping = load_mapping(_write(tmp_path, MAPPING))
    frame = pd.DataFrame({"days": [10, None], "status": [1, 0], "grade": ["a", "b"]})
    with pytest.raises(ImportMappingError, match=r"duration.column 'days': 1 rows .*missing or negative"):
        import_flat(frame, mapping, tmp_path / "r.duckdb", source="mapping.yaml")
    frame = pd.DataFrame({"days": [10, 5], "status": [1, 7], "grade": ["a", "b"]})
    with pytest.raises(ImportMappingError, match=r"values \['7'\] are neither"):
        import_flat(frame, mapping, tmp_path / "r.duckdb", source="mapping.yaml")
    with pytest.raises(ImportMappingError, match=r"column 'grade' not in the data; available"):
        import_flat(
            frame.assign(status=[1, 0]).drop(columns="grade"),
            mapping,
            tmp_path / "r.duckdb",
            source="mapping.yaml",
        )
    assert not (tmp_path / "r.duckdb").exists()
