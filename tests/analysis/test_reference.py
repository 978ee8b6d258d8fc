"""Reference distributions: every bin holds k persons, every value has one bin, nothing leaks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.analysis.predict.reference import (
    ReferenceDistributions,
    bin_index,
    input_reference,
    reference_distributions,
)
from toolkit.disclosure import DisclosurePolicy

K = DisclosurePolicy()


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(-1e4, 1e4, allow_nan=False)), min_size=0, max_size=400))
def test_every_bin_holds_k_persons_and_every_value_has_exactly_one_bin(values: list[float | None]) -> None:
    col = pd.Series([np.nan if v is None else v for v in values], dtype=float)
    ref = input_reference("x", col, policy=K)
    observed = col.dropna().to_numpy()
    if ref.bins:
        assert min(b.n for b in ref.bins) >= K.min_cell
        assert all(bin_index(ref, v) is not None for v in observed)
        assert ref.bins[0].lower is None and ref.bins[-1].upper is None  # extremes never released
        if not ref.rounded:
            assert sum(b.n for b in ref.bins) == len(observed)
    else:
        assert len(observed) < K.min_cell or len(observed) == 0
    assert ref.missing is None or ref.missing == 0 or ref.missing >= K.min_cell


def test_cut_points_are_rounded_deciles_and_never_a_persons_extreme(rng: np.random.Generator) -> None:
    values = pd.Series(rng.normal(138, 3.5, 2000))
    ref = input_reference("sodium", values, policy=K)
    uppers = [b.upper for b in ref.bins[:-1]]
    assert len(ref.bins) == 10 and all(u == float(f"{u:.3g}") for u in uppers)
    assert values.max() not in uppers and values.min() not in [b.lower for b in ref.bins]


def test_a_small_missing_count_is_suppressed_and_the_bins_cannot_give_it_away(
    rng: np.random.Generator,
) -> None:
    values = pd.Series(np.r_[rng.normal(0, 1, 997), [np.nan] * 3])
    ref = input_reference("lab", values, policy=K)
    assert ref.missing is None and ref.imputed is None and ref.rounded
    assert all(b.n % K.min_cell == 0 for b in ref.bins)  # n - sum(bins) is not the missing count
    assert ref.rate("missing", min_cell=10) == (1 / 1000, 9 / 1000)


def test_small_levels_are_merged_and_booleans_get_two_bins(rng: np.random.Generator) -> None:
    levels = pd.Series(["F"] * 500 + ["M"] * 493 + ["X"] * 7)
    ref = input_reference("sex", levels, policy=K)
    assert [b.levels for b in ref.bins] == [["F"], ["M", "X"]]
    assert bin_index(ref, "X") == bin_index(ref, "M") == 1 and bin_index(ref, "unknown") is None
    flag = input_reference("diabetes", pd.Series((rng.random(800) < 0.3).astype(int)), policy=K)
    assert [(b.lower, b.upper) for b in flag.bins] == [(None, 0.0), (0.0, None)]
    assert bin_index(flag, 0.0) == 0 and bin_index(flag, 1.0) == 1 and bin_index(flag, None) is None


def test_a_rare_flag_is_one_bin_not_a_small_count() -> None:
    ref = input_reference("rare", pd.Series([0] * 995 + [1] * 5), policy=K)
    assert len(ref.bins) == 1 and ref.bins[0].n == 1000


def test_out_of_range_counts_the_persons_outside_the_training_range(rng: np.random.Generator) -> None:
    values = pd.Series(rng.normal(0, 1, 1000))
    lo, hi = values.quantile(0.01), values.quantile(0.99)
    ref = input_reference("x", values, policy=K, training_range=(lo, hi))
    assert ref.out_of_range == int(((values < lo) | (values > hi)).sum())


def test_reference_distributions_round_trip_and_hold_the_risk(rng: np.random.Generator) -> None:
    x = pd.DataFrame({"age": rng.normal(70, 10, 600).round(), "sex": rng.choice(["F", "M"], 600)})
    data = reference_distributions(x, rng.uniform(0.01, 0.9, 600), policy=K)
    ref = ReferenceDistributions.model_validate(data)
    assert [i.name for i in ref.inputs] == ["age", "sex"] and ref.risk.name == "risk" and ref.n == 600
    assert ref.input("age") is not None and ref.input("nope") is None
    assert ref.risk.shares.sum() == pytest.approx(1.0)


def test_with_disclosure_control_off_bins_may_be_small() -> None:
    ref = input_reference("x", pd.Series(np.arange(30.0)), policy=DisclosurePolicy(enabled=False))
    assert len(ref.bins) == 10 and sum(b.n for b in ref.bins) == 30
