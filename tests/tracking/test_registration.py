"""MLflow as data scientists expect it, on a real store (SQLite under a temporary mlruns/): runs
named by study and spec hash, no new model version for an unchanged rerun (the model artifact's
content hash decides), versions that describe themselves (description, tags with the study, the
cohort spec hash, key metrics with CIs and counts, the feature list), and an experiment that is
a machine-learning experiment (its UI opens on the runs) with a description."""

from __future__ import annotations

import hashlib
import shutil
import warnings
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from toolkit.study.plan import plan_study
from toolkit.study.registration import cohort_hash
from toolkit.study.runner import run_study
from toolkit.tracking.mlflow_tracker import MLflowTracker, configure, runs_url

CHROMIUM = Path("/usr/bin/chromium")

REPO = Path(__file__).resolve().parents[2]


def _study(tmp_path: Path, penalty: float | None = None) -> Path:
    """GBSG2 with its Cox model only (and optionally a ridge penalty: a changed hyperparameter)."""
    d = tmp_path / ("study" if penalty is None else f"study-penalty-{penalty:g}")
    shutil.copytree(REPO / "studies/gbsg2_recurrence", d, dirs_exist_ok=True)
    data = yaml.safe_load((REPO / "studies/gbsg2_recurrence/study.yaml").read_text())
    data["models"] = data["models"][:1]
    data["validation"].update({"bootstrap": 20, "optimism_bootstrap": 0})
    if penalty is not None:
        data["models"][0]["params"] = {"penalty": penalty}
    (d / "study.yaml").write_text(yaml.safe_dump(data))
    return d


def _run(study: Path, out: Path, mlruns: Path, *, use_cache: bool = True):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's own deprecation chatter
        return run_study(study, out=out, tracker=MLflowTracker(mlruns), use_cache=use_cache)


def test_runs_are_named_and_unchanged_reruns_register_no_new_version(tmp_path: Path, data_dir: Path) -> None:
    mlruns = tmp_path / "mlruns"
    study = _study(tmp_path)
    first = _run(study, tmp_path / "out", mlruns)
    plan = plan_study(study)
    configure(mlruns)
    client = MlflowClient()
    assert client.get_run(first.run_id).info.run_name == f"gbsg2_recurrence-{plan.spec_hash[:8]}"
    name = "gbsg2_recurrence.cox_5y"
    assert first.results.models["cox_5y"].model_version == 1

    cached = _run(study, tmp_path / "out", mlruns)  # every step from the cache
    refit = _run(study, tmp_path / "elsewhere", mlruns, use_cache=False)  # fitted again from scratch
    assert cached.computed == [] and "model:cox_5y" in refit.computed
    for again in (cached, refit):
        assert again.run_id != first.run_id
        assert client.get_run(again.run_id).info.run_name == f"gbsg2_recurrence-{plan.spec_hash[:8]}"
        assert again.results.models["cox_5y"].model_version == 1
        child = client.get_run(str(again.results.models["cox_5y"].mlflow_run_id))
        assert child.data.tags["regent.model_version"] == "1"
    assert [str(v.version) for v in client.search_model_versions(f"name = '{name}'")] == ["1"]
    assert str(client.get_model_version_by_alias(name, "candidate").version) == "1"

    changed = _study(tmp_path, penalty=5.0)  # a new hyperparameter: a new model, a new version
    third = _run(changed, tmp_path / "out", mlruns)
    assert third.results.models["cox_5y"].model_version == 2
    assert str(client.get_model_version_by_alias(name, "candidate").version) == "2"
    new_hash = plan_study(changed).spec_hash
    assert new_hash != plan.spec_hash
    assert client.get_run(third.run_id).info.run_name == f"gbsg2_recurrence-{new_hash[:8]}"
    back = _run(study, tmp_path / "out", mlruns)  # the first spec again: its version again
    assert back.results.models["cox_5y"].model_version == 1
    assert str(client.get_model_version_by_alias(name, "candidate").version) == "1"
    assert len(client.search_model_versions(f"name = '{name}'")) == 2


def test_versions_describe_themselves(gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    run, mlruns, _ = gbsg2_run
    configure(mlruns)
    client = MlflowClient()
    plan = plan_study(REPO / "studies/gbsg2_recurrence")
    for model, m in run.results.models.items():
        mv = client.get_model_version(str(m.registered_model), str(m.model_version))
        tags = mv.tags
        assert tags["regent.study"] == "gbsg2_recurrence"
        assert tags["regent.spec_hash"] == run.results.spec_hash == plan.spec_hash
        assert tags["regent.cohort_spec_hash"] == cohort_hash(plan)
        mt = m.metrics
        assert tags["regent.metric.c_index"] == (
            f"{mt['c_harrell_mean']:.3f} (95% CI {mt['c_harrell_lower']:.3f}–{mt['c_harrell_upper']:.3f})"
        )
        assert tags["regent.metric.calibration_slope"].startswith(
            f"{mt['oof_calibration_slope']:.3f} (95% CI "
        )
        assert tags["regent.features"] == ", ".join(m.features)
        features = mlflow.artifacts.load_text(f"runs:/{m.mlflow_run_id}/features.txt")
        assert features.split() == m.features
        assert mv.description.startswith(f"{run.spec.title}: `{model}`, a {m.type} model of the risk of")
        assert f"Features ({len(m.features)}): " in mv.description
        # the content hash is of the artifact the version holds
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{m.registered_model}/{m.model_version}"))
        blob = (local / "artifacts" / "risk_model.pkl").read_bytes()
        assert hashlib.sha256(blob).hexdigest() == tags["regent.model_sha256"]


def test_the_experiment_is_a_machine_learning_experiment_with_a_description(gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    run, mlruns, _ = gbsg2_run
    configure(mlruns)
    client = MlflowClient()
    exp = client.get_experiment(run.experiment_id)
    assert exp.name == "regent/gbsg2_recurrence"
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens on runs
    assert exp.tags["mlflow.note.content"].startswith(
        f"**{run.spec.title}** (Regent study `gbsg2_recurrence`)"
    )


@pytest.mark.browser
def test_the_printed_link_opens_the_experiment_on_its_runs(gbsg2_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A real `mlflow server` on loopback and Debian's Chromium: the link regent prints shows the
    runs (MLflow 3.17 would otherwise open the experiment on an empty GenAI traces overview)."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("needs the playwright package (`.ci/run` installs it with Chromium)")
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium (`.ci/run` installs it)")
    run, mlruns, _ = gbsg2_run
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
         f"sqlite:///{mlruns}/mlflow.db", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(runs_url(run.experiment_id, port), wait_until="load", timeout=120_000)
            name = f"gbsg2_recurrence-{run.results.spec_hash[:8]}"
            # the runs table with the run (the plain experiment link shows a traces overview, no runs)
            page.get_by_text(name).first.wait_for(timeout=60_000)
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the workers it started
        server.wait(timeout=30)
