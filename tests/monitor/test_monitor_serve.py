"""End to end on a real ``regent serve`` process: calls with patients of a shifted synthetic
registry, outcomes read from that registry, ``regent agent monitor --check`` fails on the drift
and passes on an unshifted control drawn from the same generator.

Both served registries are synthetic periods anchored at the present (admissions in the two
days before the test runs, follow-up simulated to 430 days after it), so the calls made now are
at the patients' admissions and the registry already holds the year that follows them.  What
the truth implies is computed from the generator: the PSI of each input on the bundle's
reference bins (from 20,000 draws), and the observed/expected ratio of the served patients
(their true 1-year risks over the risks the agent gave them).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from tests.monitor.conftest import Developed
from tests.monitor.synthetic import cds_requests, inputs_of, patient_id, served_persons, served_registry
from toolkit.agents.load import Agent
from toolkit.analysis.predict.reference import bin_index
from toolkit.cli.demo import free_port
from toolkit.monitor.calls import patient_pseudonym
from toolkit.monitor.drift import bin_counts, psi
from toolkit.monitor.report import MonitoringReport, read_report
from toolkit.registry.synth import heart_failure as hf
from toolkit.registry.synth.heart_failure import truth_paths
from toolkit.serve.audit import read_records, verify_audit

CALLS = 500
SERVICE = "/cds-services/hf-mortality"


def _regent(*args: str) -> list[str]:
    return [sys.executable, "-c", "from toolkit.cli.main import main; main()", *args]


@contextmanager
def regent_serve(bundle_dir: Path, folder: Path) -> Iterator[str]:
    """``regent serve`` in its own process: audit log with a key, the monitoring folder, auth off."""
    (folder / "audit.key").write_text(secrets.token_hex(32))
    (folder / "serve.yaml").write_text(
        yaml.safe_dump(
            {
                "auth": "off",  # loopback only
                "audit_path": "audit.sqlite",
                "audit_key_file": "audit.key",
                "monitoring_dir": "monitoring",
            }
        )
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGENT_", "PROMETHEUS_"))}
    log = (folder / "serve.log").open("wb")
    args = [
        "serve",
        "--agents",
        str(bundle_dir),
        "--settings",
        str(folder / "serve.yaml"),
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(
        _regent(*args), env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None, (folder / "serve.log").read_text()
            assert time.time() < deadline, "regent serve did not become ready"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


@dataclass(frozen=True)
class Arm:
    rc: int
    stdout: str
    report: MonitoringReport
    out: Path
    audit: Path
    key: bytes
    registry: Path
    requests: list[tuple[int, dict]]
    metrics: str
    card_after: dict
    mlruns: Path


def _serve_and_monitor(
    hf_agent: Developed, folder: Path, shift: hf.Shift | None, *, seed: int, overrides: int
) -> Arm:
    folder.mkdir()
    registry = served_registry(
        folder / "served.duckdb", patients=CALLS + 120, seed=seed, shift=shift, now=dt.datetime.now(dt.UTC)
    )
    requests = cds_requests(registry, limit=CALLS)
    link = folder / "link.csv"
    link.write_text("patient_id,person_id\n" + "".join(f"{patient_id(p)},{p}\n" for p, _ in requests))
    out = folder / "monitoring" / "hf-mortality"
    answered: list[dict] = []
    with regent_serve(hf_agent.bundle.parent, folder) as url, httpx.Client(timeout=30) as client:
        for person, request in requests:
            r = client.post(url + SERVICE, json=request)
            assert r.status_code in (200, 412), r.text
            if r.status_code == 200:
                answered.append(request)
            if r.status_code == 200 and person % 4 == 0:  # clinicians reply to some cards
                card = r.json()["cards"][0]
                overridden = (person // 4) % 4 < overrides  # of every 4 replies
                item = {"card": card["uuid"], "outcome": "overridden" if overridden else "accepted"}
                item["outcomeTimestamp"] = dt.datetime.now(dt.UTC).isoformat()
                if overridden:
                    item["overrideReason"] = {
                        "reason": {"system": "urn:regent:cds:override-reason", "code": "not-relevant"},
                        "userComment": "free text that must never be stored",
                    }
                assert client.post(url + SERVICE + "/feedback", json={"feedback": [item]}).status_code == 200
        mlruns = folder / "mlruns"
        import shutil

        shutil.copytree(
            hf_agent.mlruns, mlruns
        )  # the development store: the report goes to its model version
        done = subprocess.run(
            _regent(
                "agent", "monitor", str(hf_agent.bundle), "--audit", str(folder / "audit.sqlite"),
                "--registry", str(registry), "--link", str(link), "--out", str(out), "--check",
                "--audit-key", str(folder / "audit.key"), "--mlruns", str(mlruns),
            ),
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("REGENT_")},
            timeout=300,
        )  # fmt: skip
        assert done.returncode in (0, 1), done.stderr
        metrics = client.get(url + "/metrics").text
        card_after = client.post(url + SERVICE, json=answered[0]).json()["cards"][0]
    return Arm(
        done.returncode,
        done.stdout,
        read_report(out),
        out,
        folder / "audit.sqlite",
        bytes.fromhex((folder / "audit.key").read_text()),
        registry,
        requests,
        metrics,
        card_after,
        mlruns,
    )


@pytest.fixture(scope="module")
def arms(hf_agent: Developed, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Arm]:
    root = tmp_path_factory.mktemp("served")
    return {
        # clinicians override 3 of 4 cards of the shifted agent, and 1 of 4 of the control's
        "shifted": _serve_and_monitor(hf_agent, root / "shifted", hf.Shift(), seed=101, overrides=3),
        "control": _serve_and_monitor(hf_agent, root / "control", None, seed=202, overrides=1),
    }


def _true_psi(agent: Agent, shift: hf.Shift | None) -> dict[str, float]:
    """Each input's PSI on the bundle's reference bins, from 20,000 draws of the generator."""
    assert agent.reference is not None
    persons = served_persons(20_000, 99, shift=shift, period=hf.LATER_PERIOD)
    values = [inputs_of(row) for row in persons.itertuples()]
    out = {}
    for ref in agent.reference.inputs:
        b = [
            bin_index(ref, float(v[ref.name]) if isinstance(v[ref.name], bool) else v[ref.name])
            for v in values
        ]
        out[ref.name] = psi(
            ref.shares, bin_counts(np.asarray([-1 if x is None else x for x in b]), len(ref.bins))
        )
    return out


def _implied_o_e(arm: Arm) -> float:
    """Mean true 1-year risk over mean predicted risk, for the patients the monitor followed."""
    refs = {patient_pseudonym(patient_id(p), arm.key): p for p, _ in arm.requests}
    calls = [
        r
        for r in read_records(arm.audit)
        if r["kind"] == "cds-hooks" and r["status"] == 200 and r.get("patient_ref")
    ]
    first: dict[int, float] = {}
    for r in calls[: len(arm.requests)]:  # the served calls (not the card asked for afterwards)
        first.setdefault(refs[r["patient_ref"]], r["risk"])
    truth = pd.read_parquet(truth_paths(arm.registry)[1]).set_index("person_id")
    persons = list(first)
    return float(truth.loc[persons, "risk_1y"].mean() / np.mean([first[p] for p in persons]))


def _alerts(report: MonitoringReport) -> set[tuple[str, str]]:
    return {(a.check, a.subject) for a in report.alerts}


@pytest.mark.slow
def test_check_fails_on_the_shifted_registry_and_passes_on_the_control(arms: dict[str, Arm]) -> None:
    shifted, control = arms["shifted"], arms["control"]
    assert shifted.rc == 1 and "ALERT psi (age)" in shifted.stdout
    assert "ALERT override_rate (feedback)" in shifted.stdout
    assert control.rc == 0 and "no active alerts" in control.stdout, control.stdout


@pytest.mark.slow
def test_monitoring_detects_the_input_drift_the_truth_implies(
    arms: dict[str, Arm], hf_agent: Developed
) -> None:
    agent = Agent.load(hf_agent.bundle)
    truth = _true_psi(agent, hf.Shift())
    null = _true_psi(agent, None)
    (window,) = arms["shifted"].report.windows
    alerts = _alerts(arms["shifted"].report)
    print("\ninput PSI: true (shifted) / monitored / true (unshifted):")
    for name in truth:
        print(f"  {name:<14} {truth[name]:.3f}  {window.psi.get(name, float('nan')):.3f}  {null[name]:.3f}")
    for name, value in truth.items():
        if value > 0.3:  # clearly beyond the 0.2 threshold: must alert
            assert ("psi", name) in alerts, (name, value, window.psi[name])
        if value < 0.1:  # clearly within: must not
            assert ("psi", name) not in alerts, (name, value, window.psi[name])
        # a PSI from ~350 calls has a standard error near 0.05 for shifts this large
        assert abs(window.psi[name] - value) < 0.2, (name, value, window.psi[name])
    assert ("prediction_psi", "risk") in alerts
    assert not any(c == "psi" for c, _ in _alerts(arms["control"].report))


@pytest.mark.slow
def test_monitoring_detects_the_calibration_decay_the_truth_implies(arms: dict[str, Arm]) -> None:
    for name, arm in arms.items():
        (window,) = arm.report.windows
        perf = window.performance
        assert perf is not None and perf.matured and perf.events is not None and perf.events > 50
        o_e = perf.metrics["o_e"]
        implied = _implied_o_e(arm)
        print(
            f"\n{name}: O/E {o_e.value:.3f} ({o_e.lower:.3f}-{o_e.upper:.3f}); implied by the truth {implied:.3f}"
        )
        assert o_e.lower is not None and o_e.upper is not None
        assert o_e.lower <= implied <= o_e.upper
    shifted = _alerts(arms["shifted"].report)
    assert ("o_e", "outcomes") in shifted and ("calibration_intercept", "outcomes") in shifted
    assert not _alerts(arms["control"].report)


@pytest.mark.slow
def test_alerts_reach_metrics_cards_mlflow_and_the_reports(arms: dict[str, Arm]) -> None:
    shifted, control = arms["shifted"], arms["control"]
    line = 'regent_monitor_alert{agent="hf-mortality",check="psi",subject="age",version="1.0.1"}'
    assert f"{line} 1.0" in shifted.metrics and f"{line} 0.0" in control.metrics
    assert "regent_monitor_alerts_active" in shifted.metrics
    # the contract asks for it: cards say so during a calibration alert, and only then
    assert "Monitoring: since" in shifted.card_after["detail"] and "Dr. Lin" in shifted.card_after["detail"]
    assert "Monitoring:" not in control.card_after["detail"]
    html = (shifted.out / "monitoring.html").read_text()
    assert "Active alerts" in html and "calibration_intercept" in html
    from toolkit.disclosure.scan import scan_outputs

    findings = scan_outputs(shifted.out, min_cell=10)
    assert findings == [], findings
    from mlflow.tracking import MlflowClient

    from toolkit.tracking.mlflow_tracker import configure

    configure(shifted.mlruns)
    client = MlflowClient()
    report = shifted.report
    mv = client.get_model_version(str(report.registered_model), str(report.model_version))
    assert "psi:age" in mv.tags["monitoring.alerts"] and mv.tags["monitoring.run_id"]
    run = client.get_run(mv.tags["monitoring.run_id"])
    assert run.data.metrics["psi.age"] == pytest.approx(report.windows[0].psi["age"])
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"monitoring.json", "monitoring.html"}


@pytest.mark.slow
def test_the_audit_keeps_bins_flags_and_pseudonyms_never_values_or_ids(
    arms: dict[str, Arm], hf_agent: Developed
) -> None:
    arm = arms["shifted"]
    assert verify_audit(arm.audit, key=arm.key).ok
    records = list(read_records(arm.audit))
    calls = [r for r in records if r["kind"] == "cds-hooks"]
    answered = [r for r in calls if r["status"] == 200]
    refused = [r for r in calls if r["status"] == 412]
    assert answered and refused
    reference = Agent.load(hf_agent.bundle).reference
    assert reference is not None
    names = {i.name for i in reference.inputs}
    for r in answered:
        assert set(r["bins"]) == names and isinstance(r["bins"]["age"], int)
        assert r["inputs_sha256"] and len(r["patient_ref"]) == 64
    assert all("missing" in flags for r in refused for flags in r["flags"].values())
    text = arm.audit.read_bytes().decode("utf-8", "replace")
    assert not any(patient_id(p) in text for p, _ in arm.requests[:50])  # pseudonyms only
    assert "free text" not in text
    lvef_missing = [r for r in answered if "imputed" in r["flags"].get("lvef", [])]
    assert lvef_missing and all(r["bins"]["lvef"] is None for r in lvef_missing)
    report = json.loads((arm.out / "monitoring.json").read_text())
    assert report["linkage"]["linked"] >= 300
