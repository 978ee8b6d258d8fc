"""Window features over coded events and labs, computed in SQL on the registry backend.

For each cohort row (person, index time) and each declared feature, aggregate the matching
events in a window relative to index: present, count, last, first, mean, min, max, sum, slope.
One query with conditional aggregation: the events table is scanned once for all features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from toolkit.cohort.criteria import Context, code_predicate, days_between, shift
from toolkit.cohort.spec import CodeFilter, Window
from toolkit.errors import SpecError
from toolkit.registry import schema as S
from toolkit.specs import Frozen

Agg = Literal["present", "count", "last", "first", "mean", "min", "max", "sum", "slope"]
STATIC_BUILTINS = ("age", "sex", "site_id")


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


class FeatureSpec(Frozen):
    static: list[str] = Field(default_factory=lambda: ["age", "sex"])
    windows: list[WindowFeature] = Field(default_factory=list)


_INDEX = "_feature_index"


def _agg_sql(f: WindowFeature, cond: str) -> str:
    v = "e.numeric_value"
    filt = f"FILTER (WHERE {cond})"
    num_filt = f"FILTER (WHERE {cond} AND {v} IS NOT NULL)"
    t = days_between("x.index_time", "e.time")
    match f.agg:
        case "present":
            return f"CAST(COUNT(*) {filt} > 0 AS INTEGER)"
        case "count":
            return f"COUNT(*) {filt}"
        case "last":
            return f"arg_max({v}, e.time) {num_filt}"
        case "first":
            return f"arg_min({v}, e.time) {num_filt}"
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
    raise AssertionError(f.agg)


def compile_features(
    spec: FeatureSpec, concept_sets: dict[str, list[str]] | None = None, *, source: str = "features"
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
    any_code = " OR ".join(f"({code_predicate(f, ctx)})" for f in spec.windows)
    earliest = [f.window.start_days for f in spec.windows]
    lo = None if any(s is None for s in earliest) else min(s for s in earliest if s is not None)
    hi = max(f.window.end_days for f in spec.windows)
    join = ["e.person_id = x.person_id", f"e.time <= {shift('x.index_time', hi)}"]
    if lo is not None:
        join.append(f"e.time >= {shift('x.index_time', lo)}")
    cols = []
    for f in spec.windows:
        cond = [f"({code_predicate(f, ctx)})", f"e.time <= {shift('x.index_time', f.window.end_days)}"]
        if f.window.start_days is not None:
            cond.append(f"e.time >= {shift('x.index_time', f.window.start_days)}")
        agg = _agg_sql(f, " AND ".join(cond))
        if f.agg in ("present", "count"):
            agg = f"COALESCE({agg}, 0)"
        cols.append(f"{agg} AS {f.name}")
    return (
        f"SELECT x.person_id, x.index_time, {', '.join(cols)} FROM {_INDEX} x "
        f"LEFT JOIN (SELECT * FROM events e0 WHERE {any_code.replace('e.', 'e0.')}) e ON {' AND '.join(join)} "
        "GROUP BY x.person_id, x.index_time"
    )


def window_features(
    cohort: pd.DataFrame,
    con: object,
    spec: FeatureSpec,
    *,
    concept_sets: dict[str, list[str]] | None = None,
    source: str = "features",
) -> pd.DataFrame:
    """Compute window features on a DuckDB connection for the cohort's index rows.

    Returns the cohort's (person_id, index_time) with one column per feature, in cohort order.
    """
    import duckdb

    assert isinstance(con, duckdb.DuckDBPyConnection)
    keys = cohort[[S.PERSON_ID, S.INDEX_TIME]].drop_duplicates()
    con.register("_feature_index_df", keys)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_INDEX} AS SELECT * FROM _feature_index_df")
    finally:
        con.unregister("_feature_index_df")
    out = con.execute(compile_features(spec, concept_sets, source=source)).df()
    for f in spec.windows:
        if f.transform is not None:
            x = out[f.name].astype(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[f.name] = np.log(x.where(x > 0)) if f.transform == "log" else np.log1p(x.where(x > -1))
    merged = cohort[[S.PERSON_ID, S.INDEX_TIME]].merge(out, on=[S.PERSON_ID, S.INDEX_TIME], how="left")
    return merged


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
