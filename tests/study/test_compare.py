"""`regent runs compare` / compare_runs: spec diff, cohort, metric deltas with CIs."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import pytest
import yaml
from scipy import stats
from typer.testing import CliRunner

from toolkit.errors import RunNotFoundError
from toolkit.study.results import CodeVersion, CohortInfo, ModelResult, RegistryInfo, StudyResults
from toolkit.study.runner import run_study
from toolkit.tracking.compare import RunInfo, compare, compare_runs
from toolkit.tracking.mlflow_tracker import MLflowTracker

REPO = Path(__file__).resolve().parents[2]


def _results(c_folds: list[float], *, n: int = 500, seed: int = 1) -> StudyResults:
    """The parts of results that a comparison reads (the rest is not constructed)."""
    k = len(c_folds)
    mean = sum(c_folds) / k
    sd = math.sqrt(sum((c - mean) ** 2 for c in c_folds) / (k - 1))
    half = stats.t.ppf(0.975, k - 1) * sd / math.sqrt(k)
    metrics = {"c_harrell_mean": mean, "c_harrell_lower": mean - half, "c_harrell_upper": mean + half}
    model = ModelResult.model_construct(metrics=metrics, folds=[{"c_harrell": c} for c in c_folds])
    return StudyResults.model_construct(
        seed=seed,
        spec_hash="s",
        registry=RegistryInfo(source="dataset:x", digest="sha256:ab"),
        code_version=CodeVersion(git_sha="abc", git_dirty="false"),
        cohort=CohortInfo.model_construct(n=n, events=100),
        models={"m": model},
    )


def test_same_folds_give_a_paired_interval_over_folds() -> None:
    a = _results([0.70, 0.72, 0.68, 0.71, 0.69])
    b = _results([0.72, 0.73, 0.70, 0.74, 0.70])
    spec_a = "name: s\nmodels:\n- name: m\n  horizon: 365d\n- name: x\n  horizon: 90d\n"
    spec_b = "name: s\nmodels:\n- name: x\n  horizon: 90d\n- name: m\n  horizon: 730d\n"
    cmp = compare(RunInfo("A", a, spec_a), RunInfo("B", b, spec_b))
    (d,) = cmp.metrics
    diffs = [0.02, 0.01, 0.02, 0.03, 0.01]
    half = stats.t.ppf(0.975, 4) * stats.tstd(diffs) / math.sqrt(5)
    assert d.method == "paired over folds"
    assert d.delta == pytest.approx(0.018) and d.delta_ci == pytest.approx((0.018 - half, 0.018 + half))
    assert d.delta_ci[0] > 0  # a consistent gain shows, though the two runs' own CIs overlap
    assert d.a_ci[1] > d.b_ci[0]
    # list items are matched by name: reordering is no change, the horizon is
    assert cmp.changed == [("models[m].horizon", "365d", "730d")]
    text = cmp.to_text()
    assert "models[m].horizon: 365d -> 730d" in text and "paired over folds" in text


def test_a_different_cohort_gives_an_unpaired_interval() -> None:
    a = _results([0.70, 0.72, 0.68, 0.71, 0.69])
    b = _results([0.72, 0.73, 0.70, 0.74, 0.70], n=450)
    (d,) = compare(RunInfo("A", a, ""), RunInfo("B", b, "")).metrics
    ma, mb = a.models["m"].metrics, b.models["m"].metrics
    t = stats.t.ppf(0.975, 4)
    se = math.hypot(
        (ma["c_harrell_upper"] - ma["c_harrell_lower"]) / (2 * t),
        (mb["c_harrell_upper"] - mb["c_harrell_lower"]) / (2 * t),
    )
    assert d.method == "unpaired"
    assert d.delta_ci == pytest.approx((d.delta - 1.959964 * se, d.delta + 1.959964 * se))


def test_compare_two_tracked_runs_from_the_cli(gbsg2_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Run B changes one model and drops the other; the comparison reads both from the MLflow store."""
    from toolkit.cli.main import app

    run_a, mlruns, _ = gbsg2_run
    d = tmp_path / "study"
    shutil.copytree(REPO / "studies/gbsg2_recurrence", d)
    data = yaml.safe_load((d / "study.yaml").read_text())
    data["models"] = [{**data["models"][0], "log": ["positive_nodes"]}]
    # another name: its own experiment and registered model, so run A's alias stays where it is
    data["name"] = "gbsg2_variant"
    data["validation"] = {"cv_folds": 5, "bootstrap": 20, "optimism_bootstrap": 0}
    (d / "study.yaml").write_text(yaml.safe_dump(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_b = run_study(d, out=tmp_path / "out", tracker=MLflowTracker(mlruns))
    res = CliRunner().invoke(
        app, ["runs", "compare", run_a.run_id, run_b.run_id, "--mlruns", str(mlruns), "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert {"key": "models[cox_5y].log", "a": [], "b": ["positive_nodes"]} in out["spec_changes"]
    assert out["models_only_in_a"] == ["xgb_5y"] and out["cohort"]["n"] == [686, 686]
    deltas = {(m["model"], m["metric"]): m for m in out["metrics"]}
    c = deltas[("cox_5y", "c_harrell")]
    assert c["method"] == "paired over folds" and c["delta_ci"][0] <= c["delta"] <= c["delta_ci"][1]
    assert c["delta"] == pytest.approx(
        run_b.results.models["cox_5y"].metrics["c_harrell_mean"]
        - run_a.results.models["cox_5y"].metrics["c_harrell_mean"]
    )
    text = CliRunner().invoke(app, ["runs", "compare", run_a.run_id, run_b.run_id, "--mlruns", str(mlruns)])
    assert "cox_5y" in text.output and "delta" in text.output
    # the same in Python, for a notebook
    cmp = compare_runs(run_a.run_id, run_b.run_id, mlruns=mlruns)
    assert "B − A (95% CI)" in cmp._repr_html_()
    assert compare_runs(run_a, run_b).changed == cmp.changed  # StudyRun objects work too


def test_unknown_run_names_the_store(gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    run, mlruns, _ = gbsg2_run
    with pytest.raises(RunNotFoundError, match=r"run 'nope' is not in the MLflow store"):
        compare_runs(run.run_id, "nope", mlruns=mlruns)
