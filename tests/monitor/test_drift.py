"""PSI and binned KS: against their definitions by hand and against scipy's two-sample KS."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp

from toolkit.errors import AnalysisError
from toolkit.monitor.drift import bin_counts, binned_ks, psi


def test_psi_by_hand() -> None:
    # p = (1/2, 1/2), q = (1/4, 3/4): (1/4 - 1/2) ln(1/2) + (3/4 - 1/2) ln(3/2)
    expected = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    assert psi(np.array([0.5, 0.5]), np.array([250.0, 750.0]), pseudo=0.0) == pytest.approx(
        expected, rel=1e-12
    )
    assert psi(np.array([0.5, 0.5]), np.array([500.0, 500.0]), pseudo=0.0) == 0.0


def test_psi_of_an_empty_window_bin_is_finite() -> None:
    value = psi(np.array([0.2, 0.3, 0.5]), np.array([0.0, 30.0, 70.0]))
    assert math.isfinite(value) and value > 0


def test_drift_needs_matching_bins_and_calls() -> None:
    with pytest.raises(AnalysisError, match="3 reference bins"):
        psi(np.array([0.2, 0.3, 0.5]), np.array([1.0, 2.0]))
    with pytest.raises(AnalysisError, match="no calls"):
        binned_ks(np.array([0.5, 0.5]), np.array([0.0, 0.0]))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=5, max_size=200),
    st.lists(st.integers(0, 5), min_size=5, max_size=200),
)
def test_binned_ks_equals_the_two_sample_ks_statistic_on_bin_indices(a: list[int], b: list[int]) -> None:
    """With the reference given by sample ``a``'s shares, the binned KS is scipy's D on the bins."""
    ref = bin_counts(np.asarray(a), 6)
    ours = binned_ks(ref / ref.sum(), bin_counts(np.asarray(b), 6))
    # method="asymp": only the statistic is compared (the exact p-value can fail to converge)
    assert ours == pytest.approx(ks_2samp(a, b, method="asymp").statistic, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 500), min_size=2, max_size=12), st.integers(0, 2**32 - 1))
def test_psi_is_non_negative_and_zero_only_for_the_same_shares(ref: list[int], seed: int) -> None:
    p = np.asarray(ref, float) / sum(ref)
    q = np.random.default_rng(seed).integers(0, 50, len(ref)).astype(float)
    assert psi(p, q, pseudo=0.5) >= 0
    assert psi(p, p * 1000, pseudo=0.0) == pytest.approx(0.0, abs=1e-12)
