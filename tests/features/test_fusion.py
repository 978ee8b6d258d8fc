"""Fusion and the modality ablation on the flagship study's registry, against the known truth."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from toolkit.analysis.ablation import informative, run_ablation
from toolkit.cohort.run import run_cohort
from toolkit.features.fusion import ablation_sets, build_features, feature_groups
from toolkit.registry import Registry
from toolkit.registry.synth.heart_failure import truth_paths
from toolkit.study.kinds.ablation import AblationAnalysis
from toolkit.study.runner import resolve_registry
from toolkit.study.spec import load_study

REPO = Path(__file__).resolve().parents[2]
NOTE_TERMS = ["prior_cardiac_arrest", "cardiogenic_shock", "prior_cabg"]
IMAGE_TERMS = ["stenosis_excess"]


@pytest.mark.slow
def test_hf_mortality_ablation_gains_match_the_truth(data_dir: Path) -> None:
    """The study's ablation (5,000 persons, seed 7): notes and images each raise the CV C-index,
    and by as much as the true note-only / image-only facts do (the oracle, from the truth table).

    Margins: each gain's paired 95% CI excludes 0, and |extracted gain - oracle gain| < 0.01
    (the extractors recover the facts with F1 ~ 1 and stenosis MAE ~ 1.5 points; the true gains
    are ~0.02-0.03, so a model that missed the decoys or the images would fall outside)."""
    spec, base = load_study(REPO / "studies/hf_mortality")
    registry, _ = resolve_registry(spec, base)
    with Registry(registry) as reg:
        cohort = run_cohort(spec.cohort, reg).cohort
        fused = build_features(cohort, reg, spec.features, base=base)
    a = next(x for x in spec.analyses if isinstance(x, AblationAnalysis))
    opts = {"horizon": a.horizon_days, "folds": a.folds, "seed": a.seed, "params": a.params, "log": a.log}
    sets = ablation_sets(feature_groups(fused.frame, a.structured))
    got = run_ablation(fused.frame, sets, **opts).table.set_index("set")  # type: ignore[arg-type]
    truth = pd.read_parquet(truth_paths(registry)[1])[["person_id", *NOTE_TERMS, *IMAGE_TERMS]]
    oracle_frame = fused.frame.merge(truth, on="person_id", how="left")
    s = list(a.structured or [])
    oracle_sets = {
        "structured": s,
        "structured+notes": s + NOTE_TERMS,
        "structured+images": s + IMAGE_TERMS,
        "all": s + NOTE_TERMS + IMAGE_TERMS,
    }
    oracle = run_ablation(oracle_frame, oracle_sets, **opts).table.set_index("set")  # type: ignore[arg-type]
    for name in ("structured+notes", "structured+images", "all"):
        assert got.loc[name, "gain_lower"] > 0, got.to_string()
        assert abs(got.loc[name, "gain"] - oracle.loc[name, "gain"]) < 0.01, (
            got.to_string(),
            oracle.to_string(),
        )
    assert got.loc["all", "gain"] > max(
        got.loc["structured+notes", "gain"], got.loc["structured+images", "gain"]
    )
    # the data-quality table counted the planted bad input, by modality
    counts = fused.quality_counts().set_index(["modality", "issue"])["count"]
    assert counts.loc[("notes", "empty")] > 0 and counts.loc[("images", "missing_file")] > 0


def test_informative_drops_constant_and_duplicate_columns() -> None:
    frame = pd.DataFrame(
        {"a": [1, 2, 3], "b": [1, 1, 1], "c": [1, 2, 3], "d": ["M", "F", "M"], "e": [None, None, None]}
    )
    assert informative(list(frame.columns), frame) == ["a", "d"]


def test_feature_groups_fall_back_to_prefixes() -> None:
    frame = pd.DataFrame(columns=["age", "note_mi_present", "img_stenosis_worst", "tfidf_edema"])
    groups = feature_groups(frame, ["age"])
    assert groups == {
        "notes": ["note_mi_present", "tfidf_edema"],
        "images": ["img_stenosis_worst"],
        "structured": ["age"],
    }
    assert list(ablation_sets(groups)) == ["structured", "structured+notes", "structured+images", "all"]
    assert list(ablation_sets({"structured": ["age"]})) == ["structured"]
