"""The main job (``regent demo``, ``make demo``): the flagship path end to end on the embedded default.

Build the synthetic registry, run the hf_mortality study (tracked in MLflow), check its gates
and package the agent, call it once in Python and once through a real CDS Hooks server on
loopback, and print where everything is.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import typer
import uvicorn
from rich.console import Console

from toolkit.agents.load import Agent
from toolkit.agents.package import package_agent
from toolkit.cli.progress import Terminated, run_steps
from toolkit.serve.app import create_app
from toolkit.serve.demo_page import recent_dates
from toolkit.serve.settings import Settings
from toolkit.study.plan import plan_study
from toolkit.study.runner import run_study
from toolkit.tracking.mlflow_tracker import MLflowTracker, runs_url
from toolkit.tracking.models import MLflowModelStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call_cds_hooks(dist: Path, agent: str, request: dict[str, Any]) -> dict[str, Any]:
    """Start the real server on a loopback port, make one CDS Hooks call, stop it."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(Settings(agents_dir=dist, auth="off")),  # loopback, one call, no token
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        services = httpx.get(f"{base}/cds-services", timeout=10).json()["services"]
        assert any(s["id"] == agent for s in services), "agent missing from discovery"
        reply = httpx.post(f"{base}/cds-services/{agent}", json=request, timeout=10)
        reply.raise_for_status()
        return dict(reply.json())
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def run_demo(
    *,
    root: Path = Path("."),
    out: Path = Path("out/hf_mortality"),
    mlruns: Path = Path("mlruns"),
    dist: Path = Path("dist/agents"),
    say: Callable[[str], object] = lambda line: print(line, flush=True),  # piped output too
) -> dict[str, Any]:
    say("1/4  running the hf_mortality study (registry built on first use) ...")
    plan = plan_study(root / "studies/hf_mortality")
    tracker = MLflowTracker(mlruns)
    try:
        run = run_steps(  # one line per step on stderr (bars in a terminal); Ctrl-C says how to resume
            plan.steps,
            Console(stderr=True, highlight=False, soft_wrap=True),
            lambda progress: run_study(plan, out=out, tracker=tracker, progress=progress),
            resume="regent demo",
        )
    except KeyboardInterrupt as exc:  # the message is printed; exit as a shell expects
        raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from None
    say(
        f"     cohort {run.results.cohort.n} persons; "
        + ", ".join(
            f"{k} CV C-index {v.metrics.get('c_harrell_mean') or float('nan'):.3f}"
            for k, v in run.results.models.items()
        )
    )
    say("2/4  checking gates and packaging the agent ...")
    with MLflowModelStore(mlruns) as store:
        bundle, _, art = package_agent(root / "agents/hf-mortality", store.fetch, dist=dist, repo_root=root)
        if art.registered_model and art.model_version is not None:
            store.set_alias(art.registered_model, "validated", art.model_version)
    say("3/4  calling the agent in Python ...")
    agent = Agent.load(bundle)
    patient = json.loads((root / "agents/hf-mortality/patient.json").read_text())
    p = agent.predict(patient)
    say(f"     {p.summary}; top factors: " + ", ".join(f"{c.input} ({c.direction})" for c in p.contributions))
    say("4/4  calling it through CDS Hooks over HTTP ...")
    # dates moved so the latest is a week old: the labs stay inside the contract's 30-day lookback
    request = recent_dates(json.loads((root / "agents/hf-mortality/cds-request.json").read_text()))
    cards = call_cds_hooks(dist, agent.name, request)["cards"]
    say(f"     card: {cards[0]['summary']} [{cards[0]['indicator']}]")
    say("")
    say(f"report:       {out / 'report.html'}")
    say(f"results:      {out / 'results.json'}")
    say(f"agent bundle: {bundle}")
    say(f"MLflow:       mlflow ui --backend-store-uri sqlite:///{mlruns}/mlflow.db   (run {run.run_id})")
    say(f"              then open {runs_url(run.experiment_id)}")
    say(f"serve:        regent serve --agents {dist} --port 8080 --auth off --demo agents")
    return {"bundle": bundle, "run_id": run.run_id, "prediction": p, "card": cards[0]}
