"""Window features over coded events and labs, computed in SQL on the registry backend.

Two ways to declare them (the OHDSI FeatureExtraction / MEDS-Tab idea):

* ``windows``: named features, one aggregation of matching events in a window relative to
  index (present, count, last, first, mean, min, max, sum, slope);
* ``generators``: every code with a prefix ("ICD10:", "LOINC:", or "" for all codes) in each
  declared window with each aggregation, kept when at least ``min_prevalence`` of the cohort rows
  have the code in that window.  The result is a sparse matrix with readable feature names.

Both are one SQL query with conditional aggregation (the events table is scanned once), written
in DuckDB's dialect and transpiled by SQLGlot for Spark.  ``last``/``first`` order by time and
then value, so ties are deterministic on every backend.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from toolkit.cohort.criteria import Context, code_predicate, days_between, lit, shift
from toolkit.cohort.spec import CodeFilter, ConceptItem, Window
from toolkit.errors import SpecError
from toolkit.features.imaging import ImageFeatureSpec
from toolkit.features.notes import NoteFeatureSpec
from toolkit.registry import schema as S
from toolkit.specs import Frozen

if TYPE_CHECKING:
    import scipy.sparse as sp

Agg = Literal["present", "count", "last", "first", "mean", "min", "max", "sum", "slope"]
Modality = Literal["structured", "notes", "images"]
STATIC_BUILTINS = ("age", "sex", "site_id")
VALUE_AGGS = frozenset({"last", "first", "mean", "min", "max", "sum", "slope"})


class WindowFeature(CodeFilter):
    """One feature: an aggregation of matching events in a window relative to index."""

    name: str
    window: Window
    agg: Agg
    transform: Literal["log", "log1p"] | None = None

    @field_validator("name")
    @classmethod
    def _ident(cls, v: str) -> str:
        if not S.is_identifier(v):
            raise ValueError("feature names are lower-case identifiers like 'nt_probnp_last'")
        return v


class CodeGenerator(Frozen):
    """Every code with one of ``prefixes`` x every window x every aggregation."""

    prefixes: list[str] = Field(
        min_length=1, description='Code prefixes, e.g. ["ICD10:", "ATC:"]; "" = all codes.'
    )
    windows: list[Window] = Field(min_length=1)
    aggs: list[Agg] = Field(min_length=1)
    min_prevalence: float | None = Field(None, ge=0, le=1, description="Overrides features.min_prevalence.")

    @field_validator("prefixes")
    @classmethod
    def _canonical(cls, v: list[str]) -> list[str]:
        return [S.canonical_code(p) for p in v]  # MEDS 'ICD10//' and Regent 'ICD10:' are one prefix


class FeatureSpec(Frozen):
    """``features`` in study.yaml: static columns, window features, generators and other modalities."""

    static: list[str] = Field(default_factory=lambda: ["age", "sex"])
    windows: list[WindowFeature] = Field(default_factory=list)
    generators: list[CodeGenerator] = Field(default_factory=list)
    min_prevalence: float = Field(
        0.0, ge=0, le=1, description="Generated features in fewer cohort rows are dropped."
    )
    modalities: list[Modality] = Field(
        default_factory=lambda: _structured_only(), description="Which modalities the joined matrix holds."
    )
    notes: NoteFeatureSpec | None = Field(None, description="Note features (when 'notes' is a modality).")
    images: ImageFeatureSpec | None = Field(
        None, description="Imaging features (when 'images' is a modality)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> FeatureSpec:
        for name in ("notes", "images"):
            if getattr(self, name) is not None and name not in self.modalities:
                raise ValueError(f"'{name}' is configured but not listed in modalities {self.modalities}")
        return self

    @property
    def note_spec(self) -> NoteFeatureSpec | None:
        return (self.notes or NoteFeatureSpec()) if "notes" in self.modalities else None

    @property
    def image_spec(self) -> ImageFeatureSpec | None:
        return (self.images or ImageFeatureSpec()) if "images" in self.modalities else None


def _structured_only() -> list[Modality]:
    return ["structured"]


_INDEX = "_feature_index"


def _ordered(v: str, agg: str) -> str:
    """last/first ordered by time, then value (deterministic under ties on every backend)."""
    fn = "arg_max" if agg == "last" else "arg_min"
    return f"{fn}({v}, struct_pack(t := e.time, v := {v}))"


def _agg_sql(agg: str, cond: str) -> str:
    v = "e.numeric_value"
    filt = f"FILTER (WHERE {cond})"
    num_filt = f"FILTER (WHERE {cond} AND {v} IS NOT NULL)"
    t = days_between("x.index_time", "e.time")
    match agg:
        case "present":
            return f"CAST(COUNT(*) {filt} > 0 AS INTEGER)"
        case "count":
            return f"COUNT(*) {filt}"
        case "last" | "first":
            return f"{_ordered(v, agg)} {num_filt}"
        case "mean":
            return f"AVG({v}) {num_filt}"
        case "min":
            return f"MIN({v}) {num_filt}"
        case "max":
            return f"MAX({v}) {num_filt}"
        case "sum":
            return f"SUM({v}) {num_filt}"
        case "slope":
            return f"regr_slope({v}, {t}) {num_filt}"
    raise AssertionError(agg)


def _in_window(w: Window) -> list[str]:
    cond = [f"e.time <= {shift('x.index_time', w.end_days)}"]
    if w.start_days is not None:
        cond.append(f"e.time >= {shift('x.index_time', w.start_days)}")
    return cond


def _bounds(windows: Sequence[Window]) -> list[str]:
    starts = [w.start_days for w in windows]
    lo = None if any(s is None for s in starts) else min(s for s in starts if s is not None)
    cond = [
        "e.person_id = x.person_id",
        f"e.time <= {shift('x.index_time', max(w.end_days for w in windows))}",
    ]
    if lo is not None:
        cond.append(f"e.time >= {shift('x.index_time', lo)}")
    return cond


def compile_features(
    spec: FeatureSpec,
    concept_sets: Mapping[str, list[ConceptItem]] | None = None,
    *,
    source: str = "features",
) -> str:
    """SQL over ``_feature_index(person_id, index_time)`` and ``events``: one row per index row."""
    if not spec.windows:
        return f"SELECT x.person_id, x.index_time FROM {_INDEX} x"
    ctx = Context(concept_sets or {}, {}, source)
    for i, f in enumerate(spec.windows):
        if f.concept is not None and f.concept not in ctx.concept_sets:
            raise SpecError(
                f"{source}: windows[{i}].concept: unknown concept set {f.concept!r}; "
                f"declared: {sorted(ctx.concept_sets) or 'none'}"
            )
    names = [f.name for f in spec.windows]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"{source}: windows: duplicate feature names {dupes}")
    any_code = " OR ".join(f"({code_predicate(f, ctx, 'e0')})" for f in spec.windows)
    cols = []
    for f in spec.windows:
        agg = _agg_sql(f.agg, " AND ".join([f"({code_predicate(f, ctx)})", *_in_window(f.window)]))
        if f.agg in ("present", "count"):
            agg = f"COALESCE({agg}, 0)"
        cols.append(f"{agg} AS {f.name}")
    return (
        f"SELECT x.person_id, x.index_time, {', '.join(cols)} FROM {_INDEX} x "
        f"LEFT JOIN (SELECT * FROM events e0 WHERE {any_code}) e ON {' AND '.join(_bounds([f.window for f in spec.windows]))} "
        "GROUP BY x.person_id, x.index_time"
    )


def compile_generator(g: CodeGenerator) -> str:
    """Long-form SQL for a generator: one row per (index row, code) with a column per window x agg.

    Reads ``_feature_index(row_id, person_id, index_time)`` and ``events``.
    """
    prefixes = [p for p in g.prefixes if p] if all(g.prefixes) else []
    where = " OR ".join(f"starts_with(e.code, {lit(p)})" for p in prefixes) or "TRUE"
    cols = []
    for wi, w in enumerate(g.windows):
        inside = " AND ".join(_in_window(w))
        cols.append(f"COUNT(*) FILTER (WHERE {inside}) AS w{wi}_n")
        for agg in g.aggs:
            if agg not in ("present", "count"):
                cols.append(f"{_agg_sql(agg, inside)} AS w{wi}_{agg}")
    return (
        f"SELECT x.row_id, e.code, {', '.join(cols)} FROM {_INDEX} x JOIN events e ON "
        f"{' AND '.join(_bounds(g.windows))} AND ({where}) GROUP BY x.row_id, e.code"
    )


# --- running on a backend ------------------------------------------------------------------------
def _upload_index(con: Any, keys: pd.DataFrame) -> None:
    """``_feature_index`` on the backend: a DuckDB connection or a cohort ``Backend`` (DuckDB, Spark)."""
    frame = keys.assign(row_id=np.arange(len(keys), dtype=np.int64))[["row_id", S.PERSON_ID, S.INDEX_TIME]]
    frame = frame.assign(**{S.INDEX_TIME: frame[S.INDEX_TIME].astype("datetime64[us]")})
    if _is_duckdb(con):
        con.execute("SELECT 1").fetchall()  # finish any pending result: register() refuses to run beside one
        con.register("_feature_index_df", frame)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {_INDEX} AS SELECT * FROM _feature_index_df")
        finally:
            con.unregister("_feature_index_df")
        return
    con.register(_INDEX, frame)


def _is_duckdb(con: Any) -> bool:
    import duckdb

    return isinstance(con, duckdb.DuckDBPyConnection)


def _query(con: Any, sql: str) -> pd.DataFrame:
    """Run DuckDB-dialect ``sql`` on a DuckDB connection or a backend (transpiled to its dialect)."""
    if _is_duckdb(con):
        return con.execute(sql).df()
    if con.dialect != "duckdb":
        from toolkit.cohort.compile import _transpile

        sql = _transpile(sql, con.dialect, pretty=False)
    return con.query(sql)


def window_features(
    cohort: pd.DataFrame,
    con: object,
    spec: FeatureSpec,
    *,
    concept_sets: Mapping[str, list[ConceptItem]] | None = None,
    source: str = "features",
) -> pd.DataFrame:
    """Compute the declared window features for the cohort's index rows.

    ``con`` is the registry's DuckDB connection, or a cohort ``Backend`` (``DuckDBBackend``,
    ``SparkBackend``) whose ``events`` table it reads.  Returns the cohort's (person_id, index_time) with one column
    per feature, in cohort order.
    """
    keys = cohort[[S.PERSON_ID, S.INDEX_TIME]].drop_duplicates().reset_index(drop=True)
    _upload_index(con, keys)
    out = _query(con, compile_features(spec, concept_sets, source=source))
    for f in spec.windows:
        out[f.name] = (
            out[f.name].astype(float) if f.agg not in ("present", "count") else out[f.name].astype("int64")
        )
        if f.transform is not None:
            x = out[f.name].astype(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[f.name] = np.log(x.where(x > 0)) if f.transform == "log" else np.log1p(x.where(x > -1))
    merged = cohort[[S.PERSON_ID, S.INDEX_TIME]].merge(out, on=[S.PERSON_ID, S.INDEX_TIME], how="left")
    return merged


@dataclass(frozen=True)
class GeneratedFeatures:
    """A sparse feature matrix: one row per index row (``keys``), one column per name.

    Entries not stored are "no event in the window": 0 for present/count, missing for value
    aggregations (:meth:`to_frame` turns them into NaN).
    """

    keys: pd.DataFrame
    matrix: sp.csr_matrix
    names: tuple[str, ...]
    labels: tuple[str, ...]
    aggs: tuple[str, ...]

    def to_frame(self) -> pd.DataFrame:
        dense = self.matrix.toarray().astype(float)
        if self.matrix.nnz:
            stored = self.matrix.copy()
            stored.data = np.ones_like(stored.data)
            has = stored.toarray() > 0
        else:
            has = np.zeros(dense.shape, dtype=bool)
        for j, agg in enumerate(self.aggs):
            if agg in VALUE_AGGS:
                dense[~has[:, j], j] = np.nan
        frame = pd.DataFrame(dense, columns=list(self.names))
        return pd.concat([self.keys.reset_index(drop=True), frame], axis=1)


def slug(code: str) -> str:
    """An identifier-safe form of a code: ``ICD10:E11.9`` -> ``icd10_e11_9``."""
    return re.sub(r"[^a-z0-9]+", "_", code.lower()).strip("_") or "code"


def window_label(w: Window) -> str:
    start = "all" if w.start == "all" else str(w.start).replace("-", "m")
    return f"{start}_{str(w.end).replace('-', 'm')}"


def generated_features(
    cohort: pd.DataFrame, con: object, spec: FeatureSpec, *, min_prevalence: float | None = None
) -> GeneratedFeatures:
    """Run every generator of ``spec`` and assemble one sparse matrix (vectorised, no row loops)."""
    import scipy.sparse as sp

    keys = cohort[[S.PERSON_ID, S.INDEX_TIME]].drop_duplicates().reset_index(drop=True)
    n = len(keys)
    names: list[str] = []
    labels: list[str] = []
    aggs: list[str] = []
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    data: list[np.ndarray] = []
    if spec.generators:
        _upload_index(con, keys)
    for g in spec.generators:
        long = _query(con, compile_generator(g))
        threshold = (
            g.min_prevalence if g.min_prevalence is not None else (min_prevalence or spec.min_prevalence)
        )
        # integer codes once: every step below is a numpy operation on whole columns
        cat = pd.Categorical(long["code"])
        cc = np.asarray(cat.codes)
        row_id = long["row_id"].to_numpy()
        for wi, w in enumerate(g.windows):
            hit = long[f"w{wi}_n"].to_numpy() > 0
            prevalence = np.bincount(cc[hit], minlength=len(cat.categories)) / max(n, 1)
            kept = np.nonzero((prevalence > 0) & (prevalence >= threshold))[0]
            pos = np.full(len(cat.categories), -1)
            pos[kept] = np.arange(len(kept))
            sel = hit & (pos[cc] >= 0)
            codes = [str(c) for c in cat.categories[kept]]
            for agg in g.aggs:
                base = len(names)
                for c in codes:
                    names.append(f"{slug(c)}__{window_label(w)}__{agg}")
                    labels.append(f"{c} in [{w.start}, {w.end}]: {agg}")
                    aggs.append(agg)
                if agg in ("present", "count"):
                    vals = long[f"w{wi}_n"].to_numpy(float)[sel]
                    vals = np.ones_like(vals) if agg == "present" else vals
                else:
                    vals = long[f"w{wi}_{agg}"].to_numpy(float)[sel]
                keep = ~np.isnan(vals)
                rows.append(row_id[sel][keep])
                cols.append(pos[cc[sel]][keep] + base)
                data.append(vals[keep])
    dupes = sorted(x for x, k in Counter(names).items() if k > 1)
    if dupes:
        raise SpecError(f"features.generators: the same feature is generated twice: {dupes[:5]}")
    if data:
        matrix = sp.csr_matrix(
            (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(n, len(names))
        )
    else:
        matrix = sp.csr_matrix((n, 0))
    return GeneratedFeatures(keys, matrix, tuple(names), tuple(labels), tuple(aggs))


def feature_matrix(cohort: pd.DataFrame, windows: pd.DataFrame, static: Sequence[str]) -> pd.DataFrame:
    """Join static columns of the cohort table with window features (one row per cohort row)."""
    missing = [c for c in static if c not in cohort.columns]
    if missing:
        raise SpecError(
            f"features.static: {missing} not in the cohort table; available: {sorted(cohort.columns)} "
        )
    x = cohort[[S.PERSON_ID, S.INDEX_TIME, *static]].reset_index(drop=True)
    w = windows.drop(columns=[S.PERSON_ID, S.INDEX_TIME]).reset_index(drop=True)
    return pd.concat([x, w], axis=1)
