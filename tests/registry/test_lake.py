"""The registry as a folder of Parquet tables: layout, manifest, round trips, DuckDB in place, check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from toolkit.cli.main import app
from toolkit.cohort.run import run_cohort
from toolkit.errors import RegistryError
from toolkit.registry import schema as S
from toolkit.registry.check import check_registry
from toolkit.registry.lake import BUCKETED, MANIFEST, read_manifest, write_duckdb, write_lake
from toolkit.registry.store import Registry

REPO = Path(__file__).resolve().parents[2]


def _tables(reg: Registry) -> dict[str, pd.DataFrame]:
    out = {}
    for name in sorted(reg.table_names()):
        frame = reg.sql(f"SELECT * FROM {name}")
        out[name] = frame.sort_values(list(frame.columns), ignore_index=True)
    return out


def test_lake_layout_manifest_and_buckets(hf_registry: Path, hf_lake: Path) -> None:
    manifest = read_manifest(hf_lake)
    raw = json.loads((hf_lake / MANIFEST).read_text())
    assert raw["format"] == "regent-parquet-lake" and raw["schema_version"] == S.SCHEMA_VERSION
    with Registry(hf_registry) as reg:
        assert {t: manifest.tables[t].rows for t in manifest.tables} == {
            t: reg.count(t) for t in reg.table_names()
        }
        assert manifest.digest == reg.digest()
    for name in BUCKETED:
        folders = sorted(p.name for p in (hf_lake / name).iterdir())
        assert folders and all(f.startswith("person_bucket=") for f in folders)
    # every row sits in its person's bucket, read straight from the files (not through Regent)
    files = f"{hf_lake}/events/*/*.parquet"
    wrong = duckdb.sql(
        f"SELECT COUNT(*) FROM read_parquet('{files}', hive_partitioning = true) "
        f"WHERE person_bucket <> person_id % {manifest.buckets}"
    ).fetchall()
    assert wrong == [(0,)]
    assert manifest.tables["person"].partitioned_by is None
    assert (hf_lake / "person" / "part-0.parquet").is_file()


def test_duckdb_lake_duckdb_round_trip_keeps_every_row_and_the_digest(
    hf_registry: Path, hf_lake: Path, tmp_path: Path
) -> None:
    back = write_duckdb(hf_lake, tmp_path / "back.duckdb")
    with Registry(hf_registry) as a, Registry(hf_lake) as b, Registry(back) as c:
        assert a.digest() == b.digest() == b.digest(recompute=True) == c.digest()
        assert a.columns("person") == b.columns("person") == c.columns("person")
        assert a.attributes() == b.attributes() == c.attributes()
        ta, tb, tc = _tables(a), _tables(b), _tables(c)
    assert set(ta) == set(tb) == set(tc)
    for name in ta:
        pd.testing.assert_frame_equal(ta[name], tb[name], check_dtype=False)
        pd.testing.assert_frame_equal(ta[name], tc[name], check_dtype=False)


def test_duckdb_reads_the_lake_in_place_and_a_cohort_is_the_same(hf_registry: Path, hf_lake: Path) -> None:
    spec = REPO / "studies/hf_mortality/cohort.yaml"
    with Registry(hf_registry) as reg:
        duck = run_cohort(spec, reg)
    before = sorted(p.stat().st_mtime_ns for p in hf_lake.rglob("*.parquet"))
    with Registry(hf_lake) as lake:
        assert lake.base == hf_lake.parent  # image uris resolve against the same folder
        assert lake.con.execute(
            "SELECT COUNT(*) FROM duckdb_tables() WHERE database_name = 'reg'"
        ).fetchone() == (0,)
        got = run_cohort(spec, lake)
    assert sorted(p.stat().st_mtime_ns for p in hf_lake.rglob("*.parquet")) == before
    pd.testing.assert_frame_equal(got.cohort, duck.cohort)
    pd.testing.assert_frame_equal(got.attrition.table, duck.attrition.table)


def test_check_works_on_both_and_finds_changed_files(
    hf_registry: Path, hf_lake: Path, tmp_path: Path
) -> None:
    a, b = check_registry(hf_registry), check_registry(hf_lake)
    assert (a.digest, a.row_counts, a.findings, a.namespaces) == (
        b.digest,
        b.row_counts,
        b.findings,
        b.namespaces,
    )
    # same row count, one value changed: only the recomputed digest can tell
    copy = tmp_path / "lake"
    shutil.copytree(hf_lake, copy)
    target = sorted((copy / "person").glob("*.parquet"))[0]
    frame = pd.read_parquet(target)
    frame.loc[0, "sex"] = "X"
    frame.to_parquet(target, index=False)
    with pytest.raises(
        RegistryError, match=r"manifest.json says sha256:.*changed after the lake was written"
    ):
        check_registry(copy)
    # a file removed: the row count no longer matches, opening refuses naming the table
    shutil.rmtree(copy)
    shutil.copytree(hf_lake, copy)
    victim = sorted((copy / "events").glob("*/*.parquet"))[0]
    victim.unlink()
    with pytest.raises(RegistryError, match=r"table 'events' has \d+ rows; manifest.json says \d+"):
        Registry(copy)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(format="csv"), r"format: expected 'regent-parquet-lake'; got 'csv'"),
        (lambda m: m.update(buckets=0), r"buckets: expected a positive integer; got 0"),
        (lambda m: m["tables"].pop("events"), r"tables: missing required table\(s\) \['events'\]"),
        (
            lambda m: m["tables"]["events"].update(partitioned_by=None),
            r"tables.events.partitioned_by: expected",
        ),
        (lambda m: m["tables"]["person"].update(rows=-1), r"tables.person.rows: expected a row count"),
        (lambda m: m.update(digest="md5:0"), r"digest: expected 'sha256:...'"),
    ],
)
def test_a_bad_manifest_is_an_error_naming_the_key(hf_lake: Path, tmp_path: Path, edit, message) -> None:  # type: ignore[no-untyped-def]
    copy = tmp_path / "lake"
    shutil.copytree(hf_lake, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    edit(manifest)
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(RegistryError, match=message) as info:
        Registry(copy)
    assert str(copy / MANIFEST) in str(info.value)


def test_a_folder_without_manifest_is_not_a_registry(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"not a Parquet registry \(no manifest.json\)"):
        Registry(tmp_path)


def test_conversion_never_replaces_something_that_is_not_a_lake(hf_registry: Path, tmp_path: Path) -> None:
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "keep.txt").write_text("x")
    with pytest.raises(RegistryError, match=r"exists and is not a Parquet registry"):
        write_lake(hf_registry, folder)
    assert (folder / "keep.txt").read_text() == "x"


def test_cli_convert_both_ways_and_import_and_synth_write_parquet(tmp_path: Path) -> None:
    runner = CliRunner()
    lake = tmp_path / "gbsg2_lake"
    r = runner.invoke(app, ["registry", "import", "gbsg2", "--out", str(lake), "--format", "parquet"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["registry", "import", "gbsg2", "--out", str(tmp_path / "g.duckdb")])
    assert r.exit_code == 0, r.output
    with Registry(lake) as a, Registry(tmp_path / "g.duckdb") as b:
        assert a.digest() == b.digest()
    r = runner.invoke(
        app, ["registry", "convert", str(lake), "--to", "duckdb", "--out", str(tmp_path / "c.duckdb")]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        [
            "registry",
            "convert",
            str(tmp_path / "c.duckdb"),
            "--to",
            "parquet",
            "--out",
            str(tmp_path / "l2"),
            "--buckets",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    assert read_manifest(tmp_path / "l2").buckets == 3
    assert not list(tmp_path.glob(".*")), "no build files left beside the outputs"
    r = runner.invoke(app, ["registry", "check", str(tmp_path / "l2"), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["digest"] == read_manifest(lake).digest
    r = runner.invoke(
        app,
        [
            "registry",
            "synth",
            "--patients",
            "60",
            "--no-images",
            "--out",
            str(tmp_path / "hf_lake"),
            "--format",
            "parquet",
        ],
    )
    assert r.exit_code == 0, r.output
    assert read_manifest(tmp_path / "hf_lake").tables["notes"].rows > 0
    assert (tmp_path / "hf_lake.truth.json").is_file()  # the truth is named after the lake
    r = runner.invoke(app, ["registry", "convert", str(lake), "--to", "csv", "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "--to: expected one of ['duckdb', 'parquet']; got 'csv'" in str(
        r.exception or r.output
    )


def test_import_omop_and_import_meds_write_parquet_with_the_files_digest(
    hf_registry: Path, tmp_path: Path
) -> None:
    from tests.registry.test_omop_import import write_folder

    runner = CliRunner()
    omop = write_folder(tmp_path / "omop")
    for fmt, out in (("duckdb", tmp_path / "o.duckdb"), ("parquet", tmp_path / "o_lake")):
        r = runner.invoke(app, ["registry", "import-omop", str(omop), "--out", str(out), "--format", fmt])
        assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["registry", "export-meds", str(hf_registry), "--out", str(tmp_path / "meds")])
    assert r.exit_code == 0, r.output
    for fmt, out in (("duckdb", tmp_path / "m.duckdb"), ("parquet", tmp_path / "m_lake")):
        r = runner.invoke(
            app, ["registry", "import-meds", str(tmp_path / "meds"), "--out", str(out), "--format", fmt]
        )
        assert r.exit_code == 0, r.output
    with Registry(tmp_path / "o.duckdb") as a, Registry(tmp_path / "o_lake") as b:
        assert a.digest() == b.digest() and a.count("events") == b.count("events") > 0
        assert b.count("import_summary") == a.count("import_summary") > 0  # the row accounting comes along
    with Registry(tmp_path / "m.duckdb") as a, Registry(tmp_path / "m_lake") as b:
        assert a.digest() == b.digest() and b.count("events") > 1000
