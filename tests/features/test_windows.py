"""Window features: declared and generated features against an independent pandas computation,
deterministic ties, the prevalence filter, names, and DuckDB/Spark parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from toolkit.cohort.run import run_cohort
from toolkit.cohort.spec import load_cohort
from toolkit.errors import SpecError
from toolkit.features.windows import FeatureSpec, compile_features, generated_features, window_features
from toolkit.registry import Registry

REPO = Path(__file__).resolve().parents[2]
GEN = {
    "generators": [
        {"prefixes": ["LOINC:", "ICD10:I"], "windows": [["-30d", "0d"], ["-365d", "0d"], ["all", "0d"]],
         "aggs": ["present", "count", "sum", "min", "max"]}
    ]
}  # fmt: skip


@pytest.fixture(scope="module")
def cohort_and_events(hf_registry: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    with Registry(hf_registry) as reg:
        cohort = run_cohort(load_cohort(REPO / "studies/hf_mortality/cohort.yaml"), reg).cohort
        events = reg.sql("SELECT person_id, time, code, numeric_value FROM events")
    return cohort, events


def _pandas_reference(
    cohort: pd.DataFrame, events: pd.DataFrame, lo: float | None, prefixes: tuple[str, ...]
):  # type: ignore[no-untyped-def]
    e = events[events["code"].str.startswith(prefixes)].merge(
        cohort[["person_id", "index_time"]], on="person_id"
    )
    days = (e["time"] - e["index_time"]).dt.total_seconds() / 86400
    e = e[(days <= 0) & ((days >= lo) if lo is not None else True)]
    g = e.groupby(["person_id", "code"])
    return pd.DataFrame(
        {"count": g.size(), "sum": g["numeric_value"].sum(min_count=1), "min": g["numeric_value"].min(),
         "max": g["numeric_value"].max()}
    )  # fmt: skip


def test_generated_features_equal_a_pandas_computation(hf_registry: Path, cohort_and_events) -> None:  # type: ignore[no-untyped-def]
    cohort, events = cohort_and_events
    spec = FeatureSpec.model_validate(GEN)
    with Registry(hf_registry) as reg:
        gen = generated_features(cohort, reg.con, spec)
    frame = gen.to_frame().set_index("person_id")
    assert gen.matrix.shape == (len(cohort), len(gen.names)) and gen.matrix.nnz > 0
    checked = 0
    for lo, label in ((-30, "m30d_0d"), (-365, "m365d_0d"), (None, "all_0d")):
        ref = _pandas_reference(cohort, events, lo, ("LOINC:", "ICD10:I"))
        for code in ("LOINC:2160-0", "ICD10:I48.91"):
            slug = code.lower().replace(":", "_").replace(".", "_").replace("-", "_")
            r = (
                ref.xs(code, level="code").reindex(frame.index)
                if code in ref.index.get_level_values(1)
                else None
            )
            if r is None:
                continue
            assert (frame[f"{slug}__{label}__count"].to_numpy() == r["count"].fillna(0).to_numpy()).all()
            assert (
                frame[f"{slug}__{label}__present"].to_numpy() == (r["count"].fillna(0) > 0).to_numpy()
            ).all()
            for agg in ("sum", "min", "max"):
                np.testing.assert_allclose(frame[f"{slug}__{label}__{agg}"], r[agg], rtol=1e-9)
            checked += 1
    assert checked >= 5
    assert gen.labels[gen.names.index("loinc_2160_0__m30d_0d__max")] == "LOINC:2160-0 in [-30d, 0d]: max"
    assert not any(n.startswith(("atc_", "visit_")) for n in gen.names)


def test_minimum_prevalence_drops_rare_codes(hf_registry: Path, cohort_and_events) -> None:  # type: ignore[no-untyped-def]
    cohort, _ = cohort_and_events
    with Registry(hf_registry) as reg:
        every = generated_features(cohort, reg.con, FeatureSpec.model_validate(GEN))
        common = generated_features(
            cohort, reg.con, FeatureSpec.model_validate({**GEN, "min_prevalence": 0.2})
        )
    assert set(common.names) < set(every.names)
    present = every.to_frame()[[n for n in every.names if n.endswith("__present")]]
    rare = present.columns[present.mean() < 0.2]
    assert len(rare) and not set(rare) & set(common.names)


def test_last_and_first_are_deterministic_under_ties() -> None:
    import duckdb

    t = pd.Timestamp("2020-01-01")
    con = duckdb.connect()
    events = pd.DataFrame(
        {"person_id": [1, 1, 1, 1], "time": [t - pd.Timedelta(days=2), t, t, t - pd.Timedelta(days=2)],
         "code": ["LOCAL:L"] * 4, "numeric_value": [9.0, 5.0, 3.0, 1.0]}
    )  # fmt: skip
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
        con.register("events_df", events.iloc[order])
        con.execute("CREATE OR REPLACE TABLE events AS SELECT * FROM events_df")
        spec = FeatureSpec.model_validate(
            {"windows": [{"name": "last", "codes": ["LOCAL:L"], "window": ["all", "0d"], "agg": "last"},
                         {"name": "first", "codes": ["LOCAL:L"], "window": ["all", "0d"], "agg": "first"}]}
        )  # fmt: skip
        out = window_features(pd.DataFrame({"person_id": [1], "index_time": [t]}), con, spec)
        assert (out["last"].item(), out["first"].item()) == (5.0, 1.0)


def test_spec_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match="'notes' is configured but not listed in modalities"):
        FeatureSpec.model_validate({"notes": {}})
    with pytest.raises(SpecError, match="duplicate feature names"):
        compile_features(
            FeatureSpec.model_validate(
                {
                    "windows": [{"name": "a", "codes": ["LOCAL:X"], "window": ["all", "0d"], "agg": "count"}]
                    * 2
                }
            )
        )


@pytest.mark.spark
def test_window_features_on_spark_equal_duckdb(
    hf_registry: Path, hf_lake: Path, spark, cohort_and_events
) -> None:  # type: ignore[no-untyped-def]
    from toolkit.cohort.spark import SparkBackend

    cohort, _ = cohort_and_events
    spec = FeatureSpec.model_validate(
        {
            **GEN,
            "windows": [
                {"name": "cr_last", "codes": ["LOINC:2160-0"], "window": ["-365d", "0d"], "agg": "last"},
                {"name": "cr_slope", "codes": ["LOINC:2160-0"], "window": ["all", "0d"], "agg": "slope"},
                {"name": "cr_mean", "codes": ["LOINC:2160-0"], "window": ["-365d", "-30d"], "agg": "mean"},
                {"name": "hf", "codes": ["ICD10:I50*"], "window": ["all", "0d"], "agg": "present"},
            ],
        }
    )
    with Registry(hf_registry) as reg:
        duck = window_features(cohort, reg.con, spec)
        duck_gen = generated_features(cohort, reg.con, spec).to_frame()
    with SparkBackend(spark, hf_lake) as backend:
        spark = window_features(cohort, backend, spec)
        spark_gen = generated_features(cohort, backend, spec).to_frame()
    pd.testing.assert_frame_equal(duck, spark, check_dtype=False, rtol=1e-9)
    pd.testing.assert_frame_equal(duck_gen, spark_gen, check_dtype=False, rtol=1e-9)
