from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit.analysis.survival.cox import fit_cox
from toolkit.cohort.run import run_cohort
from toolkit.cohort.spec import load_cohort
from toolkit.features.windows import FeatureSpec, feature_matrix, window_features
from toolkit.registry import Registry, check_registry
from toolkit.registry.synth.heart_failure import (
    TERM_DEFINITIONS,
    TRUE_LOG_HR,
    SynthConfig,
    synthesize,
    truth_paths,
)

REPO = Path(__file__).resolve().parents[2]


def test_deterministic_per_seed(tmp_path: Path) -> None:
    a = synthesize(tmp_path / "a.duckdb", SynthConfig(300, 2, 5))
    b = synthesize(tmp_path / "b.duckdb", SynthConfig(300, 2, 5))
    c = synthesize(tmp_path / "c.duckdb", SynthConfig(300, 2, 6))
    with Registry(a) as ra, Registry(b) as rb, Registry(c) as rc:
        assert ra.digest() == rb.digest() != rc.digest()
    tj, tp = truth_paths(a)
    truth = json.loads(tj.read_text())
    assert truth["log_hazard_ratios"] == TRUE_LOG_HR
    assert len(pd.read_parquet(tp)) == 300


def test_registry_is_clean(hf_registry: Path, tmp_path: Path) -> None:
    """Regression: visits once fell before an observation start that was not on the hour."""
    report = check_registry(synthesize(tmp_path / "s7.duckdb", SynthConfig(5000, 3, 7)))
    assert report.warnings == ()
    report = check_registry(hf_registry)
    assert report.warnings == ()
    assert set(report.namespaces) <= {"ATC", "DEATH", "ICD10", "LOINC", "SNOMED", "VISIT"}
    # realistic size: on the order of a hundred events per person
    assert 50 < report.row_counts["events"] / report.row_counts["person"] < 200


def _features() -> FeatureSpec:
    windows = []
    for term, d in TERM_DEFINITIONS.items():
        if "code" not in d:
            continue
        start, end = d["window"]  # type: ignore[misc]
        windows.append(
            {
                "name": term,
                "codes": [d["code"]],
                "agg": d["agg"],
                "window": [start if start == "all" else f"{start}d", f"{end}d"],
                **({"transform": d["transform"]} if "transform" in d else {}),
            }
        )
    return FeatureSpec.model_validate({"static": ["age", "sex"], "windows": windows})


def test_cox_recovers_true_log_hazard_ratios(tmp_path: Path) -> None:
    """20,000 persons: each true log HR inside its 95% CI for at least 90% of the terms.

    For one fixed data set this is deterministic; with 13 terms a correct model still misses
    two or more about 13% of the time, so the seed is the flagship's (7).  Unbiasedness across
    data sets was checked on 30 seeds (mean z-scores within +-0.4 of 0); the coverage over many
    simulated data sets is the statistics layer's own test.
    """
    path = synthesize(tmp_path / "hf20k.duckdb", SynthConfig(20_000, 3, 7))
    with Registry(path) as reg:
        cohort = run_cohort(load_cohort(REPO / "studies/hf_mortality/cohort.yaml"), reg)
        windows = window_features(cohort.cohort, reg.con, _features())
    x = feature_matrix(cohort.cohort, windows, ["age", "sex", "time", "event"])
    x["male"] = (x["sex"] == "M").astype(int)
    x["event"] = x["event"].astype(int)
    fit = fit_cox(x, covariates=list(TRUE_LOG_HR))
    covered = [
        t.term for t in fit.terms if t.coef - 1.96 * t.se <= TRUE_LOG_HR[t.term] <= t.coef + 1.96 * t.se
    ]
    assert len(covered) >= 0.9 * len(TRUE_LOG_HR), sorted(set(TRUE_LOG_HR) - set(covered))
    # and the null effect is not significant while the strong ones are
    p = {t.term: t.p for t in fit.terms}
    assert p["log_nt_probnp"] < 1e-10 and p["age"] < 1e-10
    assert np.isfinite(fit.concordance) and fit.concordance > 0.65
