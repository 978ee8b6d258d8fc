"""Durations in specs: ``5y``, ``6mo``, ``2w``, ``30d``, ``12h`` read with documented day lengths,
anything else refused when the spec is loaded, naming the key; a horizon beyond every person's
follow-up is a warning before anything is computed."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolkit.cohort.compile import compile_cohort
from toolkit.cohort.spec import horizon_column
from toolkit.errors import SpecWarning, StudySpecError
from toolkit.specs import UNIT_DAYS, parse_duration
from toolkit.study.plan import plan_study

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("written", "days"),
    [
        ("5y", 1826.25),  # a Julian year: 365.25 days
        ("1y", 365.25),
        ("6mo", 182.625),  # a month: 365.25 / 12 = 30.4375 days
        ("1mo", 30.4375),
        ("2w", 14.0),
        ("30d", 30.0),
        ("-365d", -365.0),
        ("12h", 0.5),
        (" 0d ", 0.0),
        ("1.5d", 1.5),
        (90, 90.0),
        (0.25, 0.25),
    ],
)
def test_durations_read_with_documented_day_lengths(written: Any, days: float) -> None:
    assert parse_duration(written) == pytest.approx(days)


def test_the_documented_day_lengths() -> None:
    assert UNIT_DAYS == {"y": 365.25, "mo": 30.4375, "w": 7.0, "d": 1.0, "h": 1 / 24}


@pytest.mark.parametrize(
    "written", ["5 years", "5yr", "5Y", "y5", "1.2.3d", "", "d", "5m", True, float("nan")]
)
def test_anything_else_is_refused(written: Any) -> None:
    with pytest.raises(ValueError, match="expected a"):
        parse_duration(written)


def test_label_columns_are_sql_names() -> None:
    assert horizon_column("365d") == "label_365d"
    assert horizon_column("1826d") == "label_1826d"
    assert horizon_column("5y") == "label_5y"
    assert horizon_column("6mo") == "label_6mo"
    assert horizon_column(182.5) == "label_182_5d"


# --- every duration key of study.yaml, checked at load ---------------------------------------
GBSG2 = REPO / "studies" / "gbsg2_recurrence" / "study.yaml"
HF = REPO / "studies" / "hf_mortality" / "study.yaml"


def _write(tmp_path: Path, study: dict[str, Any]) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study), encoding="utf-8")
    return path


def _gbsg2() -> dict[str, Any]:
    return yaml.safe_load(GBSG2.read_text(encoding="utf-8"))


def _hf(tmp_path: Path) -> dict[str, Any]:
    study = yaml.safe_load(HF.read_text(encoding="utf-8"))
    study["cohort"] = yaml.safe_load((HF.parent / "cohort.yaml").read_text(encoding="utf-8"))
    return study


def _set(study: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(study)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (("models", 0, "horizon"), "models[0].horizon"),
        (("cohort", "outcome", "horizons", 0), "cohort.outcome.horizons[0]"),
        (("cohort", "entry", "prior_observation"), "cohort.entry.prior_observation"),
        (("cohort", "entry", "min_gap"), "cohort.entry.min_gap"),
        (("cohort", "outcome", "time_at_risk", "start"), "cohort.outcome.time_at_risk.start"),
        (("cohort", "outcome", "washout"), "cohort.outcome.washout"),
        (("analyses", 1, "times", 0), "analyses[1].kaplan_meier.times[0]"),
    ],
)
def test_a_bad_duration_in_study_yaml_is_refused_at_load_naming_the_key(
    tmp_path: Path, path: tuple[Any, ...], key: str
) -> None:
    path_ = _write(tmp_path, _set(_gbsg2(), path, "5 years"))
    with pytest.raises(StudySpecError) as err:
        plan_study(path_)
    assert f"study.yaml: {key}: expected a" in str(err.value)


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (("features", "windows", 0, "window", 0), "features.windows[0].window.start"),
        (("features", "notes", "windows", 0, 1), "features.notes.windows[0].end"),
        (("features", "images", "windows", 0, 0), "features.images.windows[0].start"),
        (("analyses", 2, "horizon"), "analyses[2].ablation.horizon"),
    ],
)
def test_feature_windows_and_analysis_horizons_too(tmp_path: Path, path: tuple[Any, ...], key: str) -> None:
    path_ = _write(tmp_path, _set(_hf(tmp_path), path, "1 yr"))
    with pytest.raises(StudySpecError) as err:
        plan_study(path_)
    assert f"{key}: expected a duration" in str(err.value)


def test_horizons_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(StudySpecError, match=r"models\[1\]\.horizon: expected a positive duration"):
        plan_study(_write(tmp_path, _set(_gbsg2(), ("models", 1, "horizon"), "0d")))


def test_years_and_months_run_through_to_the_label_columns(tmp_path: Path, data_dir: Path) -> None:
    import numpy as np

    from toolkit.cohort.run import DuckDBBackend, execute
    from toolkit.registry.store import Registry
    from toolkit.study.runner import resolve_registry

    study = _set(_gbsg2(), ("models", 0, "horizon"), "5y")
    study = _set(study, ("cohort", "outcome", "horizons"), ["5y", "6mo"])
    study = _set(study, ("analyses", 1, "times"), ["1y", "3y", "5y"])
    plan = plan_study(_write(tmp_path, study))
    assert plan.spec.models[0].horizon_days == 1826.25
    assert plan.spec.analyses[1].times == [365.25, 1095.75, 1826.25]  # type: ignore[union-attr]
    with Registry(resolve_registry(plan.spec, plan.base)[0]) as reg:
        backend = DuckDBBackend(reg)
        compiled = compile_cohort(plan.cohort, attributes=backend.attributes())
        cohort = execute(compiled, backend).cohort
    assert compiled.horizons == (("label_5y", 1826.25), ("label_6mo", 182.625))
    for column, days in compiled.horizons:
        t, e = cohort["time"].to_numpy(float), cohort["event"].to_numpy(int)
        expected = np.where((e == 1) & (t <= days), 1.0, np.where(t >= days, 0.0, np.nan))
        np.testing.assert_array_equal(cohort[column].to_numpy(float), expected)


def test_a_horizon_beyond_all_follow_up_warns_before_any_analysis(tmp_path: Path, data_dir: Path) -> None:
    from toolkit.registry.store import Registry
    from toolkit.study.data import build_study_data
    from toolkit.study.runner import resolve_registry

    study = _set(_gbsg2(), ("models", 1, "horizon"), "20y")  # GBSG2 follows women for under 8 years
    plan = plan_study(_write(tmp_path, study))
    reg_path, _ = resolve_registry(plan.spec, plan.base)
    with Registry(reg_path) as reg, pytest.warns(SpecWarning) as caught:
        build_study_data(plan, reg)
    messages = [str(w.message) for w in caught]
    assert messages == [
        f"{plan.source}: models[1].horizon: 7305 days lies beyond the follow-up of every person in the "
        "cohort; estimates at this time rest on no one observed that long"
    ]
    plan = plan_study(GBSG2)  # the shipped study: no warning
    with Registry(reg_path) as reg, warnings.catch_warnings():
        warnings.simplefilter("error", SpecWarning)
        build_study_data(plan, reg)
