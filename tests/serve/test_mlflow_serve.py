"""Issue 7: the bundle's model directory serves with ``mlflow models serve`` and gives the same risk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serve.helpers import GBSG2_INPUTS
from toolkit.agents.load import Agent
from toolkit.cli.demo import free_port


@pytest.mark.slow
def test_mlflow_models_serve_gives_the_agents_risk(gbsg2_bundle: Path) -> None:
    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen(
        [
            str(mlflow),
            "models",
            "serve",
            "-m",
            str(gbsg2_bundle / "model"),
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: stopped with its uvicorn worker below
        # mlflow starts `uvicorn` by name: the venv's bin folder must be on PATH even when the
        # tests run without an activated venv (as `make test` and CI do)
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            assert proc.poll() is None, "mlflow models serve exited"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        reply = httpx.post(
            f"http://127.0.0.1:{port}/invocations", json={"dataframe_records": [GBSG2_INPUTS]}, timeout=30
        )
        assert reply.status_code == 200, reply.text
        (row,) = reply.json()["predictions"]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    agent = Agent.load(gbsg2_bundle)
    p = agent.explain(GBSG2_INPUTS)
    assert row["risk"] == pytest.approx(p.risk, abs=1e-12)
    for c in p.contributions:
        assert row[f"contrib_{c.input}"] == pytest.approx(c.contribution, abs=1e-12)
