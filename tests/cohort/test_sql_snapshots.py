"""Golden SQL per backend dialect: a change to the compiler (or SQLGlot) shows up as a text diff.

Rewrite the snapshots after an intended change with ``REGENT_UPDATE_SNAPSHOTS=1 pytest
tests/cohort/test_sql_snapshots.py`` and review the diff like code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from toolkit.cohort.compile import CompiledCohort, compile_cohort
from toolkit.cohort.spec import load_cohort

REPO = Path(__file__).resolve().parents[2]
SNAPSHOTS = Path(__file__).parent / "snapshots"
SPECS = {
    "hf_mortality": REPO / "studies/hf_mortality/cohort.yaml",
    "every_criterion": Path(__file__).parent / "specs/every_criterion.yaml",
}
DIALECTS = ("duckdb", "spark")
# the synthetic heart-failure registry's one static attribute
ATTRIBUTES = {"smoking": "category"}


def compiled(name: str) -> CompiledCohort:
    return compile_cohort(load_cohort(SPECS[name]), attributes=ATTRIBUTES, source=str(SPECS[name]))


def render(c: CompiledCohort, dialect: str) -> str:
    queries = c.sql_for(dialect, pretty=True)
    return "".join(f"-- {name}\n{sql};\n\n" for name, sql in queries.items()).rstrip("\n") + "\n"


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", sorted(SPECS))
def test_sql_matches_snapshot(name: str, dialect: str) -> None:
    path = SNAPSHOTS / f"{name}_{dialect}.sql"
    text = render(compiled(name), dialect)
    if os.environ.get("REGENT_UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"{path.name}: no snapshot; run with REGENT_UPDATE_SNAPSHOTS=1 to write it"
    assert text == path.read_text(), (
        f"{path.name}: compiled SQL differs from the snapshot; if the change is intended, rerun with "
        "REGENT_UPDATE_SNAPSHOTS=1 and review the diff"
    )


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", sorted(SPECS))
def test_compiling_twice_gives_the_same_sql(name: str, dialect: str) -> None:
    first, second = compiled(name), compiled(name)
    assert first == second
    assert first.sql_for(dialect) == second.sql_for(dialect)
    assert render(first, dialect) == render(second, dialect)


def test_spark_sql_keeps_duckdb_time_semantics() -> None:
    """Spark's UNIX_TIMESTAMP truncates and yields BIGINT (DECIMAL days); the rewrite avoids it."""
    spark = compiled("every_criterion").sql_for("spark")["candidates"]
    assert "UNIX_TIMESTAMP" not in spark
    assert "TIMESTAMPDIFF(MICROSECOND" in spark
    assert "TIMESTAMP_NTZ" in spark
    duck = compiled("every_criterion").sql_for("duckdb")["candidates"]
    assert "epoch(" in duck and "TIMESTAMPDIFF" not in duck


def test_every_snapshot_is_tested() -> None:
    expected = {f"{n}_{d}.sql" for n in SPECS for d in DIALECTS}
    assert {p.name for p in SNAPSHOTS.glob("*.sql")} == expected
