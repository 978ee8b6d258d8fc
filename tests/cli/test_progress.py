"""Progress you can see: without a terminal one line per step with the elapsed time on stderr; in
a terminal bars, with a bar over a step's parts once the step has run for two seconds; Ctrl-C and
SIGTERM say which step stopped and how to resume, and the MLflow run ends KILLED."""

from __future__ import annotations

import io
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from rich.console import Console

from toolkit.cli.progress import SUB_AFTER, StepProgress, resume_command

REPO = Path(__file__).resolve().parents[2]
STEPS = ["registry", "cohort", "features", "analysis km", "model cox", "report"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_without_a_terminal_one_line_per_step_with_the_elapsed_time() -> None:
    buf, clock = io.StringIO(), Clock()
    console = Console(file=buf, force_terminal=False, width=200)
    with StepProgress(STEPS, console, clock=clock) as p:
        for label, dt in [
            ("registry", 0.0),
            ("cohort", 12.5),
            ("features", 0.5),
            ("analysis km", 30.0),
            ("model cox", 1.0),
            ("model cox: fold 1/5", 2.0),  # parts of a step print nothing without a terminal
            ("model cox: fold 2/5", 2.0),
            ("model cox: final fit", 1.0),
            ("report", 3.0),
        ]:
            clock.now += dt
            p(label)
        clock.now += 1.5
        p.finish()
    assert buf.getvalue().splitlines() == [
        "[      0.0 s] step 1/6 registry",
        "[     12.5 s] step 2/6 cohort",
        "[     13.0 s] step 3/6 features",
        "[     43.0 s] step 4/6 analysis km",
        "[     44.0 s] step 5/6 model cox",
        "[     52.0 s] step 6/6 report",
        "[     53.5 s] finished 6 steps",
    ]


def test_in_a_terminal_a_step_gets_a_bar_over_its_parts_after_two_seconds() -> None:
    buf, clock = io.StringIO(), Clock()
    console = Console(file=buf, force_terminal=True, width=120)
    with StepProgress(STEPS, console, clock=clock) as p:
        p("registry")
        clock.now += 1.0
        p("model cox")
        p("model cox: fold 1/5")
        bar = p._bar
        assert bar is not None and p._part is not None
        assert not bar.tasks[-1].visible  # a short step: no second bar
        clock.now += SUB_AFTER + 0.1
        p("model cox: fold 2/5")
        part = bar.tasks[-1]
        assert part.visible and (part.completed, part.total) == (2, 5)
        assert bar.tasks[0].completed == STEPS.index("model cox")
        p("report")  # the next step: the parts' bar goes
        assert p._part is None and len(bar.tasks) == 1
        p.finish()
    out = buf.getvalue()
    assert "done  registry (1.0 s)" in out and "done  model cox (2.1 s)" in out
    assert "━" in out  # rich drew bars


def test_resume_command_keeps_the_command_and_drops_no_resume() -> None:
    assert (
        resume_command(["study", "run", "studies/x y", "--out", "out/x", "--no-resume"])
        == "regent study run 'studies/x y' --out out/x"
    )


# --- the real command, as a user runs it ----------------------------------------------------------
def _study(tmp_path: Path) -> Path:
    """GBSG2 with fewer bootstrap replicates: the XGBoost folds still take seconds each."""
    d = tmp_path / "study"
    shutil.copytree(REPO / "studies/gbsg2_recurrence", d)
    data = yaml.safe_load((d / "study.yaml").read_text())
    data["validation"].update({"bootstrap": 20, "optimism_bootstrap": 0})
    data["models"][1]["params"]["num_boost_round"] = 2000  # folds of a second or two each
    (d / "study.yaml").write_text(yaml.safe_dump(data))
    return d


def _env(data_dir: Path) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "REGENT_DATA": str(data_dir),
        "PYTHONWARNINGS": "ignore",
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(REPO),  # the checkout under test, whatever .venv was installed from
    }


def _regent(*args: str) -> list[str]:
    return [sys.executable, "-m", "toolkit.cli.main", *args]


def _run_status(mlruns: Path, run_id: str) -> tuple[str, str]:
    from mlflow.tracking import MlflowClient

    from toolkit.tracking.mlflow_tracker import configure

    configure(mlruns)
    run = MlflowClient().get_run(run_id)
    return run.info.status, run.data.tags.get("regent.error", "")


def test_piped_run_prints_its_steps_and_sigterm_stops_it_killed_and_resumable(
    tmp_path: Path, data_dir: Path
) -> None:
    import json

    study, out, mlruns = _study(tmp_path), tmp_path / "out", tmp_path / "mlruns"
    args = ["study", "run", str(study), "--out", str(out), "--mlruns", str(mlruns)]
    proc = subprocess.Popen(
        _regent(*args),
        cwd=tmp_path,
        env=_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:  # each step's line arrives as the step starts (stderr is not buffered)
        lines.append(line.rstrip("\n"))
        if line.rstrip().endswith("model xgb_5y"):
            time.sleep(1.0)
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 143, rest[-3000:]
    steps = [re.match(r"^\[\s*([\d.]+) s\] step (\d)/9 (.+)$", line) for line in lines]
    assert all(steps), lines
    assert [m.group(3) for m in steps if m] == [
        "registry",
        "cohort",
        "features",
        "analysis table1_by_therapy",
        "analysis km_hormone_therapy",
        "analysis cox_adjusted",
        "model cox_5y",
        "model xgb_5y",
    ]
    times = [float(m.group(1)) for m in steps if m]
    assert times == sorted(times)
    assert "terminated by SIGTERM during step 8/9 'model xgb_5y'" in rest
    assert "the tracked run is marked KILLED" in rest and "Traceback" not in rest
    resume = rest.strip().splitlines()[-1].strip()
    assert resume == f"regent study run {study} --out {out} --mlruns {mlruns}"
    state = json.loads((out / ".cache" / "state.json").read_text())
    assert state["status"] == "interrupted"
    status, error = _run_status(mlruns, state["run_id"])
    assert status == "KILLED" and "during step 'model xgb_5y'" in error
    # the printed command resumes: the finished steps come from the cache
    again = subprocess.run(
        _regent(*resume.split()[1:]),
        cwd=tmp_path,
        env=_env(data_dir),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr
    assert f"resumed interrupted run {state['run_id']}: recomputed model:xgb_5y" in again.stdout
    assert again.stderr.splitlines()[-1].endswith("finished 9 steps")


def test_in_a_terminal_ctrl_c_says_where_it_stopped(tmp_path: Path, data_dir: Path) -> None:
    import pty

    study, out, mlruns = _study(tmp_path), tmp_path / "out", tmp_path / "mlruns"
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real command in a pseudo-terminal
        os.chdir(tmp_path)
        os.execve(
            sys.executable,
            _regent("study", "run", str(study), "--out", str(out), "--mlruns", str(mlruns)),
            {**_env(data_dir), "TERM": "xterm", "COLUMNS": "120"},
        )
    seen = b""
    sent = False
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        # the XGBoost step's own bar ("model xgb_5y: fold 3/5", then ": subgroups"): the step has
        # run about two seconds and reported where it is (which part depends on the machine's speed)
        after_cox = seen.find(b"done  model cox_5y")
        if not sent and after_cox >= 0 and b"model xgb_5y:" in seen[after_cox:]:
            os.kill(pid, signal.SIGINT)
            sent = True
    _, status = os.waitpid(pid, 0)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))
    assert sent, text[-2000:]
    assert os.waitstatus_to_exitcode(status) == 130
    assert "done  cohort" in text and "done  model cox_5y" in text
    assert "interrupted (Ctrl-C) during step 8/9 'model xgb_5y'" in text
    assert f"regent study run {study} --out {out} --mlruns {mlruns}" in text
    assert "Traceback" not in text
