"""The Fleming-Harrington G^rho log-rank family against R's ``survdiff(rho = )``.

The values in ``tests/data/survival/aft_reference.json`` (section ``fh_logrank``) were written by
``Rscript tests/_scripts/make_aft_reference.R`` (R survival 3.5.3); each entry records the R call
that produced it.  These tests need no R.

Tolerances: chi-square relative 1e-10, weighted observed and expected relative 1e-10 (measured
~1e-14).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from toolkit.analysis.survival.logrank import logrank_test
from toolkit.errors import AnalysisError

DATA = Path(__file__).resolve().parents[1] / "data" / "survival"
REL = 1e-10


@cache
def _reference() -> dict[str, Any]:
    with (DATA / "aft_reference.json").open() as fh:
        ref: dict[str, Any] = json.load(fh)
    return ref


@cache
def _frame(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / _reference()["datasets"][name])


def _cases() -> list[Any]:
    return [pytest.param(case, id=case["id"]) for case in _reference()["fh_logrank"]]


def test_reference_covers_rho_zero_half_one_plain_and_stratified() -> None:
    cases = _reference()["fh_logrank"]
    for rho in (0, 0.5, 1):
        assert any(c["rho"] == rho and c["strata"] is None for c in cases), rho
        assert any(c["rho"] == rho and c["strata"] is not None for c in cases), rho
    assert all(c["call"].startswith("fit <- survdiff(") for c in cases)


@pytest.mark.parametrize("case", _cases())
def test_fleming_harrington_matches_survdiff(case: dict[str, Any]) -> None:
    # R: fit <- survdiff(Surv(time, event) ~ <by> [+ strata(<strata>)], data, rho = <rho>);
    #    fit$obs, fit$exp (summed over strata), fit$chisq   (exact call in case["call"])
    frame = _frame(case["dataset"])
    if case["subset"]:
        frame = frame.query(case["subset"])
    res = logrank_test(frame, by=case["by"], strata=case["strata"], rho=case["rho"])
    assert list(res.groups) == case["groups"]
    assert res.df == case["df"]
    assert res.chisq == pytest.approx(case["chisq"], rel=REL)
    assert res.p == pytest.approx(case["p"], rel=1e-8)
    np.testing.assert_allclose(res.observed, case["observed"], rtol=REL)
    np.testing.assert_allclose(res.expected, case["expected"], rtol=REL)
    assert res.rho == case["rho"]
    assert ("rho" in res.to_dict()) is (case["rho"] != 0)


def test_rho_zero_keeps_the_plain_logrank_json() -> None:
    # the plain log-rank's results.json entry is what it always was: no "rho" key, same values
    lung = _frame("lung")
    plain = logrank_test(lung, by="sex").to_dict()
    assert logrank_test(lung, by="sex", rho=0.0).to_dict() == plain
    assert list(plain) == ["type", "chisq", "df", "p", "stratified", "groups"]


def test_peto_peto_weights_are_the_left_continuous_pooled_km() -> None:
    # Hand-computable: group a dies at 1 and 3, group b at 2 and 4 (no censoring, no ties).
    # Pooled KM just before 1, 2, 3, 4: 1, 3/4, 1/2, 1/4.  rho = 1:
    #   O_a = 1 + 1/2 = 3/2;  E_a = 1 * 2/4 + 3/4 * 1/3 + 1/2 * 1/2 + 1/4 * 0 = 1
    #   V = sum w^2 * Y_a Y_b / Y^2 (one death each time) = 1 * 4/16 + 9/16 * 2/9 + 1/4 * 1/4 = 7/16
    frame = pd.DataFrame({"time": [1, 3, 2, 4], "event": [1, 1, 1, 1], "g": ["a", "a", "b", "b"]})
    res = logrank_test(frame, by="g", rho=1.0)
    assert res.observed == pytest.approx((1.5, 1.0))
    assert res.expected == pytest.approx((1.0, 1.5))
    assert res.chisq == pytest.approx(0.5**2 / (7 / 16))


def test_negative_rho_is_refused() -> None:
    with pytest.raises(AnalysisError, match="rho must be a finite number >= 0"):
        logrank_test(_frame("lung"), by="sex", rho=-1.0)
