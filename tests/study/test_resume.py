"""A killed run resumes to the same results; two fresh runs are identical bit for bit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from tests.study._helpers import strip_run_ids
from toolkit.study.runner import run_study
from toolkit.tracking.mlflow_tracker import MLflowTracker, configure

REPO = Path(__file__).resolve().parents[2]


def _study(tmp_path: Path) -> Path:
    d = tmp_path / "study"
    shutil.copytree(REPO / "studies/gbsg2_recurrence", d)
    data = yaml.safe_load((d / "study.yaml").read_text())
    data["models"] = data["models"][:1]
    # fewer bootstrap refits keep the test quick; they still run, so they are still reproduced
    data["validation"] = {"cv_folds": 5, "bootstrap": 20, "optimism_bootstrap": 5}
    (d / "study.yaml").write_text(yaml.safe_dump(data))
    return d


def test_two_fresh_runs_write_identical_results(tmp_path: Path, data_dir: Path) -> None:
    d = _study(tmp_path)
    run_study(d, out=tmp_path / "one")
    run_study(d, out=tmp_path / "two")
    one, two = (json.loads((tmp_path / o / "results.json").read_bytes()) for o in ("one", "two"))
    # the code version is the one thing allowed to differ: a commit made while the test runs
    one.pop("code_version"), two.pop("code_version")
    assert json.dumps(one) == json.dumps(two)  # untracked: no run ids; every float bit for bit


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_results(tmp_path: Path, data_dir: Path) -> None:
    from toolkit.cli.main import app

    d, out, mlruns = _study(tmp_path), tmp_path / "out", tmp_path / "mlruns"
    cmd = [
        sys.executable,
        "-m",
        "toolkit.cli.main",
        "study",
        "run",
        str(d),
        "--out",
        str(out),
        "--mlruns",
        str(mlruns),
    ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    state = out / ".cache" / "state.json"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if state.exists() and "features" in json.loads(state.read_text()).get("steps", []):
                proc.send_signal(signal.SIGKILL)  # no clean-up possible: the run is left RUNNING
                break
            time.sleep(0.02)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read() if proc.stderr else b""
    if proc.stderr:
        proc.stderr.close()  # an unclosed pipe would surface as a ResourceWarning in a later test
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, stderr)
    assert not (out / "results.json").exists()
    killed = json.loads(state.read_text())
    assert killed["status"] == "running" and killed["steps"] == ["cohort", "features"]

    res = CliRunner().invoke(
        app, ["study", "run", str(d), "--out", str(out), "--mlruns", str(mlruns), "--resume"]
    )
    assert res.exit_code == 0, res.output
    recomputed = res.output.split(f"resumed interrupted run {killed['run_id']}: recomputed ")[1].split("\n")[
        0
    ]
    assert recomputed.split(", ") == [
        "analysis:table1_by_therapy",
        "analysis:km_hormone_therapy",
        "analysis:cox_adjusted",
        "model:cox_5y",
    ]  # the cohort and the features came from the killed run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh = run_study(d, out=tmp_path / "fresh", tracker=MLflowTracker(mlruns))
    resumed = json.loads((out / "results.json").read_text())
    # the code version is compared out: another commit may land between the two runs while developing
    assert {**strip_run_ids(resumed), "code_version": None} == {
        **strip_run_ids(fresh.results.to_json()),
        "code_version": None,
    }
    assert fresh.computed[:2] == ["cohort", "features"]

    configure(mlruns)
    client = MlflowClient()
    old = client.get_run(killed["run_id"])
    assert old.info.status == "KILLED" and "resumed by run" in old.data.tags["regent.error"]
    new = client.get_run(resumed["mlflow_run_id"])
    assert new.info.status == "FINISHED" and new.data.tags["regent.resumed_from"] == killed["run_id"]
    assert json.loads((out / ".cache" / "state.json").read_text())["status"] == "finished"
