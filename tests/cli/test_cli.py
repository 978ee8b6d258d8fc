"""Bad inputs end with a clear message naming the file and key, and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[2]


def regent(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toolkit.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        timeout=300,
        env={"PYTHONWARNINGS": "ignore", "PATH": "/usr/bin:/bin"},
    )


def test_import_and_check_roundtrip(tmp_path: Path) -> None:
    r = regent("registry", "import", "lung", "--out", str(tmp_path / "lung.duckdb"))
    assert r.returncode == 0, r.stderr
    r = regent("registry", "check", str(tmp_path / "lung.duckdb"), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["row_counts"]["person"] == 228


def test_unknown_dataset(tmp_path: Path) -> None:
    r = regent("registry", "import", "gbsg3", "--out", str(tmp_path / "x.duckdb"))
    assert r.returncode == 2 and "unknown dataset 'gbsg3'" in r.stderr and "gbsg2" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "x.duckdb").exists()


def test_malformed_mapping(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("t,s\n1,1\n")
    (tmp_path / "m.yaml").write_text(
        "name: x\nindex: {anchor: 2000-01-01}\nduration: {colum: t}\n"
        "outcome: {column: s, event_values: [1], code: DEATH}\n"
    )
    r = regent(
        "registry",
        "import",
        "--csv",
        str(tmp_path / "d.csv"),
        "--mapping",
        str(tmp_path / "m.yaml"),
        "--out",
        str(tmp_path / "r.duckdb"),
    )
    assert r.returncode == 2
    assert f"{tmp_path / 'm.yaml'}: duration.colum: unknown key" in r.stderr
    assert not (tmp_path / "r.duckdb").exists()


def test_registry_missing_a_table(tmp_path: Path) -> None:
    regent("registry", "import", "rossi", "--out", str(tmp_path / "r.duckdb"))
    con = duckdb.connect(str(tmp_path / "r.duckdb"))
    con.execute("DROP TABLE observation_period")
    con.close()
    r = regent("registry", "check", str(tmp_path / "r.duckdb"))
    assert r.returncode == 2 and "table 'observation_period' is missing" in r.stderr


def test_study_with_misspelled_key(tmp_path: Path) -> None:
    study = tmp_path / "s"
    study.mkdir()
    text = (REPO / "studies/gbsg2_recurrence/study.yaml").read_text().replace("validation:", "validaton:")
    (study / "study.yaml").write_text(text)
    r = regent("study", "run", str(study), "--out", str(tmp_path / "out"), "--no-track")
    assert r.returncode == 2 and f"{study / 'study.yaml'}: validaton: unknown key" in r.stderr
    assert not (tmp_path / "out").exists()


def test_patient_json_with_wrong_type(gbsg2_bundle: Path, tmp_path: Path) -> None:
    patient = json.loads((REPO / "agents/gbsg2-recurrence/patient.json").read_text())
    (tmp_path / "p.json").write_text(json.dumps({**patient, "positive_nodes": "three"}))
    r = regent("agent", "predict", str(gbsg2_bundle), "--input", str(tmp_path / "p.json"))
    assert r.returncode == 2 and f"{tmp_path / 'p.json'}: positive_nodes: expected a number" in r.stderr
    (tmp_path / "p.json").write_text(json.dumps(patient))
    r = regent("agent", "predict", str(gbsg2_bundle), "--input", str(tmp_path / "p.json"))
    assert r.returncode == 0 and "5-year risk of recurrence or death" in r.stdout
