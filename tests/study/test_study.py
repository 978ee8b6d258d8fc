from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from toolkit.errors import StudySpecError
from toolkit.study.runner import run_study
from toolkit.study.spec import load_study
from toolkit.tracking.mlflow_tracker import MLflowTracker, configure

REPO = Path(__file__).resolve().parents[2]


def _copy_study(tmp_path: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    d = tmp_path / "study"
    shutil.copytree(REPO / "studies/gbsg2_recurrence", d)
    data = yaml.safe_load((d / "study.yaml").read_text())
    edit(data)
    (d / "study.yaml").write_text(yaml.safe_dump(data))
    return d


def test_misspelled_key_names_the_path(tmp_path: Path) -> None:
    d = _copy_study(tmp_path, lambda s: s["analyses"][1].update({"timez": [1]}))
    with pytest.raises(StudySpecError, match=r"study.yaml: analyses\[1\].kaplan_meier.timez: unknown key"):
        load_study(d)
    d = _copy_study(tmp_path / "b", lambda s: s.update({"modles": []}))
    with pytest.raises(StudySpecError, match=r"modles: unknown key"):
        load_study(d)


def test_unknown_column_fails_before_computing(tmp_path: Path, data_dir: Path) -> None:
    d = _copy_study(tmp_path, lambda s: s["analyses"][1].update({"by": "hormone_therapie"}))
    out = tmp_path / "out"
    with pytest.raises(
        StudySpecError,
        match=r"analyses\[1\].by: unknown column 'hormone_therapie'; available: .*hormone_therapy",
    ):
        run_study(d, out=out)
    assert not out.exists()
    d = _copy_study(tmp_path / "m", lambda s: s["models"][0].update({"features": ["tumour_size"]}))
    with pytest.raises(StudySpecError, match=r"models\[0\].features\[0\]: unknown feature 'tumour_size'"):
        run_study(d, out=out)


def test_results_json_has_the_documented_shape(gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    run, _, root = gbsg2_run
    r = run.results.to_json()
    assert {"study", "mlflow_run_id", "registry", "cohort", "analyses", "models"} <= set(r)
    assert r["registry"]["digest"].startswith("sha256:")
    assert r["cohort"]["n"] == 686 and r["cohort"]["events"] == 299
    assert [a["step"] for a in r["cohort"]["attrition"]][:2] == ["registry persons", "entry event"]
    km = r["analyses"]["km_hormone_therapy"]
    assert km["type"] == "kaplan_meier" and {g["group"] for g in km["groups"]} == {"no", "yes"}
    assert km["logrank"]["df"] == 1 and km["logrank"]["chisq"] == pytest.approx(
        8.5648, rel=1e-4
    )  # R survdiff
    cox = r["analyses"]["cox_adjusted"]
    assert cox["type"] == "cox" and cox["ties"] == "efron"
    assert {c["term"] for c in cox["coefficients"]} >= {"hormone_therapy=yes", "tumor_grade=III"}
    for name in ("cox_5y", "xgb_5y"):
        m = r["models"][name]["metrics"]
        assert (
            0.6 < m["c_harrell_mean"] < 0.75
            and m["c_harrell_lower"] < m["c_harrell_mean"] < m["c_harrell_upper"]
        )
    assert (root / "out" / "report.html").read_text().count("<img") >= 3
    deciles = r["models"]["cox_5y"]["calibration_deciles"]
    assert len(deciles) == 10 and all(0 < d["observed_risk"] < 1 for d in deciles)  # risks, not counts


def test_mlflow_store_holds_the_run(gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    run, mlruns, _ = gbsg2_run
    configure(mlruns)
    client = MlflowClient()
    parent = client.get_run(run.run_id)
    assert parent.info.status == "FINISHED"
    assert {"spec_hash", "registry_digest", "cohort_size", "git_sha", "git_dirty"} <= set(parent.data.params)
    assert "cox_5y.c_harrell_mean" in parent.data.metrics
    assert parent.inputs.dataset_inputs, "dataset not logged"
    arts = {a.path for a in client.list_artifacts(run.run_id)}
    assert {"results.json", "report.html", "study.yaml", "attrition.csv"} <= arts
    assert {"km_km_hormone_therapy.png", "forest_cox_adjusted.png", "calibration_cox_5y.png"} <= arts  # plots
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run.run_id}'")
    assert {c.info.run_name for c in children} == {"cox_5y", "xgb_5y"}
    folds = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{children[0].info.run_id}'"
    )
    assert len(folds) == 5
    mv = client.get_model_version_by_alias("gbsg2_recurrence.cox_5y", "candidate")
    assert mv.run_id in {c.info.run_id for c in children}


def test_rerun_reuses_cache_and_model_change_recomputes_only_the_model(
    tmp_path: Path, data_dir: Path
) -> None:
    d = _copy_study(tmp_path, lambda s: s.update({"models": s["models"][:1]}))
    first = run_study(d, out=tmp_path / "out")
    assert {"cohort", "features", "model:cox_5y"} <= set(first.computed)
    again = run_study(d, out=tmp_path / "out")
    assert again.computed == []
    assert again.results == first.results
    data = yaml.safe_load((d / "study.yaml").read_text())
    data["models"][0]["horizon"] = "1095d"
    (d / "study.yaml").write_text(yaml.safe_dump(data))
    third = run_study(d, out=tmp_path / "out")
    assert third.computed == ["model:cox_5y"]


def test_failed_step_marks_the_run_failed_and_resume_matches(tmp_path: Path, data_dir: Path) -> None:
    d = _copy_study(tmp_path, lambda s: s.update({"models": s["models"][:1]}))
    tracker = MLflowTracker(tmp_path / "mlruns")
    with pytest.raises(RuntimeError, match="injected"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_study(d, out=tmp_path / "out", tracker=tracker, fail_after="features")
    failed = MlflowClient().get_run(str(tracker.run_id))
    assert failed.info.status == "FAILED" and "injected" in failed.data.tags["regent.error"]
    assert mlflow.active_run() is None
    resumed = run_study(d, out=tmp_path / "out")
    assert "cohort" not in resumed.computed and "features" not in resumed.computed
    fresh = run_study(d, out=tmp_path / "fresh")
    assert resumed.results.models == fresh.results.models
