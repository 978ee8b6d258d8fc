"""Run a compiled cohort on a registry backend and collect the cohort, attrition and provenance."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from toolkit.cohort.compile import CANDIDATES, COHORT_EVENTS, CompiledCohort, compile_cohort
from toolkit.cohort.spec import CohortSpec, load_cohort
from toolkit.errors import CohortSpecError
from toolkit.registry.store import Registry


class Backend(Protocol):
    """What the cohort engine and the study's data stage need from a registry engine.

    Two implement it: :class:`DuckDBBackend` (a registry file or a Parquet lake, in process) and
    ``toolkit.cohort.spark.SparkBackend`` (a Parquet lake, on Spark).  SQL handed to ``query`` and
    ``materialize`` is in the backend's ``dialect``.
    """

    dialect: str

    def materialize(self, name: str, sql: str) -> None: ...

    def query(self, sql: str) -> pd.DataFrame: ...

    def attributes(self) -> dict[str, str]: ...

    def register(self, name: str, frame: pd.DataFrame) -> None:
        """Make a (small, driver-side) frame a temporary table the next queries can join."""
        ...

    def map_rows(
        self, sql: str, fn: Callable[[pd.DataFrame], pd.DataFrame], columns: dict[str, str]
    ) -> pd.DataFrame:
        """``fn`` applied to the rows of ``sql`` batch by batch (where the engine runs them), with
        the results, ``columns`` (name -> canonical SQL type), brought back as one frame."""
        ...

    def digest(self) -> str: ...

    def table_names(self) -> set[str]: ...

    @property
    def base(self) -> Path:
        """The folder relative image ``uri``s resolve against."""
        ...


#: Rows per batch when DuckDB feeds :meth:`DuckDBBackend.map_rows` (bounded memory for notes).
MAP_BATCH_ROWS = 20_000


class DuckDBBackend:
    """The embedded default: a registry (file or lake) opened read-only, scratch tables in memory."""

    dialect = "duckdb"

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def materialize(self, name: str, sql: str) -> None:
        self.registry.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")

    def query(self, sql: str) -> pd.DataFrame:
        return self.registry.con.execute(sql).df()

    def attributes(self) -> dict[str, str]:
        return {a.name: a.dtype for a in self.registry.attributes()}

    def register(self, name: str, frame: pd.DataFrame) -> None:
        con = self.registry.con
        con.execute("SELECT 1").fetchall()  # finish any pending result: register() refuses beside one
        con.register(f"_{name}_df", frame)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _{name}_df")
        finally:
            con.unregister(f"_{name}_df")

    def map_rows(
        self, sql: str, fn: Callable[[pd.DataFrame], pd.DataFrame], columns: dict[str, str]
    ) -> pd.DataFrame:
        result = self.registry.con.execute(sql)
        parts = []
        while True:
            batch = result.fetch_df_chunk(max(1, MAP_BATCH_ROWS // 2048))
            if batch.empty:
                break
            parts.append(fn(batch)[list(columns)])
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype=_PANDAS_TYPES[t]) for c, t in columns.items()})
        return pd.concat(parts, ignore_index=True)

    def digest(self) -> str:
        return self.registry.digest()

    def table_names(self) -> set[str]:
        return self.registry.table_names()

    @property
    def base(self) -> Path:
        return self.registry.base


def as_backend(source: Registry | Backend) -> Backend:
    """A backend for ``source``: an open :class:`Registry` runs on DuckDB; a backend is itself."""
    return DuckDBBackend(source) if isinstance(source, Registry) else source


_PANDAS_TYPES = {
    "BIGINT": "int64",
    "DOUBLE": "float64",
    "VARCHAR": "object",
    "BOOLEAN": "bool",
    "DATE": "datetime64[s]",
    "TIMESTAMP": "datetime64[us]",
}


@dataclass(frozen=True)
class Attrition:
    """The ordered attrition table: one row per step with persons and outcome events remaining."""

    table: pd.DataFrame  # step, kind, n, removed, entries, events

    def _repr_html_(self) -> str:
        return consort_html(self)

    def to_records(self) -> list[dict[str, object]]:
        return [
            {k: (None if pd.isna(v) else (int(v) if isinstance(v, int | float) else v)) for k, v in r.items()}
            for r in self.table.to_dict("records")
        ]


@dataclass(frozen=True)
class CohortResult:
    name: str
    cohort: pd.DataFrame
    attrition: Attrition
    provenance: pd.DataFrame
    compiled: CompiledCohort

    @property
    def n(self) -> int:
        return int(self.cohort["person_id"].nunique())

    @property
    def events(self) -> int:
        return int((self.cohort["event"] == 1).sum()) if "event" in self.cohort else 0

    def _repr_html_(self) -> str:
        return (
            f"<h4>Cohort {html.escape(self.name)}: {self.n:,} persons, {self.events:,} outcome events</h4>"
            + consort_html(self.attrition)
        )

    def write(self, out: Path | str) -> Path:
        """Write cohort.parquet, attrition.csv and provenance.parquet into ``out`` atomically."""
        from toolkit.io import atomic_dir

        with atomic_dir(Path(out)) as tmp:
            self.cohort.to_parquet(tmp / "cohort.parquet", index=False)
            self.attrition.table.to_csv(tmp / "attrition.csv", index=False)
            self.provenance.to_parquet(tmp / "provenance.parquet", index=False)
        return Path(out)


def execute(compiled: CompiledCohort, backend: Backend) -> CohortResult:
    """Run every query of ``compiled`` on ``backend``."""
    sql = compiled.sql_for(backend.dialect)
    backend.materialize(COHORT_EVENTS, sql["events"])
    backend.materialize(CANDIDATES, sql["candidates"])
    cohort = backend.query(sql["cohort"])
    steps = backend.query(sql["step_counts"])
    persons = backend.query(sql["person_steps"])
    prov = backend.query(sql["provenance"])
    attrition = _attrition(compiled, steps, persons)
    names = {i: s.name for i, s in enumerate(compiled.steps)}
    final = compiled.final_step
    prov = prov.assign(
        status=["included" if f == final else "excluded" for f in prov["_fail_step"]],
        step=[None if f == final else names[int(f)] for f in prov["_fail_step"]],
    ).drop(columns="_fail_step")
    cohort = cohort.sort_values(["person_id", "index_time"], kind="stable").reset_index(drop=True)
    for col in ("event", *tuple(n for n, _ in compiled.horizons)):
        if col in cohort:
            cohort[col] = cohort[col].astype("Int64")
    return CohortResult(compiled.name, cohort, attrition, prov, compiled)


def _attrition(compiled: CompiledCohort, steps: pd.DataFrame, persons: pd.DataFrame) -> Attrition:
    by_person = dict(zip(persons["f"].astype(int), persons["n"].astype(int), strict=True))
    rows_by = dict(zip(steps["_fail_step"].astype(int), steps["n_rows"].astype(int), strict=True))
    ev_by = dict(zip(steps["_fail_step"].astype(int), steps["n_events"].fillna(0).astype(int), strict=True))
    total = sum(by_person.values())
    records = [
        {
            "step": "registry persons",
            "kind": "registry",
            "n": total,
            "removed": 0,
            "entries": None,
            "events": None,
        }
    ]
    prev = total
    for i, step in enumerate(compiled.steps):
        n = sum(v for f, v in by_person.items() if f > i)
        entries = sum(v for f, v in rows_by.items() if f > i)
        events = sum(v for f, v in ev_by.items() if f > i) if compiled.has_outcome else None
        records.append(
            {
                "step": step.name,
                "kind": step.kind,
                "n": n,
                "removed": prev - n,
                "entries": entries,
                "events": events,
            }
        )
        prev = n
    return Attrition(pd.DataFrame.from_records(records))


def run_cohort(spec: CohortSpec | Path | str, registry: Registry, *, source: str = "cohort") -> CohortResult:
    """Compile and run a cohort on a DuckDB registry (the embedded default)."""
    if not isinstance(spec, CohortSpec):
        source = str(spec)
        spec = load_cohort(spec)
    backend = DuckDBBackend(registry)
    compiled = compile_cohort(spec, attributes=backend.attributes(), source=source)
    if compiled.uses_vocabulary and "concept" not in registry.table_names():
        raise CohortSpecError(
            f"{source}: concept_sets name OMOP concepts, but {registry.path} has no vocabulary "
            "(re-import it with this version of Regent and a concept table, e.g. --vocabulary DIR)"
        )
    return execute(compiled, backend)


def consort_html(attrition: Attrition, *, min_cell: int = 10) -> str:
    """A compact CONSORT-style flow: a box per step with persons remaining, removals beside it.

    Suppressed counts (None after disclosure control) read ``<k``; a table with markers
    (``DisclosurePolicy.attrition(..., markers=True)``) shows them as they are.
    """

    def num(v: object) -> str:
        if isinstance(v, str):
            return html.escape(v)
        return f"&lt;{min_cell}" if v is None or pd.isna(v) else f"{int(v):,}"  # type: ignore[call-overload]

    box = (
        "display:inline-block;border:1px solid #345;border-radius:4px;padding:3px 10px;width:300px;"
        "text-align:center;background:#f6f9fc;font-size:90%"
    )
    rows = []
    for r in attrition.table.itertuples():
        ev = "" if r.events is None or pd.isna(r.events) else f" · {num(r.events)} events"
        removed = ""
        if isinstance(r.removed, str) or r.removed is None or pd.isna(r.removed) or int(r.removed) > 0:
            removed = (
                f"<span style='color:#a33;font-size:85%;margin-left:8px'>&minus; {num(r.removed)} "
                "excluded</span>"
            )
        rows.append(
            f"<div style='margin:2px 0'><span style='{box}'><b>{html.escape(str(r.step))}</b><br>"
            f"{num(r.n)} persons{ev}</span>{removed}</div>"
        )
    return (
        "<div class='consort'>"
        + "<div style='margin-left:140px;color:#345'>&darr;</div>".join(rows)
        + "</div>"
    )
